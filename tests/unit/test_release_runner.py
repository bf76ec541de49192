"""The release runner: ordered steps, resumed by their keys, stopped by a failing gate."""

from __future__ import annotations

import pytest

from glm51.errors import GateFailed, InfraError
from glm51.records import read_record
from glm51.records.release import RunManifest
from glm51.release.runner import RUN_MANIFEST, Context, Outcome, Step, load_manifest, run_steps


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
