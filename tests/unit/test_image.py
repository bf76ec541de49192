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


def test_every_build_plugin_is_a_plugin_distribution_in_this_repository(recipe):
    named = {p for build in recipe.sglang_builds.values() for p in build.plugins}
    assert named == {"glm51-sglang-b12x"}
    for plugin in named:
        project = tomllib.loads((REPO / "plugins" / plugin / "pyproject.toml").read_text())
        assert project["project"]["name"] == plugin
        assert "sglang.srt.plugins" in project["project"]["entry-points"]
        sglang_pin = f"sglang=={recipe.sglang_builds['upstream'].version}"
        assert sglang_pin in project["project"]["dependencies"]
