"""The real release's steps with the outside world replaced: docker and child glm51 calls go
through a recorded `proc.run`, so the tests see exactly what would run and in which order."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from glm51.errors import GateFailed, InfraError, InputError
from glm51.records import ImageRecord, write_record
from glm51.records.release import RunManifest
from glm51.release import production
from glm51.release.runner import Context, run_steps

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


@pytest.fixture
def context(tmp_path):
    record = ImageRecord(
        image="cu130",
        tags=("ghcr.io/lukealonso/glm51:1.2.3-cu130", "ghcr.io/lukealonso/glm51:1.2.3-cu130-abc"),
        digest=DIGEST,
        pushed=True,
        build_seconds=1.0,
        version="1.2.3",
        sglang_build="upstream",
        stack="full",
        base_image="base",
    )
    write_record(record, tmp_path / production.IMAGE)
    (tmp_path / "ckpt").mkdir()
    options = {"version": "v1.2.3", "checkpoint": tmp_path / "ckpt"}
    return Context(tmp_path, options)


def _fake_proc(monkeypatch, answers):
    calls = []

    def run(argv, **kw):
        calls.append(list(argv))
        for prefix, result in answers:
            if list(argv[: len(prefix)]) == prefix or prefix[0] in argv[-3:]:
                return SimpleNamespace(returncode=result[0], stdout=result[1], stderr="")
        return SimpleNamespace(returncode=0, stdout="", stderr="")

    monkeypatch.setattr(production.proc, "run", run)
    return calls


def test_the_release_tag_is_created_once_and_the_moving_tags_follow(context, monkeypatch, recipe):
    calls = _fake_proc(monkeypatch, [(["docker", "buildx", "imagetools", "inspect"], (1, ""))])
    production.step_tag(recipe)(context)
    source = f"ghcr.io/lukealonso/glm51@{DIGEST}"
    creates = [c for c in calls if c[3] == "create"]
    create = ["docker", "buildx", "imagetools", "create", "--tag"]
    assert creates == [
        [*create, "ghcr.io/lukealonso/glm51:v1.2.3-cu130", source],
        [*create, "ghcr.io/lukealonso/glm51:latest-cu130", source],
    ]
    tags = json.loads(context.path(production.TAGS).read_text())
    assert tags["immutable"].endswith(":v1.2.3-cu130") and tags["digest"] == DIGEST


def test_an_existing_release_tag_of_another_image_is_never_moved(context, monkeypatch, recipe):
    found = json.dumps({"digest": OTHER})
    calls = _fake_proc(monkeypatch, [(["docker", "buildx", "imagetools", "inspect"], (0, found))])
    with pytest.raises(InputError, match="never moves"):
        production.step_tag(recipe)(context)
    assert not [c for c in calls if "create" in c]


def test_the_same_image_already_tagged_moves_only_the_moving_tags(context, monkeypatch, recipe):
    found = json.dumps({"digest": DIGEST})
    calls = _fake_proc(monkeypatch, [(["docker", "buildx", "imagetools", "inspect"], (0, found))])
    production.step_tag(recipe)(context)
    assert [c[5] for c in calls if "create" in c] == ["ghcr.io/lukealonso/glm51:latest-cu130"]


@pytest.mark.parametrize(("code", "error"), [(5, GateFailed), (4, Exception), (1, InfraError)])
def test_gates_serve_the_pushed_digest_and_always_stop_it(
    context, monkeypatch, recipe, code, error
):
    def answers(argv):
        return code if "bench" in argv else 0

    calls = []

    def run(argv, **kw):
        calls.append(list(argv))
        return SimpleNamespace(returncode=answers(argv), stdout="", stderr="")

    monkeypatch.setattr(production.proc, "run", run)
    waited = []
    monkeypatch.setattr(production, "wait_ready", lambda url, **kw: waited.append(url) or 1.0)
    with pytest.raises(error) as info:
        production.step_gates(recipe)(context)
    assert waited == ["http://127.0.0.1:5000/health"]  # served before any check ran
    if code == 5:
        assert info.value.exit_code == 5
    serve = calls[0]
    assert serve[:3] == ["docker", "run", "--detach"]
    assert f"ghcr.io/lukealonso/glm51@{DIGEST}" in serve
    assert f"{context.path('ckpt')}:/models/checkpoint:ro" in serve
    assert serve[-6:] == [
        "glm51",
        "serve",
        "--profile",
        recipe.gates.profile,
        "--model",
        "/models/checkpoint",
    ]
    assert calls[-1][:2] == ["docker", "stop"]  # stopped, whatever the gates said
    children = [c for c in calls if "-c" in c]
    assert [c[3] for c in children] == ["smoke", "bench"]


def test_a_step_selected_before_its_predecessors_ran_is_refused(context, recipe):
    manifest = RunManifest(version="v1.2.3", rehearsal=False)
    with pytest.raises(InputError, match="step image has not run"):
        run_steps(production.steps(recipe), context, manifest, only=["publish"])


def test_unknown_steps_are_named(context, recipe):
    with pytest.raises(InputError, match=r"unknown step.*deploy"):
        run_steps(
            production.steps(recipe),
            context,
            RunManifest(version="v1", rehearsal=False),
            only=["deploy"],
        )


def test_notes_name_the_immutable_tag_and_the_digest(context, recipe):
    production.step_notes(recipe)(context)
    notes = context.path(production.NOTES).read_text()
    assert "ghcr.io/lukealonso/glm51:v1.2.3-cu130" in notes and DIGEST in notes
    assert "https://huggingface.co/lukealonso/GLM-5.1-NVFP4/tree/v1.2.3" in notes
