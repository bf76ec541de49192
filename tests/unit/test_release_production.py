"""The real release's steps with the outside world replaced: docker and child glm51 calls go
through a recorded `proc.run`, so the tests see exactly what would run and in which order."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from glm51.errors import GateFailed, InfraError, InputError, PreflightError
from glm51.records import ImageRecord, write_record
from glm51.records.release import RunManifest
from glm51.release import measure, production
from glm51.release import steps as shared
from glm51.release.request import ReleaseRequest
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
    return Context(tmp_path, ReleaseRequest(version="v1.2.3", checkpoint=tmp_path / "ckpt"))


def _fake_proc(monkeypatch, answers):
    """answers: (argv prefix, (returncode, stdout, stderr)) for the first call it matches."""
    calls = []

    def run(argv, **kw):
        calls.append(list(argv))
        for prefix, result in answers:
            if list(argv[: len(prefix)]) == prefix:
                code, out, err = (*result, "")[:3]
                return SimpleNamespace(returncode=code, stdout=out, stderr=err)
        return SimpleNamespace(returncode=0, stdout="", stderr="")

    monkeypatch.setattr(production.proc, "run", run)
    return calls


def test_the_release_tag_is_created_once_and_the_moving_tags_follow(context, monkeypatch, recipe):
    absent = (1, "", "ERROR: ghcr.io/lukealonso/glm51:v1.2.3-cu130: not found")
    calls = _fake_proc(monkeypatch, [(["docker", "buildx", "imagetools", "inspect"], absent)])
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


def test_a_registry_that_cannot_answer_is_not_taken_for_a_missing_tag(context, monkeypatch, recipe):
    failing = (1, "", "ERROR: failed to do request: 503 Service Unavailable")
    calls = _fake_proc(monkeypatch, [(["docker", "buildx", "imagetools", "inspect"], failing)])
    with pytest.raises(InfraError, match="cannot tell whether"):
        production.step_tag(recipe)(context)
    assert not [c for c in calls if "create" in c]


def test_publish_refuses_before_uploading_when_the_image_tag_is_taken(context, monkeypatch, recipe):
    taken = (0, json.dumps({"digest": OTHER}))
    _fake_proc(monkeypatch, [(["docker", "buildx", "imagetools", "inspect"], taken)])
    uploads = []
    monkeypatch.setattr(shared, "run_publish", lambda *a, **k: uploads.append(a))
    context.path(production.CARD).write_text("card")
    with pytest.raises(InputError, match="never moves"):
        production.step_publish(recipe)(context)
    assert uploads == []


@pytest.mark.parametrize(
    ("fails", "error"),
    [(None, None), ("bench", GateFailed), ("smoke", GateFailed), ("smoke", InfraError)],
)
def test_gates_serve_the_pushed_digest_measure_in_process_and_always_stop_it(
    context, monkeypatch, recipe, fails, error
):
    calls = []

    def run(argv, **kw):
        calls.append(list(argv))
        return SimpleNamespace(returncode=0, stdout="", stderr="")

    measured = []

    def stage(name):
        def call(req, rec, **kw):
            measured.append((name, req))
            assert rec is recipe  # the release's own recipe object, not a path re-read
            if fails == name:
                raise error(f"{name} failed")
            return SimpleNamespace()

        return call

    monkeypatch.setattr(production.proc, "run", run)
    monkeypatch.setattr(production, "_answers", lambda url: False)  # the port is free
    monkeypatch.setattr(measure, "run_smoke", stage("smoke"))
    monkeypatch.setattr(measure, "run_bench", stage("bench"))
    monkeypatch.setattr(measure, "smoke_raise_for", lambda record: None)
    monkeypatch.setattr(measure, "bench_raise_for", lambda record: None)
    waited = []
    monkeypatch.setattr(production, "wait_ready", lambda url, **kw: waited.append(url) or 1.0)
    if error is None:
        production.step_gates(recipe)(context)
    else:
        with pytest.raises(error) as info:
            production.step_gates(recipe)(context)
        assert info.value.exit_code == error.exit_code  # the stage's own error, not a code map
    assert waited == ["http://127.0.0.1:5000/health"]  # served before any check ran
    serve = next(c for c in calls if c[:2] == ["docker", "run"])
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
    assert [c[:2] for c in calls[-2:]] == [["docker", "stop"], ["docker", "rm"]]  # always
    if error is not None:
        assert ["docker", "logs", "--tail", "200"] in [c[:4] for c in calls]  # the cause, shown
    # Smoke, then bench, both in this process against the served endpoint, records in the run.
    assert [n for n, _ in measured] == ["smoke", "bench"][: 1 if fails == "smoke" else 2]
    smoke = measured[0][1]
    assert smoke.endpoint == "http://127.0.0.1:5000" and smoke.out_dir == context.path("smoke")
    if fails != "smoke":
        bench = measured[1][1]
        assert (bench.profile, bench.gate_set) == (recipe.gates.profile, "release")
        assert (
            bench.hardware == "8x NVIDIA RTX PRO 6000 Blackwell Workstation Edition"
            or bench.hardware.startswith("8x NVIDIA")
        )
    # The only child processes are docker's: no glm51 is started by the release.
    assert all(c[0] == "docker" for c in calls), calls


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


def test_gates_refuse_a_port_something_else_already_serves(context, monkeypatch, recipe):
    calls = _fake_proc(monkeypatch, [])
    monkeypatch.setattr(production, "_answers", lambda url: True)
    with pytest.raises(PreflightError, match="already serves on port 5000"):
        production.step_gates(recipe)(context)
    assert calls == []


def test_later_jobs_refuse_earlier_steps_done_on_other_weights(context, recipe, monkeypatch):
    """gates ran on one checkpoint; publish in the next job must not ship another."""
    from glm51.checkpoint.manifest import MANIFEST

    (context.path("ckpt") / MANIFEST).write_text('{"weights": "A"}')
    done = {n: (lambda c, n=n: production.Outcome(None, n)) for n in production.STEPS}
    steps = [production.Step(s.name, done[s.name], s.inputs) for s in production.steps(recipe)]
    manifest = run_steps(
        steps,
        context,
        RunManifest(version="v1.2.3", rehearsal=False),
        only=["image", "verify", "fidelity", "gates"],
    )
    (context.path("ckpt") / MANIFEST).write_text('{"weights": "B"}')
    with pytest.raises(InputError, match=r"step verify .* ran with other inputs"):
        run_steps(steps, context, manifest, only=["card", "publish"])
