"""Cross-device agreement of input scales, defined by coverage (a pure function)."""

from __future__ import annotations

import numpy as np

from glm51.calib.coverage import ExpertCounts
from glm51.quantize.agreement import TOLERANCE, compare_input_scales


def _counts(rows) -> ExpertCounts:
    c = np.array(rows, dtype=np.int64)
    return ExpertCounts((1, 2), c, np.where(c > 0, 0, -1), int(c.sum()))


def _scales(values: dict) -> dict:
    out = {}
    for (layer, expert), v in values.items():
        for proj in ("gate_proj", "up_proj", "down_proj"):
            out[f"model.layers.{layer}.mlp.experts.{expert}.{proj}.input_scale"] = v
    return out


def test_covered_experts_within_the_tolerance_agree_and_the_rest_are_listed():
    counts = _counts([[10, 3], [8, 0]])  # layer 1: 10, 3 tokens; layer 2: 8, 0
    a = _scales({(1, 0): 1.0, (1, 1): 1.0, (2, 0): 2.0, (2, 1): 2.0})
    b = _scales({(1, 0): 1.1, (1, 1): 9.0, (2, 0): 2.0, (2, 1): 0.1})
    got = compare_input_scales(a, b, counts, counts, warn_below=8)
    assert got.ok and got.compared == 6 and not got.outside and not got.missing
    assert abs(got.max_relative - 0.1 / 1.1) < 1e-12
    assert got.uncovered == tuple(
        sorted(
            f"model.layers.{layer}.mlp.experts.1.{p}.input_scale"
            for layer in (1, 2)
            for p in ("down_proj", "gate_proj", "up_proj")
        )
    )
    assert "6 compared" in got.render() and "6 not held to it" in got.render()


def test_a_covered_expert_outside_the_tolerance_fails_and_is_named():
    counts = _counts([[10, 10], [10, 10]])
    a = _scales({(1, 0): 1.0, (1, 1): 1.0, (2, 0): 1.0, (2, 1): 1.0})
    b = dict(a)
    b["model.layers.2.mlp.experts.1.down_proj.input_scale"] = 1.0 + 2 * TOLERANCE
    got = compare_input_scales(a, b, counts, counts, warn_below=8)
    assert not got.ok and [m.name for m in got.outside] == [
        "model.layers.2.mlp.experts.1.down_proj.input_scale"
    ]
    assert "outside: model.layers.2.mlp.experts.1.down_proj" in got.render()


def test_coverage_is_the_smaller_of_the_two_runs_counts():
    a = _scales({(1, 0): 1.0, (1, 1): 1.0, (2, 0): 1.0, (2, 1): 1.0})
    b = _scales({(1, 0): 5.0, (1, 1): 1.0, (2, 0): 1.0, (2, 1): 1.0})
    cpu, cuda = _counts([[9, 9], [9, 9]]), _counts([[7, 9], [9, 9]])  # a routing flip
    got = compare_input_scales(a, b, cpu, cuda, warn_below=8)
    assert got.ok and len(got.uncovered) == 3


def test_missing_scales_nan_and_nothing_compared_are_failures():
    counts = _counts([[10, 10], [10, 10]])
    a = _scales({(1, 0): 1.0, (1, 1): 1.0, (2, 0): 1.0, (2, 1): 1.0})
    b = dict(a)
    del b["model.layers.1.mlp.experts.0.gate_proj.input_scale"]
    assert compare_input_scales(a, b, counts, counts, warn_below=8).missing
    b = {**a, "model.layers.1.mlp.experts.0.gate_proj.input_scale": float("nan")}
    assert not compare_input_scales(a, b, counts, counts, warn_below=8).ok
    starved = _counts([[1, 1], [1, 1]])
    assert not compare_input_scales(a, a, starved, starved, warn_below=8).ok  # vacuous
    other = {"model.layers.1.self_attn.o_proj.input_scale": 1.0}
    got = compare_input_scales(other, {k: 1.2 for k in other}, starved, starved, warn_below=8)
    assert got.ok and got.compared == 1  # outside the experts: always compared
