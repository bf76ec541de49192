"""The built serving image, run with a real Docker engine (ci/prepare.sh builds it).

GLM51_TEST_IMAGE names the image under test (default glm51:ci, the tag ci/prepare.sh adds).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import replace
from pathlib import Path

import pytest

from glm51 import proc
from glm51.image import locks
from glm51.image.build import buildx_argv, plan
from tests.support.checkpoint import build as build_checkpoint
from tests.support.docker import CA_BUNDLE, REPO, docker_run

pytestmark = pytest.mark.docker


def test_version_in_container(image, labels):
    out = docker_run(image, "glm51", "--version").stdout.strip()
    assert out == f"glm51 {labels['org.opencontainers.image.version']}"


def test_serve_dry_run_with_mounted_checkpoint(image, tmp_path):
    ckpt = build_checkpoint(tmp_path / "ckpt")
    out = docker_run(
        image,
        "glm51",
        "serve",
        "--dry-run",
        "--model",
        "/models/ckpt",
        mounts=(f"{ckpt}:/models/ckpt:ro",),
    ).stdout
    assert "-m sglang.launch_server --model-path /models/ckpt" in out
    # The image serves the profile its SGLang build advertises, not one it cannot run.
    advertised = docker_run(image, "sh", "-c", "echo $GLM51_PROFILE").stdout.strip()
    assert advertised and f"# profile {advertised} " in out


def test_doctor_without_gpu_is_a_preflight_failure(image):
    done = docker_run(image, "glm51", "doctor", check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 4, output
    assert "GPU" in output


def test_labels(image, labels):
    assert re.fullmatch(r"[0-9a-f]{40}", labels["org.opencontainers.image.revision"])
    assert labels["org.opencontainers.image.created"].endswith("Z")
    # The source label names where the code is hosted, or is absent (never a local path, never
    # credentials from the clone's remote).
    source = labels.get("org.opencontainers.image.source")
    assert source is None or (
        source.startswith(("https://", "git@", "ssh://")) and "@" not in source.removeprefix("git@")
    )
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", labels["org.glm51.lock.digest"])
    if labels["org.glm51.stack"] == "full":
        assert labels["org.glm51.sglang.version"] == "0.5.23"
        assert labels["org.glm51.b12x.version"] == "1.5.1"


def test_runtime_config(image):
    out = proc.run(["docker", "image", "inspect", "--format", "{{json .Config}}", image])
    config = json.loads(out.stdout)
    env = dict(item.split("=", 1) for item in config["Env"])
    assert "/cache/jit" in config["Volumes"]
    jit = f"/cache/jit/{env['GLM51_BUILD_ID']}"
    assert env["GLM51_JIT_CACHE"] == jit and env["TRITON_CACHE_DIR"].startswith(jit + "/")
    assert "/health" in " ".join(config["Healthcheck"]["Test"])
    assert config["Entrypoint"] == ["/usr/local/bin/glm51-entrypoint"]
    assert config["Cmd"] == ["glm51", "serve"]
    assert config["User"] == "glm51"
    # glm51 serve --port reads GLM51_PORT; the image sets it to the default profile's port.
    assert env["GLM51_PORT"] == "5000" and "5000/tcp" in config["ExposedPorts"]
    assert "GLM51_PORT" in " ".join(config["Healthcheck"]["Test"])


def test_runs_as_glm51_and_any_user_can_use_the_jit_volume(image):
    whoami = "id -un; touch $GLM51_JIT_CACHE/probe && echo writable; echo $HF_HOME"
    out = docker_run(image, "sh", "-c", whoami).stdout.split()
    assert out == ["glm51", "writable", "/home/glm51/.cache/huggingface"]
    # --user stays overridable: another uid gets its own build folder on the volume.
    other = docker_run(image, "sh", "-c", "id -u; ls -d $GLM51_JIT_CACHE", user="4242:4242")
    assert other.stdout.split()[0] == "4242"


def test_package_list_matches_the_lock(image, labels):
    listing = docker_run(
        image, "sh", "-c", "cat /opt/glm51/packages.txt; echo ---; cat /opt/glm51/lock-name"
    ).stdout
    packages, lock_name = listing.split("---")
    installed = dict(line.split("==", 1) for line in packages.split() if "==" in line)
    installed = {re.sub(r"[-_.]+", "-", k).lower(): v for k, v in installed.items()}
    assert installed["glm51"] == labels["org.opencontainers.image.version"]
    lock = REPO / "images" / "cu130" / lock_name.strip()
    for name, version in locks.pinned_versions(lock).items():
        assert installed.get(name) == version, name


def _needles() -> list[bytes]:
    """Distinctive lines of the host's local CAs (the proxy's): none may be in the image."""
    needles = []
    for cert in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        lines = [ln for ln in cert.read_text().splitlines() if ln and "-----" not in ln]
        needles += [lines[len(lines) // 2].encode()] if lines else []
    return needles


@pytest.mark.slow
def test_no_layer_or_history_holds_the_ca_bundle_or_a_build_secret(image, tmp_path):
    """Build a throwaway slim image with a random secret; grep `docker save` and history."""
    if not CA_BUNDLE.is_file():
        pytest.skip(f"{CA_BUNDLE} missing")
    marker = f"glm51-test-secret-{secrets.token_hex(16)}"
    secret = tmp_path / "bundle.pem"
    # A PEM reader ignores text between certificates: the bundle still works for pip/apt.
    secret.write_text(CA_BUNDLE.read_text() + f"\n{marker}\n")
    from glm51.recipe.load import load_recipe

    tag = f"glm51-secret-test:{secrets.token_hex(4)}"
    spec = plan(
        load_recipe(REPO / "release" / "glm51.toml"),
        REPO,
        version="0.0.0",
        sha="0" * 40,
        created="1970-01-01T00:00:00Z",
        source="test",
        metadata_file=tmp_path / "meta.json",
        base_image=os.environ.get("GLM51_LOCAL_BASE", "glm51-base:bookworm"),
        stack="slim",
        ca_bundle=secret,
        no_cache=True,  # the install steps must really run with the secret mounted
    )
    proc.run(buildx_argv(replace(spec, tags=(tag,))), timeout=1800)
    try:
        history = proc.run(["docker", "history", "--no-trunc", tag]).stdout
        config = proc.run(["docker", "image", "inspect", tag]).stdout
        for text in (history, config):
            assert marker not in text and "BEGIN CERTIFICATE" not in text
        saved = tmp_path / "image.tar"
        proc.run(["docker", "save", "-o", str(saved), tag], timeout=600)
        # Positive control: a line of ca-env.sh, which is in a layer, must be found, so a
        # clean result cannot come from layers the grep could not read (e.g. compressed).
        control = b"export PIP_CERT=/run/secrets/ca_bundle"
        needles = [marker.encode(), *_needles()]
        found = _grep(saved, [control, *needles])
        assert control in found, "the saved layers are not searchable as plain tar"
        leaked = [n for n in found if n != control]
        assert not leaked, f"found in the saved image: {leaked}"
    finally:
        proc.run(["docker", "rmi", "-f", tag], check=False)


def _grep(path: Path, needles: list[bytes], chunk: int = 1 << 24) -> list[bytes]:
    """Needles found in a (large) file, read in overlapping chunks."""
    overlap = max(len(n) for n in needles)
    found, tail = set(), b""
    with path.open("rb") as f:
        while block := f.read(chunk):
            window = tail + block
            found |= {n for n in needles if n in window}
            tail = window[-overlap:]
    return sorted(found)


def _check_files(image: str, *extra_mounts: str, check: bool = False):
    """The repository's check_files.py, run in `image` against the repository's OWNERS file."""
    cu130 = REPO / "images" / "cu130"
    return docker_run(
        image,
        "python",
        "/check/check_files.py",
        "/check/file-owners.txt",
        mounts=(f"{cu130}:/check:ro", *extra_mounts),
        check=check,
    )


def test_import_b12x_is_b12x_own_file_and_no_file_is_owned_twice(image, labels):
    if labels["org.glm51.stack"] != "full":
        pytest.skip("the slim stack has neither b12x nor flashinfer")
    done = _check_files(image)
    assert done.returncode == 0, done.stderr
    assert "every file owned twice is its decided owner's" in done.stdout


@pytest.mark.slow
def test_file_check_fails_when_flashinfer_b12x_init_is_installed_last(image, labels, tmp_path):
    """A test image in which flashinfer-python (the same locked, hashed wheel) is installed
    after b12x: its older b12x/__init__.py wins, and the check must name the swap."""
    if labels["org.glm51.stack"] != "full":
        pytest.skip("the slim stack has neither b12x nor flashinfer")
    lock = (
        REPO / "images" / "cu130" / docker_run(image, "cat", "/opt/glm51/lock-name").stdout.strip()
    )
    lines, on = [], False
    for line in lock.read_text().splitlines():
        on = on or line.startswith("flashinfer-python==")
        if on:
            lines.append(line)
            if not line.rstrip().endswith("\\"):
                break
    assert lines, f"{lock} pins no flashinfer-python"
    (tmp_path / "flashinfer.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "Dockerfile").write_text(
        "ARG IMAGE\n"
        "FROM ${IMAGE}\n"
        "USER root\n"
        "COPY flashinfer.txt /tmp/\n"
        "RUN --mount=type=secret,id=ca_bundle . /usr/local/lib/glm51/ca-env.sh"
        " && pip install --no-deps --require-hashes --only-binary=:all: --force-reinstall"
        " -r /tmp/flashinfer.txt\n"
    )
    tag = f"glm51-clobber-test:{secrets.token_hex(4)}"
    argv = ["docker", "buildx", "build", "--load", "--tag", tag, "--build-arg", f"IMAGE={image}"]
    if CA_BUNDLE.is_file():
        argv += ["--secret", f"id=ca_bundle,src={CA_BUNDLE}"]
    proc.run([*argv, str(tmp_path)], timeout=1800)
    try:
        # flashinfer's b12x/__init__.py is a shim: `import b12x` then hands out flashinfer's
        # vendored copy (b12x.__file__ is flashinfer/experimental/b12x/...).
        probe = (
            "import importlib.util, os; origin = importlib.util.find_spec('b12x').origin; "
            "import b12x; print(os.path.getsize(origin), b12x.__file__)"
        )
        size, loaded = docker_run(tag, "python", "-c", probe).stdout.split()
        assert size == "1727", "flashinfer's b12x/__init__.py did not win: the test proves nothing"
        assert "/flashinfer/" in loaded
        done = _check_files(tag)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "b12x/__init__.py: owned by" in done.stderr
        assert "b12x's must be on disk, but it is flashinfer-python's" in done.stderr
        assert "import b12x loads" in done.stderr and "not b12x's own file" in done.stderr
    finally:
        proc.run(["docker", "rmi", "-f", tag], check=False)
