"""Expert coverage: counting, merging passes, the gate and the reports."""

from __future__ import annotations

import json

import numpy as np
import pytest

from glm51.calib.coverage import ExpertCounts, evaluate, gate, merge, write_reports
from glm51.errors import GateFailed, InputError
from glm51.recipe.calibration import Coverage

LAYERS = (3, 4, 7)  # real layer indices of the MoE layers (0-2 dense)
EXPERTS = 16


def _routing(rng: np.random.Generator, tokens: int, k: int = 2) -> list[np.ndarray]:
    """Top-k ids per token (distinct within a token), one array per MoE layer."""
    return [
        np.stack([rng.choice(EXPERTS, size=k, replace=False) for _ in range(tokens)])
        for _ in LAYERS
    ]


def _counts(routed: list[np.ndarray]) -> ExpertCounts:
    return ExpertCounts.from_routing(LAYERS, EXPERTS, routed, len(routed[0]))


def test_from_routing_counts_and_first_seen():
    routed = [np.array([[0, 1], [1, 2], [0, 2]])] * 3
    c = ExpertCounts.from_routing(LAYERS, 4, routed, 3)
    assert c.counts[0].tolist() == [2, 2, 2, 0]
    assert c.first_seen[0].tolist() == [0, 0, 1, -1]
    assert c.tokens == 3 and c.layers == LAYERS


def test_merge_equals_counting_the_concatenated_stream():
    rng = np.random.default_rng(0)
    a, b, c = _routing(rng, 50), _routing(rng, 30), _routing(rng, 20)
    merged = merge([_counts(a), _counts(b), _counts(c)])
    joint = _counts([np.concatenate(parts) for parts in zip(a, b, c, strict=True)])
    assert merged.tokens == joint.tokens == 100
    np.testing.assert_array_equal(merged.counts, joint.counts)
    np.testing.assert_array_equal(merged.first_seen, joint.first_seen)


def test_merge_keeps_first_sighting_from_a_later_pass():
    early = ExpertCounts.from_routing((5,), 3, [np.array([[0], [0]])], 2)
    late = ExpertCounts.from_routing((5,), 3, [np.array([[1], [2], [0]])], 3)
    m = merge([early, late])
    assert m.counts.tolist() == [[3, 1, 1]]
    assert m.first_seen.tolist() == [[0, 2, 3]]


def test_merge_refuses_mismatched_shapes():
    with pytest.raises(InputError, match="cannot merge"):
        merge([ExpertCounts.empty((3,), 4), ExpertCounts.empty((3, 4), 4)])


def test_inconsistent_first_seen_is_rejected():
    with pytest.raises(ValueError, match="first_seen must be >= 0 exactly where counts > 0"):
        ExpertCounts((1,), np.array([[1, 0]]), np.array([[-1, -1]]), 1)


def test_counts_save_and_load(tmp_path):
    c = _counts(_routing(np.random.default_rng(1), 10))
    again = ExpertCounts.load(c.save(tmp_path / "c.npz"))
    assert again.layers == c.layers and again.tokens == c.tokens
    np.testing.assert_array_equal(again.counts, c.counts)
    np.testing.assert_array_equal(again.first_seen, c.first_seen)
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(InputError, match=r"bad\.npz: not an expert-counts file"):
        ExpertCounts.load(tmp_path / "bad.npz")


def test_starved_calibration_fails_the_gate_with_the_exact_pairs():
    rng = np.random.default_rng(2)
    starved = _counts(_routing(rng, 3))  # 3 tokens x top-2: at most 6 of 16 experts per layer
    expected = sorted(
        (layer, e)
        for i, layer in enumerate(LAYERS)
        for e in range(EXPERTS)
        if starved.counts[i, e] == 0
    )
    report = evaluate({"coding": starved}, Coverage(fail_below=1, warn_below=8))
    assert sorted(report.merged.failing) == expected and not report.ok
    with pytest.raises(GateFailed) as err:
        gate(report)
    message = str(err.value)
    assert f"{len(expected)} routed experts" in message
    for layer, expert in expected:
        assert f"({layer}, {expert})" in message
    assert err.value.exit_code == 5


def test_a_later_pass_can_fill_what_an_earlier_one_missed():
    rng = np.random.default_rng(3)
    every = [np.tile(np.arange(EXPERTS).reshape(-1, 2), (2, 1)) for _ in LAYERS]
    report = evaluate(
        {"coding": _counts(_routing(rng, 2)), "broad": _counts(every)},
        Coverage(fail_below=1, warn_below=3),
    )
    assert report.passes[0].failing and not report.merged.failing
    gate(report)  # merged coverage is what the gate judges
    assert report.merged.warning  # experts seen twice (or three times) are under warn_below=3


def test_no_data_fails_the_gate():
    report = evaluate({"coding": ExpertCounts.empty(LAYERS, EXPERTS)}, Coverage())
    with pytest.raises(GateFailed, match="calibration saw no data"):
        gate(report)


def test_warn_only_passes_the_gate_and_lists_pairs():
    counts = np.full((1, 4), 10)
    counts[0, 2] = 3
    c = ExpertCounts((9,), counts, np.zeros((1, 4), np.int64), 40)
    report = evaluate({"deep": c}, Coverage(fail_below=1, warn_below=8))
    gate(report)
    assert report.merged.warning == ((9, 2),)
    stats = report.merged.layers[0]
    assert (stats.min, stats.median, stats.max, stats.unseen) == (3, 10.0, 10, 0)
    assert stats.tokens_until_all_seen == 1


def test_reports_are_written(tmp_path):
    rng = np.random.default_rng(4)
    report = evaluate(
        {"coding": _counts(_routing(rng, 40)), "broad": _counts(_routing(rng, 5))},
        Coverage(fail_below=1, warn_below=8),
    )
    paths = write_reports(report, tmp_path / "reports")
    data = json.loads(paths["json"].read_text())
    assert data["fail_below"] == 1 and data["warn_below"] == 8
    assert [p["name"] for p in data["passes"]] == ["coding", "broad"]
    assert data["merged"]["tokens"] == 45
    assert [tuple(p) for p in data["merged"]["failing"]] == list(report.merged.failing)
    assert [layer["layer"] for layer in data["merged"]["layers"]] == list(LAYERS)
    md = paths["md"].read_text()
    assert "# Expert coverage" in md and "| coding | 40 |" in md and "| merged | 45 |" in md
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_counter_matches_counting_the_stream_and_ignores_replayed_layers():
    from glm51.calib.coverage import ExpertCounter

    rng = np.random.default_rng(5)
    batches = [_routing(rng, n) for n in (7, 1, 12)]
    counter = ExpertCounter(LAYERS, EXPERTS)
    start = 0
    for batch in batches:
        for layer, ids in zip(LAYERS, batch, strict=True):
            assert counter.add(layer, ids, start)
        start += len(batch[0])
    # Layerwise replay runs the routers of a layer again over the same tokens.
    assert not counter.add(LAYERS[1], batches[0][1], 0)
    joint = _counts([np.concatenate(p) for p in zip(*batches, strict=True)])
    got = counter.result()
    assert got.tokens == 20
    np.testing.assert_array_equal(got.counts, joint.counts)
    np.testing.assert_array_equal(got.first_seen, joint.first_seen)
    torch = pytest.importorskip("torch")
    counter.add(LAYERS[0], torch.tensor([[15, 14]]), 20)
    assert counter.result(21).counts[0, 15] == joint.counts[0, 15] + 1
