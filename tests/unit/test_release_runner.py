"""The release runner: ordered steps, resumed by their keys, stopped by a failing gate."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from glm51.errors import GateFailed, InfraError, InputError
from glm51.records import read_record
from glm51.records.release import RunManifest
from glm51.release.request import ReleaseRequest
from glm51.release.runner import (
    RUN_MANIFEST,
    Context,
    Outcome,
    Step,
    load_manifest,
    run_steps,
    step_key,
)


def _steps(calls: list[str], *, fail: dict[str, Exception] | None = None, inputs=None):
    fail = fail or {}
    inputs = inputs or {}

    def make(name: str) -> Step:
        def run(context: Context) -> Outcome:
            calls.append(name)
            if name in fail:
                raise fail[name]
            (context.run_dir / f"{name}.json").write_text("{}")
            return Outcome(f"{name}.json", f"{name} ok")

        return Step(name, run, lambda c, n=name: inputs.get(n, {}))

    return [make(n) for n in ("image", "quantize", "verify", "gates", "card", "publish", "tag")]


def _run(tmp_path, steps):
    manifest = load_manifest(tmp_path) or RunManifest(version="v1.2.3", rehearsal=True)
    return run_steps(steps, Context(tmp_path), manifest)


def test_steps_run_in_order_and_a_rerun_skips_every_valid_one(tmp_path):
    calls: list[str] = []
    _run(tmp_path, _steps(calls))
    assert calls == ["image", "quantize", "verify", "gates", "card", "publish", "tag"]
    recorded = read_record(tmp_path / RUN_MANIFEST, RunManifest)
    assert [s.status for s in recorded.steps] == ["done"] * 7
    calls.clear()
    _run(tmp_path, _steps(calls))
    assert calls == []


def test_a_changed_input_reruns_that_step_and_every_later_one_only(tmp_path):
    calls: list[str] = []
    _run(tmp_path, _steps(calls))
    calls.clear()
    _run(tmp_path, _steps(calls, inputs={"gates": {"tolerance": 0.1}}))
    assert calls == ["gates", "card", "publish", "tag"]


def test_a_missing_record_reruns_its_step_and_later_ones_only_if_it_came_out_different(tmp_path):
    calls: list[str] = []
    _run(tmp_path, _steps(calls))
    (tmp_path / "card.json").unlink()
    calls.clear()
    _run(tmp_path, _steps(calls))
    assert calls == ["card"]  # the same bytes again: publish and tag stand
    (tmp_path / "card.json").write_text('{"edited": true}')
    calls.clear()
    _run(tmp_path, _steps(calls))
    assert calls == ["publish", "tag"]  # the card on disk changed: what follows re-runs


def test_a_failed_gate_stops_before_publish_and_tag_with_its_exit_code(tmp_path):
    calls: list[str] = []
    gate = GateFailed("c64 measured 900 tok/s, the gate is 1058 (tolerance 5%)")
    with pytest.raises(GateFailed) as info:
        _run(tmp_path, _steps(calls, fail={"gates": gate}))
    assert info.value.exit_code == 5
    assert calls == ["image", "quantize", "verify", "gates"]
    recorded = read_record(tmp_path / RUN_MANIFEST, RunManifest)
    gates = recorded.entry("gates")
    assert gates.status == "failed" and gates.exit_code == 5 and "c64" in gates.message
    assert recorded.entry("publish") is None and recorded.entry("tag") is None
    # Fixed (the gate passes now): the run resumes at the gate, not at the image.
    calls.clear()
    _run(tmp_path, _steps(calls))
    assert calls == ["gates", "card", "publish", "tag"]


def test_an_infrastructure_failure_keeps_its_own_exit_code(tmp_path):
    with pytest.raises(InfraError) as info:
        _run(tmp_path, _steps([], fail={"image": InfraError("registry unreachable")}))
    assert info.value.exit_code == 6
    assert read_record(tmp_path / RUN_MANIFEST, RunManifest).entry("image").exit_code == 6


# --- selections, the manifest's contents and the log (docs/testing.md, mutation testing) ---


def test_step_key_is_the_digest_of_name_inputs_and_the_previous_key():
    text = json.dumps({"step": "s", "inputs": {"b": 1, "a": 2}, "after": "k"}, sort_keys=True)
    assert step_key("s", {"a": 2, "b": 1}, "k") == hashlib.sha256(text.encode()).hexdigest()
    assert step_key("s", {}, "k") != step_key("s", {}, "") != step_key("t", {}, "")


def test_only_runs_the_named_steps_after_the_earlier_ones(tmp_path):
    calls: list[str] = []
    manifest = RunManifest(version="v1", rehearsal=False)
    context = Context(tmp_path)
    done = run_steps(_steps(calls), context, manifest, only=["image", "quantize"])
    assert calls == ["image", "quantize"]
    assert [s.name for s in done.steps] == ["image", "quantize"]
    calls.clear()
    done = run_steps(_steps(calls), context, done, only=["gates", "verify"])
    assert calls == ["verify", "gates"]
    calls.clear()
    run_steps(_steps(calls), context, done)  # the whole chain: what ran is valid
    assert calls == ["card", "publish", "tag"]


def test_only_refuses_unknown_steps_and_unrun_earlier_ones(tmp_path):
    manifest = RunManifest(version="v1", rehearsal=False)
    with pytest.raises(InputError) as info:
        run_steps(_steps([]), Context(tmp_path), manifest, only=["zz", "gates", "aa"])
    assert str(info.value) == (
        "unknown step(s) aa, zz; expected some of "
        "image, quantize, verify, gates, card, publish, tag"
    )
    calls: list[str] = []
    done = run_steps(_steps(calls), Context(tmp_path), manifest, only=["image"])
    with pytest.raises(InputError) as info:
        run_steps(_steps(calls), Context(tmp_path), done, only=["gates", "publish"])
    assert str(info.value) == (
        f"step quantize has not run in {tmp_path}; it comes before gates, publish: run it first"
    )
    assert calls == ["image"]


def test_manifest_entries_and_log(tmp_path):
    lines: list[str] = []
    seen: list[tuple] = []

    def first(context):
        during = read_record(context.run_dir / RUN_MANIFEST, RunManifest).entry("a")
        seen.append((during.status, during.key, during.started_at is not None))
        return Outcome("a.json", "", value=41)

    def second(context):
        (context.path("b.json")).write_text("{}")
        return Outcome(None, "second ok", value=context.outputs["a"] + 1)

    (tmp_path / "a.json").write_text("{}")
    steps = [Step("a", first, lambda c: {"x": 1}), Step("b", second)]
    context = Context(tmp_path)
    done = run_steps(steps, context, RunManifest(version="v1", rehearsal=True), log=lines.append)
    key_a = step_key("a", {"x": 1}, "")
    assert seen == [("running", key_a, True)]
    assert context.outputs == {"a": 41, "b": 42}
    a, b = done.steps
    assert (a.name, a.status, a.key, a.record, a.message) == ("a", "done", key_a, "a.json", "")
    assert a.seconds is not None and a.seconds >= 0 and a.exit_code is None
    chained = hashlib.sha256(key_a.encode())
    chained.update(b"{}")
    assert b.key == step_key("b", {}, chained.hexdigest())
    assert b.record is None and b.message == "second ok"
    assert lines == ["a: running", "a: done", "b: running", "b: second ok"]
    assert read_record(tmp_path / RUN_MANIFEST, RunManifest) == done
    lines.clear()
    run_steps(steps, Context(tmp_path), done, log=lines.append)
    assert lines == ["a: done already (a.json), skipped", "b: done already (second ok), skipped"]


def test_a_step_without_a_record_is_valid_and_still_valid_can_say_otherwise(tmp_path):
    calls: list[str] = []

    def run(context):
        calls.append("x")
        return Outcome(None)

    manifest = RunManifest(version="v1", rehearsal=True)
    done = run_steps([Step("x", run)], Context(tmp_path), manifest)
    run_steps([Step("x", run)], Context(tmp_path), done)
    assert calls == ["x"]
    checked: list[str] = []

    def stale(context, entry):
        checked.append(entry.name)
        return False

    run_steps([Step("x", run, still_valid=stale)], Context(tmp_path), done)
    assert calls == ["x", "x"] and checked == ["x"]


def test_a_failure_records_its_first_line_at_most_500_characters(tmp_path):
    long = "x" * 600
    with pytest.raises(GateFailed):
        _run(tmp_path, _steps([], fail={"image": GateFailed(f"{long}\nsecond line")}))
    entry = read_record(tmp_path / RUN_MANIFEST, RunManifest).entry("image")
    assert entry.message == "x" * 500
    assert entry.status == "failed" and entry.seconds is not None and entry.started_at


def test_no_manifest_yet(tmp_path):
    assert load_manifest(tmp_path) is None
    assert Context(tmp_path).path("x") == tmp_path / "x"


def test_seconds_and_start_times_are_recorded(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from glm51.release import runner

    ticks = iter([100.0, 102.3456, 200.0, 201.26])
    monkeypatch.setattr(runner, "time", SimpleNamespace(monotonic=lambda: next(ticks)))
    monkeypatch.setattr(runner, "utc_now", lambda: "2026-11-27T18:00:00Z")

    def ok(context):
        return Outcome(None, "ok")

    def bad(context):
        raise GateFailed("no")

    manifest = RunManifest(version="v1", rehearsal=True)
    with pytest.raises(GateFailed):
        run_steps([Step("a", ok), Step("b", bad)], Context(tmp_path), manifest)
    a, b = read_record(tmp_path / RUN_MANIFEST, RunManifest).steps
    assert (a.seconds, a.started_at) == (2.3, "2026-11-27T18:00:00Z")
    assert (b.seconds, b.started_at) == (1.3, "2026-11-27T18:00:00Z")
    assert isinstance(b.seconds, float)


def test_the_refusal_lists_the_asked_steps_after_the_missing_one(tmp_path):
    manifest = RunManifest(version="v1", rehearsal=False)
    with pytest.raises(InputError) as info:
        run_steps(_steps([]), Context(tmp_path), manifest, only=["image", "gates"])
    assert str(info.value).endswith("it comes before gates: run it first")
    assert str(info.value).startswith("step quantize has not run")
    with pytest.raises(InputError) as info:
        run_steps(_steps([]), Context(tmp_path), manifest, only=["quantize", "publish"])
    assert str(info.value) == (
        f"step image has not run in {tmp_path}; it comes before quantize, publish: run it first"
    )


def test_a_steps_inputs_are_read_from_the_context(tmp_path):
    seen = []

    def inputs(context):
        seen.append(context.request.checkpoint)
        return {"model": str(context.request.checkpoint)}

    context = Context(tmp_path, ReleaseRequest(checkpoint=Path("/m")))
    done = run_steps(
        [Step("a", lambda c: Outcome(None), inputs)],
        context,
        RunManifest(version="v", rehearsal=True),
    )
    assert seen == [Path("/m")]
    assert done.steps[0].key == step_key("a", {"model": "/m"}, "")


@pytest.mark.parametrize(
    ("request_", "words"),
    [
        (
            ReleaseRequest(rehearsal=True, checkpoint=Path("c")),
            "--checkpoint: not used with --rehearsal",
        ),
        (ReleaseRequest(steps=()), "--steps: names no step"),
        (
            ReleaseRequest(checkpoint=Path("c"), steps=("verify", "gatez")),
            "--steps: unknown ['gatez']",
        ),
        (ReleaseRequest(), "--checkpoint PATH (or GLM51_CHECKPOINT)"),
        (ReleaseRequest(steps=("verify",)), "needed by every step but image"),
        (ReleaseRequest(checkpoint=Path("c")), "--source PATH (or GLM51_SOURCE)"),
        (
            ReleaseRequest(rehearsal=True, source=Path("s")),
            "--source: not used with --rehearsal",
        ),
    ],
)
def test_a_release_request_that_contradicts_itself_is_refused(request_, words):
    with pytest.raises(InputError) as err:
        request_.check()
    assert words in str(err.value)


def test_a_consistent_release_request_passes(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "s").mkdir()
    c, s = tmp_path / "c", tmp_path / "s"
    ReleaseRequest(steps=("image",)).check()  # the image needs no checkpoint
    ReleaseRequest(checkpoint=c, source=s).check()
    ReleaseRequest(checkpoint=c, steps=("verify", "gates")).check()  # no fidelity step
    ReleaseRequest(rehearsal=True, steps=("tiny-model",)).check()  # the rehearsal's own steps
    with pytest.raises(TypeError):
        ReleaseRequest("v1.0.0")  # keyword-only: no option is passed by position


def test_the_step_names_the_request_checks_are_the_chains_own(recipe):
    from glm51.release import production, rehearsal
    from glm51.release.names import REHEARSAL_STEPS, STEPS

    assert tuple(s.name for s in production.steps(recipe)) == STEPS
    assert tuple(s.name for s in rehearsal.steps(recipe)) == REHEARSAL_STEPS
    with pytest.raises(InputError, match=r"--steps: unknown \['bogus'\]"):
        ReleaseRequest(rehearsal=True, steps=("bogus",)).check()


@pytest.mark.parametrize("missing", ["--checkpoint", "--source"])
def test_a_missing_checkpoint_or_source_is_refused_before_any_step(tmp_path, missing):
    """Through the CLI: exit 3 naming the option, the run folder not created (the image
    build would otherwise run first, and the typo surface only at verify or fidelity)."""
    from typer.testing import CliRunner

    from glm51.cli import app
    from tests.support.cli import error_text, exit_code

    folders = {"--checkpoint": tmp_path / "nvfp4", "--source": tmp_path / "bf16"}
    for option, path in folders.items():
        if option != missing:
            path.mkdir()
    argv = ["release", "--version", "v1.0.0", "--run-dir", str(tmp_path / "run")]
    for option, path in folders.items():
        argv += [option, str(path)]
    result = CliRunner().invoke(app, argv)
    assert exit_code(result) == 3, result.output
    assert f"{missing} {folders[missing]}: no such folder" in error_text(result)
    assert not (tmp_path / "run").exists()
