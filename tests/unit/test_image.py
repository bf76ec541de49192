"""The image build's pure core: tags, the buildx argv, the plan from the recipe, the selfcheck."""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path

import pytest

from glm51.errors import InputError
from glm51.image import locks
from glm51.image.build import buildx_argv, plan
from glm51.image.selfcheck import profile_problems, sglang_flags
from glm51.image.tags import docker_version, image_tags
from tests.support.fakes import sglang_help

REPO = Path(__file__).resolve().parents[2]
SHA = "46e95a294ca61811e37ec43d086b3843b6062987"


def _plan(recipe, **kw):
    defaults = dict(
        version="0.2.0",
        sha=SHA,
        created="2026-11-26T00:00:00Z",
        source="https://example.invalid/glm51",
        metadata_file=Path("/tmp/out/meta.json"),
    )
    return plan(recipe, REPO, **{**defaults, **kw})


def test_tags_from_recipe_templates(recipe):
    image = recipe.images["cu130"]
    assert image_tags(image, version="0.2.0", sha=SHA) == [
        "glm51:0.2.0-cu130",
        "glm51:0.2.0-cu130-46e95a294ca6",
    ]
    assert image_tags(image, version="0.2.0", sha=SHA, slim=True) == ["glm51:0.2.0-cu130-slim"]


def test_local_version_part_is_made_docker_safe(recipe):
    assert docker_version("0.2.1.dev3+g46e95a2") == "0.2.1.dev3-g46e95a2"
    tags = image_tags(recipe.images["cu130"], version="0.2.1.dev3+g46e95a2", sha=SHA)
    assert tags[0] == "glm51:0.2.1.dev3-g46e95a2-cu130"


def test_bad_sha_is_input_error(recipe):
    with pytest.raises(InputError, match="not hex"):
        image_tags(recipe.images["cu130"], version="1", sha="main")


def test_buildx_argv_default_full_build(recipe):
    spec = _plan(recipe)
    argv = buildx_argv(spec)
    pins = tomllib.loads((REPO / "images/cu130/pins.toml").read_text())
    assert argv[:3] == ["docker", "buildx", "build"]
    assert argv[argv.index("--file") + 1] == str(REPO / "Dockerfile.cu130")
    assert argv[argv.index("--metadata-file") + 1] == "/tmp/out/meta.json"
    assert argv[-2:] == ["--load", str(REPO)]
    pairs = [argv[i + 1] for i, a in enumerate(argv) if a == "--build-arg"]
    assert pairs == [
        f"BASE_IMAGE={pins['base']['ref']}",
        "STACK=full",
        "SGLANG_BUILD=upstream",
        "GLM51_VERSION=0.2.0",
        "BUILD_ID=0.2.0-46e95a294ca6-full",
        "DEFAULT_PROFILE=rtx-pro-6000-x8-upstream",
        "SERVE_PORT=5000",  # the default profile's port
        "GLM51_SGLANG_PLUGINS=glm51-sglang-b12x",  # the upstream build's plugins, after the lock
    ]
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--tag"] == [
        "glm51:0.2.0-cu130",
        "glm51:0.2.0-cu130-46e95a294ca6",
    ]
    assert "--secret" not in argv and "--push" not in argv


def test_labels_carry_versions_and_lock_digest(recipe):
    labels = _plan(recipe).labels
    assert labels["org.opencontainers.image.version"] == "0.2.0"
    assert labels["org.opencontainers.image.revision"] == SHA
    assert labels["org.opencontainers.image.source"] == "https://example.invalid/glm51"
    assert labels["org.opencontainers.image.created"] == "2026-11-26T00:00:00Z"
    assert labels["org.glm51.sglang.version"] == "0.5.23"
    assert labels["org.glm51.b12x.version"] == "1.5.1"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", labels["org.glm51.lock.digest"])


def test_ca_bundle_is_a_secret_and_push_replaces_load(recipe):
    argv = buildx_argv(_plan(recipe, ca_bundle=Path("/etc/ca.pem"), push=True))
    assert argv[argv.index("--secret") + 1] == "id=ca_bundle,src=/etc/ca.pem"
    assert "--push" in argv and "--load" not in argv
    assert not any("ca.pem" in a for a in argv if a.startswith(("BASE", "GLM51", "STACK")))


def test_local_base_picks_its_python_and_slim_tags(recipe):
    spec = _plan(recipe, base_image="glm51-base:bookworm", stack="slim")
    assert spec.stack == "slim" and spec.tags == ("glm51:0.2.0-cu130-slim",)
    assert spec.sglang_plugins == ()  # no sglang in the slim stack, so no sglang plugin
    assert "GLM51_SGLANG_PLUGINS=" in buildx_argv(spec)
    assert spec.labels["org.glm51.sglang.version"] == "none"
    assert spec.labels["org.opencontainers.image.base.name"] == "glm51-base:bookworm"


def test_unresolved_fork_lock_stops_with_update_pins_message(recipe):
    with pytest.raises(InputError, match="nox -s update_pins"):
        _plan(recipe, sglang_build="blackwell-fork")


def test_unknown_sglang_build_and_python_are_input_errors(recipe):
    with pytest.raises(InputError, match="expected one of"):
        _plan(recipe, sglang_build="nightly")
    with pytest.raises(InputError, match="locks exist for"):
        _plan(recipe, python="3.9")


def test_dockerfile_default_base_is_the_pinned_digest():
    pins = tomllib.loads((REPO / "images/cu130/pins.toml").read_text())
    text = (REPO / "Dockerfile.cu130").read_text()
    assert f"ARG BASE_IMAGE={pins['base']['ref']}\n" in text
    assert re.search(r"@sha256:[0-9a-f]{64}$", pins["base"]["ref"])
    assert not re.search(r"^#\s*syntax=", text, re.M)  # BuildKit would pull a frontend


def test_dockerfile_never_copies_or_args_the_ca_bundle():
    text = (REPO / "Dockerfile.cu130").read_text()
    for line in text.splitlines():
        if line.startswith(("COPY", "ADD", "ARG", "ENV")):
            assert "ca_bundle" not in line and "ca-certificates.crt" not in line


def test_every_lock_is_hash_locked_and_upstream_has_the_stack(recipe):
    image = recipe.images["cu130"]
    for python in image.python_versions:
        for stack in ("upstream", "slim", "build"):
            lock = locks.lock_path(REPO, image, stack, python)
            text = lock.read_text()
            pins = locks.pinned_versions(lock)
            assert pins and text.count("--hash=sha256:") >= len(pins), lock
        pins = locks.pinned_versions(locks.lock_path(REPO, image, "upstream", python))
        assert pins["sglang"] == "0.5.23" and pins["b12x"] == "1.5.1"
        assert pins["torch"] == "2.14.1" and pins["nvidia-modelopt"] == "0.47.0"
        assert pins["huggingface-hub"].startswith("1.")
        cutlass = {k: v for k, v in pins.items() if k.startswith("nvidia-cutlass-dsl")}
        assert set(cutlass.values()) == {"4.8.0"} and len(cutlass) >= 4
        assert not [k for k in pins if k.endswith("-cu12")]


class _FakeSGLang(argparse.ArgumentParser):
    def error(self, message):
        raise ValueError(message)


def _fake_parser(moe_choices):
    p = _FakeSGLang()
    for flag in ("--model-path", "--served-model-name", "--host", "--port", "--tp"):
        p.add_argument(flag)
    p.add_argument("--moe-runner-backend", choices=moe_choices)
    return p


def test_selfcheck_flags_are_what_serve_renders(recipe):
    flags = sglang_flags(recipe, "rtx-pro-6000-x8-upstream")
    assert flags[:2] == ["--model-path", "/models/ckpt"]
    assert flags[flags.index("--moe-runner-backend") + 1] == "flashinfer_cutlass"


def test_selfcheck_reports_a_missing_backend(recipe):
    parser = _fake_parser(["triton"])
    help_b12x = sglang_help("upstream-0.5.23-b12x")
    problems = profile_problems(recipe, "upstream", parser, lambda: help_b12x)
    assert list(problems) == ["rtx-pro-6000-x8-upstream", "rtx-pro-6000-x8-b12x"]
    for why in problems.values():
        assert "sglang's parser: argument --moe-runner-backend: invalid choice" in why


def test_selfcheck_runs_the_preflights_installed_sglang_check(recipe):
    # A parser that accepts anything: the preflight's --help check alone must catch b12x.
    permissive = _FakeSGLang()
    permissive.parse_args = lambda args=None, namespace=None: argparse.Namespace()
    forced = recipe.model_copy(
        update={
            "images": {
                "cu130": recipe.images["cu130"].model_copy(
                    update={"profiles": {"upstream": ("rtx-pro-6000-x8",)}}
                )
            }
        }
    )
    problems = profile_problems(
        forced, "upstream", permissive, lambda: sglang_help("upstream-0.5.23")
    )
    why = problems["rtx-pro-6000-x8"]
    assert "does not accept --fp4-gemm-backend b12x" in why
    assert "does not accept --moe-runner-backend b12x" in why
    # The upstream image advertises the b12x profile: it passes only with the plugin loaded.
    with_plugin = sglang_help("upstream-0.5.23-b12x")
    assert profile_problems(recipe, "upstream", permissive, lambda: with_plugin) == {}
    bare = sglang_help("upstream-0.5.23")
    without = profile_problems(recipe, "upstream", permissive, lambda: bare)
    assert list(without) == ["rtx-pro-6000-x8-b12x"]
    assert "does not accept --moe-runner-backend b12x" in without["rtx-pro-6000-x8-b12x"]


def test_runner_builds_through_proc_and_records_the_digest(recipe, tmp_path, monkeypatch):
    import json

    from glm51.image import runner
    from glm51.records import ImageRecord, read_record

    spec = _plan(recipe, metadata_file=tmp_path / "meta.json")
    calls = []

    def fake_run(argv, **kw):
        calls.append(list(argv))
        spec.metadata_file.write_text(json.dumps({"containerimage.digest": "sha256:" + "a" * 64}))

    monkeypatch.setattr(runner.proc, "run", fake_run)
    result = runner.build(spec, record=tmp_path / "image.json")
    assert calls == [buildx_argv(spec)]
    recorded = read_record(tmp_path / "image.json", ImageRecord)
    assert recorded.digest == result.digest == "sha256:" + "a" * 64
    assert recorded.tags == spec.tags and recorded.image == "cu130"
    assert json.loads((tmp_path / "image.json").read_text())["kind"] == "image"


def test_runner_without_metadata_is_an_infra_error(recipe, tmp_path, monkeypatch):
    from glm51.errors import InfraError
    from glm51.image import runner

    monkeypatch.setattr(runner.proc, "run", lambda argv, **kw: None)
    with pytest.raises(InfraError, match="no metadata"):
        runner.build(_plan(recipe, metadata_file=tmp_path / "m.json"), record=tmp_path / "i.json")


# --- lock selection, tags and locks at their boundaries (docs/testing.md, mutation testing) ---


@pytest.mark.parametrize(
    ("kw", "lock"),
    [
        ({}, "images/cu130/upstream-py312.lock"),  # the CUDA base: Ubuntu 24.04's Python 3.12
        ({"base_image": "glm51-base:bookworm"}, "images/cu130/upstream-py311.lock"),
        ({"base_image": "glm51-base:bookworm", "stack": "slim"}, "images/cu130/slim-py311.lock"),
        ({"stack": "slim"}, "images/cu130/slim-py312.lock"),
        ({"python": "3.11"}, "images/cu130/upstream-py311.lock"),  # asked for: wins over the base
        ({"base_image": "example.invalid/other:1"}, "images/cu130/upstream-py311.lock"),  # first
    ],
)
def test_the_base_image_python_selects_the_lock(recipe, kw, lock):
    assert _plan(recipe, **kw).lock == lock


def _repo_copy(tmp_path):
    """The image's files in a scratch repo whose py311 and py312 locks pin b12x differently."""
    repo = tmp_path / "repo"
    (repo / "images").mkdir(parents=True)
    import shutil

    shutil.copytree(REPO / "images" / "cu130", repo / "images" / "cu130")
    shutil.copy(REPO / "Dockerfile.cu130", repo / "Dockerfile.cu130")
    py312 = repo / "images" / "cu130" / "upstream-py312.lock"
    py312.write_text(py312.read_text().replace("b12x==1.5.1", "b12x==9.9.9"))
    return repo


def test_the_labels_come_from_the_selected_lock(recipe, tmp_path):
    repo = _repo_copy(tmp_path)
    defaults = dict(version="0.2.0", sha=SHA, created="c", source="s", metadata_file=Path("m"))
    cuda = plan(recipe, repo, **defaults)
    local = plan(recipe, repo, base_image="glm51-base:bookworm", **defaults)
    assert cuda.labels["org.glm51.b12x.version"] == "9.9.9"
    assert local.labels["org.glm51.b12x.version"] == "1.5.1"
    assert cuda.labels["org.glm51.lock.digest"] == local.labels["org.glm51.lock.digest"]
    assert cuda.labels["org.glm51.lock.digest"] != _plan(recipe).labels["org.glm51.lock.digest"]


def test_a_missing_lock_is_an_input_error(recipe, tmp_path):
    repo = _repo_copy(tmp_path)
    (repo / "images" / "cu130" / "upstream-py312.lock").unlink()
    with pytest.raises(InputError, match=r"upstream-py312\.lock: no such lock; run `nox -s upd"):
        plan(recipe, repo, version="1", sha=SHA, created="c", source="s", metadata_file=Path("m"))


def test_plan_fields_registry_and_flags(recipe):
    spec = _plan(recipe, registry="ghcr.io/org", no_cache=True)
    assert spec.tags == (
        "ghcr.io/org/glm51:0.2.0-cu130",
        "ghcr.io/org/glm51:0.2.0-cu130-46e95a294ca6",
    )
    assert spec.context == REPO and spec.dockerfile == REPO / "Dockerfile.cu130"
    assert spec.image == "cu130" and spec.version == "0.2.0"
    assert spec.default_profile == "rtx-pro-6000-x8-upstream" and spec.serve_port == 5000
    assert spec.labels["org.glm51.stack"] == "full"
    assert spec.labels["org.glm51.sglang.build"] == "upstream"
    assert spec.push is False and spec.no_cache is True and spec.ca_bundle is None
    argv = buildx_argv(spec)
    assert argv[-3:] == ["--no-cache", "--load", str(REPO)]
    assert argv[3:9] == [
        "--file",
        str(REPO / "Dockerfile.cu130"),
        "--target",
        "final",
        "--progress",
        "plain",
    ]
    labels = [argv[i + 1] for i, a in enumerate(argv) if a == "--label"]
    assert labels == sorted(labels) and len(labels) == len(spec.labels)
    assert "org.glm51.stack=full" in labels


def test_slim_build_reports_no_stack(recipe):
    spec = _plan(recipe, stack="slim")
    assert spec.labels["org.glm51.b12x.version"] == "none"
    assert spec.build_id == "0.2.0-46e95a294ca6-slim"


@pytest.mark.parametrize(
    ("sha", "ok"),
    [("abcdef1", True), ("abcdef", False), ("a" * 40, True), ("a" * 41, False), ("ABCDEF1", False)],
)
def test_short_sha_bounds(sha, ok):
    from glm51.image.tags import short_sha

    if ok:
        assert short_sha(sha) == sha[:12]
    else:
        with pytest.raises(InputError, match=rf"git sha '{sha}' is not hex \(7-40 characters\)"):
            short_sha(sha)


def test_tag_length_and_name_are_checked(recipe):
    image = recipe.images["cu130"].model_copy(update={"tags": ("glm51:{version}",)})
    assert image_tags(image, version="v" * 128, sha=SHA) == ["glm51:" + "v" * 128]
    with pytest.raises(InputError, match=r"is not a valid Docker tag"):
        image_tags(image, version="v" * 129, sha=SHA)
    nameless = image.model_copy(update={"tags": (":{version}",)})
    with pytest.raises(InputError, match=r"tag ':1' \(from ':\{version\}'\) is not a valid"):
        image_tags(nameless, version="1", sha=SHA)
    bad = image.model_copy(update={"tags": ("glm51:.{version}",)})
    with pytest.raises(InputError):
        image_tags(bad, version="1", sha=SHA)


def test_pinned_versions_normalizes_names_and_stops_at_markers(tmp_path):
    lock = tmp_path / "x.lock"
    lock.write_text(
        "# comment==1\n"
        "Foo_Bar.baz==1.2.3 \\\n    --hash=sha256:00\n"
        "qux==4.5; python_version < '3.12'\n"
        "  indented==9\n"
        "plain==7\\\n"
        "-e ./local\n"
    )
    assert locks.pinned_versions(lock) == {"foo-bar-baz": "1.2.3", "qux": "4.5", "plain": "7"}
    assert not locks.is_unresolved(lock)
    lock.write_text(locks.UNRESOLVED + " (needs GitHub)\nx==1\n")
    assert locks.is_unresolved(lock)
    lock.write_text("x==1\n" + locks.UNRESOLVED + "\n")
    assert not locks.is_unresolved(lock)  # only a first line marks it


def test_locks_digest_covers_names_and_bytes_in_name_order(tmp_path):
    a, b = tmp_path / "a.lock", tmp_path / "b.lock"
    a.write_text("x==1\n")
    b.write_text("y==2\n")
    digest = locks.locks_digest([a, b])
    assert digest == locks.locks_digest([b, a])
    import hashlib

    expected = hashlib.sha256(b"a.lock\0x==1\n\0b.lock\0y==2\n\0").hexdigest()
    assert digest == f"sha256:{expected}"
    b.write_text("y==3\n")
    assert locks.locks_digest([a, b]) != digest


def test_lock_files_and_paths(recipe, tmp_path):
    image = recipe.images["cu130"]
    assert locks.py_tag("3.12") == "py312"
    assert locks.lock_path(Path("/r"), image, "slim", "3.11") == Path(
        "/r/images/cu130/slim-py311.lock"
    )
    found = locks.lock_files(REPO, image)
    assert found == sorted(found) and all(p.suffix == ".lock" for p in found)
    assert REPO / "images/cu130/upstream-py312.lock" in found


def test_unreadable_base_pins_are_an_input_error(recipe, tmp_path):
    image = recipe.images["cu130"]
    with pytest.raises(InputError, match=r"pins.toml: cannot read the base image pins: "):
        locks.base_pins(tmp_path, image)
    (tmp_path / "images" / "cu130").mkdir(parents=True)
    (tmp_path / "images" / "cu130" / "pins.toml").write_text("not = [toml")
    with pytest.raises(InputError, match="cannot read the base image pins"):
        locks.base_pins(tmp_path, image)


def _recipe_with(recipe, **image_changes):
    image = recipe.images["cu130"].model_copy(update=image_changes)
    return recipe.model_copy(update={"images": {**recipe.images, "cu130": image}})


def test_a_build_without_advertised_profiles_serves_on_the_default_port(recipe):
    bare = _recipe_with(recipe, profiles={})
    spec = _plan(bare)
    assert spec.default_profile == "" and spec.serve_port == 5000
    pairs = [a for a in buildx_argv(spec) if a.startswith(("DEFAULT_PROFILE=", "SERVE_PORT="))]
    assert pairs == ["DEFAULT_PROFILE=", "SERVE_PORT=5000"]


def test_the_default_profiles_port_is_served(recipe):
    name = "rtx-pro-6000-x8-upstream"
    profile = recipe.profiles[name]
    moved = profile.model_copy(update={"server": profile.server.model_copy(update={"port": 5005})})
    other = recipe.model_copy(update={"profiles": {**recipe.profiles, name: moved}})
    assert _plan(other).serve_port == 5005


def test_the_named_image_is_planned(recipe):
    second = recipe.images["cu130"].model_copy(update={"tags": ("glm51:{version}-second",)})
    two = recipe.model_copy(update={"images": {**recipe.images, "second": second}})
    assert _plan(two).image == "cu130"
    spec = _plan(two, image_name="second")
    assert spec.image == "second" and spec.tags == ("glm51:0.2.0-second",)


def test_defaults_load_without_cache_or_push(recipe):
    spec = _plan(recipe)
    assert spec.no_cache is False and spec.push is False
    assert "--no-cache" not in buildx_argv(spec)
    argv = buildx_argv(_plan(recipe, ca_bundle=Path("/etc/ca.pem")))
    assert argv[:3] == ["docker", "buildx", "build"] and argv[-2:] == ["--load", str(REPO)]


def test_a_lock_without_b12x_reports_none(recipe, tmp_path):
    repo = _repo_copy(tmp_path)
    lock = repo / "images" / "cu130" / "upstream-py312.lock"
    lock.write_text(lock.read_text().replace("b12x==9.9.9", "not-b12x==9.9.9"))
    spec = plan(
        recipe, repo, version="1", sha=SHA, created="c", source="s", metadata_file=Path("m")
    )
    assert spec.labels["org.glm51.b12x.version"] == "none"


def test_the_unresolved_lock_message(recipe):
    lock = REPO / "images" / "cu130" / "blackwell-fork-py312.lock"
    with pytest.raises(InputError) as info:
        _plan(recipe, sglang_build="blackwell-fork")
    assert str(info.value) == (
        f"{lock} is not resolved yet (sglang build 'blackwell-fork' needs GitHub): "
        "run `nox -s update_pins` where github.com is reachable, commit the locks, rebuild"
    )


def test_a_registry_with_a_port_in_the_template(recipe):
    image = recipe.images["cu130"].model_copy(update={"tags": ("localhost:5000/glm51:{version}",)})
    assert image_tags(image, version="1.0", sha=SHA) == ["localhost:5000/glm51:1.0"]


def test_locks_digest_orders_by_file_name_not_by_path(tmp_path):
    (tmp_path / "z").mkdir()
    a, b = tmp_path / "z" / "a.lock", tmp_path / "b.lock"
    a.write_text("x==1\n")
    b.write_text("y==2\n")
    import hashlib

    expected = hashlib.sha256(b"a.lock\0x==1\n\0b.lock\0y==2\n\0").hexdigest()
    assert locks.locks_digest([b, a]) == locks.locks_digest([a, b]) == f"sha256:{expected}"


def test_every_build_plugin_is_a_plugin_distribution_in_this_repository(recipe):
    named = {p for build in recipe.sglang_builds.values() for p in build.plugins}
    assert named == {"glm51-sglang-b12x"}
    for plugin in named:
        project = tomllib.loads((REPO / "plugins" / plugin / "pyproject.toml").read_text())
        assert project["project"]["name"] == plugin
        assert "sglang.srt.plugins" in project["project"]["entry-points"]
        sglang_pin = f"sglang=={recipe.sglang_builds['upstream'].version}"
        assert sglang_pin in project["project"]["dependencies"]


def test_several_plugins_are_one_space_separated_build_arg(recipe):
    from dataclasses import replace

    spec = replace(_plan(recipe), sglang_plugins=("glm51-sglang-b12x", "other-plugin"))
    assert "GLM51_SGLANG_PLUGINS=glm51-sglang-b12x other-plugin" in buildx_argv(spec)
