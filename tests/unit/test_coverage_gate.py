"""The expert-coverage gate at its boundaries, and its records exactly (calib/coverage.py):
counts validation, the counter's refusals, per-layer statistics, the fail/warn thresholds,
the gate's message, the JSON and Markdown reports."""

from __future__ import annotations

import numpy as np
import pytest

from glm51.calib.coverage import (
    ExpertCounter,
    ExpertCounts,
    evaluate,
    gate,
    merge,
    render_markdown,
)
from glm51.errors import GateFailed, InputError
from glm51.recipe.calibration import Coverage


def counts(rows, tokens=10, layers=None):
    arr = np.array(rows, dtype=np.int64)
    first = np.where(arr > 0, 0, -1)
    return ExpertCounts(tuple(layers or range(3, 3 + len(rows))), arr, first, tokens)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (((1,), [1, 2], [0, 0]), r"^counts must be \[layers=1, experts\]$"),
        (((1, 2), [[1, 2]], [[0, 0]]), r"^counts must be \[layers=2, experts\]$"),
        (((1,), [[1, 2]], [[0, 0, 0]]), r"^first_seen must have the shape of counts$"),
        (((1,), [[1, 0]], [[0, 0]]), r"^first_seen must be >= 0 exactly where counts > 0$"),
        (((1,), [[0, 1]], [[-1, -1]]), r"^first_seen must be >= 0 exactly where counts > 0$"),
    ],
)
def test_counts_are_validated(args, message):
    layers, c, f = args
    with pytest.raises(ValueError, match=message):
        ExpertCounts(layers, np.array(c), np.array(f), 1)


def test_counts_are_frozen_int64_and_layers_ints():
    c = ExpertCounts((np.int64(3),), np.array([[1.0, 0.0]]), np.array([[2.0, -1.0]]), 5)
    assert c.layers == (3,) and type(c.layers[0]) is int
    assert c.counts.dtype == np.int64 and c.first_seen.dtype == np.int64
    assert c.experts == 2
    with pytest.raises(ValueError):
        c.counts[0, 0] = 9
    with pytest.raises(ValueError):
        c.first_seen[0, 0] = 9


def test_empty_counts():
    e = ExpertCounts.empty((3, 4), 5)
    assert e.layers == (3, 4) and e.tokens == 0 and e.experts == 5
    assert e.counts.tolist() == [[0] * 5] * 2 and e.first_seen.tolist() == [[-1] * 5] * 2


def test_from_routing_with_top_k_per_token():
    c = ExpertCounts.from_routing((7,), 4, [np.array([[3, 1], [1, 2], [0, 1]])], 3)
    assert c.counts.tolist() == [[1, 3, 1, 1]]
    assert c.first_seen.tolist() == [[2, 0, 1, 0]]


def test_save_makes_its_folder_and_load_names_a_bad_file(tmp_path):
    c = counts([[1, 2]], tokens=7)
    path = c.save(tmp_path / "a" / "b" / "c.npz")
    assert path == tmp_path / "a" / "b" / "c.npz"
    back = ExpertCounts.load(str(path))
    assert back.tokens == 7 and back.layers == (3,) and back.counts.tolist() == [[1, 2]]
    np.savez(tmp_path / "partial.npz", layers=np.array([3]))
    with pytest.raises(InputError, match=r"partial\.npz: not an expert-counts file \("):
        ExpertCounts.load(tmp_path / "partial.npz")


def test_counter_refusals_and_replays():
    counter = ExpertCounter((3, 4), 4)
    with pytest.raises(ValueError, match=r"^layer 5 is not one of the MoE layers \(3, 4\)$"):
        counter.add(5, [[0]], 0)
    for bad in ([[4]], [[-1]]):
        with pytest.raises(ValueError, match=r"^layer 3: expert ids outside \[0, 4\)$"):
            counter.add(3, bad, 0)
    assert counter.add(3, [[3, 0], [0, 1]], 10)
    assert not counter.add(3, [[2, 2]], 10)  # the same (layer, start): a replay, not counted
    assert counter.add(4, [[2, 2]], 10)  # the same start in another layer counts
    assert counter.add(3, 2, 12)  # a single id (a 0-d value) is one token, one id
    got = counter.result()
    assert got.counts.tolist() == [[2, 1, 1, 1], [0, 0, 2, 0]]
    assert got.first_seen.tolist() == [[10, 11, 12, 10], [-1, -1, 10, -1]]
    assert got.tokens == 13 and counter.result(99).tokens == 99
    assert ExpertCounter((3,), 2).result().tokens == 0


def test_counter_keeps_the_earliest_sighting_whatever_the_order():
    counter = ExpertCounter((3,), 2)
    counter.add(3, [[1]], 5)
    counter.add(3, [[1], [0]], 2)  # an earlier batch added later
    counter.add(3, [[1]], 9)
    got = counter.result()
    assert got.first_seen.tolist() == [[3, 2]] and got.counts.tolist() == [[1, 3]]
    assert got.tokens == 10


def test_merge_offsets_later_passes_and_keeps_the_earliest():
    a = ExpertCounts((3,), np.array([[0, 2, 1]]), np.array([[-1, 4, 1]]), 5)
    b = ExpertCounts((3,), np.array([[1, 1, 0]]), np.array([[2, 0, -1]]), 3)
    m = merge([a, b])
    assert m.counts.tolist() == [[1, 3, 1]]
    assert m.first_seen.tolist() == [[7, 4, 1]] and m.tokens == 8
    assert merge([b, a]).first_seen.tolist() == [[2, 0, 4]]
    never = ExpertCounts((3,), np.array([[0, 1, 0]]), np.array([[-1, 0, -1]]), 1)
    assert merge([never, never]).first_seen.tolist() == [[-1, 0, -1]]
    with pytest.raises(ValueError, match=r"^nothing to merge$"):
        merge([])
    other = ExpertCounts.empty((3,), 4)
    with pytest.raises(InputError) as info:
        merge([a, other])
    assert str(info.value) == "cannot merge expert counts of layers (3,) x 4 experts into (3,) x 3"


@pytest.mark.parametrize(
    ("count", "failing", "warning"),
    [(0, True, False), (1, True, False), (2, False, True), (4, False, True), (5, False, False)],
)
def test_thresholds_fail_below_then_warn_below(count, failing, warning):
    report = evaluate({"p": counts([[count, 9]])}, Coverage(fail_below=2, warn_below=5))
    assert (report.merged.failing == ((3, 0),)) is failing
    assert (report.merged.warning == ((3, 0),)) is warning
    assert report.ok is not failing


def test_layer_statistics():
    c = ExpertCounts(
        (3, 5), np.array([[0, 4, 2, 9], [1, 1, 6, 2]]), np.array([[-1, 0, 3, 1], [7, 2, 0, 4]]), 12
    )
    report = evaluate({"p": c}, Coverage(fail_below=0, warn_below=0))
    first, second = report.merged.layers
    assert (first.layer, first.min, first.median, first.max, first.unseen) == (3, 0, 3.0, 9, 1)
    assert first.tokens_until_all_seen is None
    assert (second.layer, second.min, second.median, second.max, second.unseen) == (5, 1, 1.5, 6, 0)
    assert second.tokens_until_all_seen == 8
    assert report.passes[0].name == "p" and report.merged.name == "merged"
    assert report.merged.experts == 4 and report.merged.tokens == 12


def test_evaluate_needs_a_pass_and_no_tokens_is_not_ok():
    with pytest.raises(InputError, match=r"^no calibration pass produced expert counts$"):
        evaluate({}, Coverage())
    report = evaluate({"p": counts([[1, 1]], tokens=0)}, Coverage(fail_below=0, warn_below=0))
    assert not report.ok


def test_gate_messages():
    with pytest.raises(GateFailed) as info:
        gate(evaluate({"p": counts([[0, 0]], tokens=0)}, Coverage()))
    assert str(info.value) == "calibration saw no data: 0 tokens went through the model"
    with pytest.raises(GateFailed) as info:
        gate(evaluate({"p": counts([[0, 3], [1, 0]])}, Coverage(fail_below=2, warn_below=3)))
    assert str(info.value) == (
        "3 routed experts got fewer than 2 calibration tokens (layer, expert): "
        "(3, 0), (4, 0), (4, 1)"
    )
    gate(evaluate({"p": counts([[2, 3]])}, Coverage(fail_below=2, warn_below=9)))  # warned only


def test_as_dict_exactly():
    report = evaluate({"p": counts([[0, 3]], tokens=4)}, Coverage(fail_below=1, warn_below=4))
    assert report.as_dict() == {
        "fail_below": 1,
        "warn_below": 4,
        "ok": False,
        "merged": {
            "name": "merged",
            "tokens": 4,
            "experts": 2,
            "layers": [
                {
                    "layer": 3,
                    "min": 0,
                    "median": 1.5,
                    "max": 3,
                    "unseen": 1,
                    "tokens_until_all_seen": None,
                }
            ],
            "failing": [[3, 0]],
            "warning": [[3, 1]],
        },
        "passes": [
            {
                "name": "p",
                "tokens": 4,
                "experts": 2,
                "layers": [
                    {
                        "layer": 3,
                        "min": 0,
                        "median": 1.5,
                        "max": 3,
                        "unseen": 1,
                        "tokens_until_all_seen": None,
                    }
                ],
                "failing": [[3, 0]],
                "warning": [[3, 1]],
            }
        ],
    }


def test_markdown_exactly():
    a = ExpertCounts((3,), np.array([[0, 3]]), np.array([[-1, 2]]), 4)
    b = ExpertCounts((3,), np.array([[1, 2]]), np.array([[0, 1]]), 6)
    report = evaluate({"coding": a, "broad": b}, Coverage(fail_below=2, warn_below=6))
    assert render_markdown(report) == "\n".join(
        [
            "# Expert coverage",
            "",
            "Gate: fail below 2 tokens per expert, warn below 6. Result: **FAILED**.",
            "",
            "| pass | tokens | experts failing | experts warned |",
            "|---|---:|---:|---:|",
            "| coding | 4 | 1 | 1 |",
            "| broad | 6 | 1 | 1 |",
            "| merged | 10 | 1 | 1 |",
            "",
            "## Merged, per MoE layer",
            "",
            "| layer | min | median | max | unseen | tokens until all seen |",
            "|---:|---:|---:|---:|---:|---:|",
            "| 3 | 1 | 3 | 5 | 0 | 5 |",
            "",
            "## Failing (layer, expert)",
            "",
            "(3, 0)",
            "",
            "## Warned (layer, expert)",
            "",
            "(3, 1)",
            "",
        ]
    )
    ok = evaluate({"p": counts([[9, 9]])}, Coverage(fail_below=1, warn_below=2))
    text = render_markdown(ok)
    assert "Result: **ok**." in text and "## Failing" not in text and "## Warned" not in text
    assert "| 3 | 9 | 9 | 9 | 0 | 1 |" in text


def test_markdown_lists_200_pairs_then_counts():
    report = evaluate({"p": counts([[0] * 205])}, Coverage(fail_below=1, warn_below=1))
    text = render_markdown(report)
    line = text.split("## Failing (layer, expert)\n\n")[1].splitlines()[0]
    assert line.startswith("(3, 0), (3, 1)") and line.endswith("(3, 199) and 5 more")
    assert "| 3 | 0 | 0 | 0 | 205 | never |" in text
    exactly = evaluate({"p": counts([[0] * 200])}, Coverage(fail_below=1, warn_below=1))
    assert render_markdown(exactly).rstrip().endswith("(3, 199)")
    one_more = evaluate({"p": counts([[0] * 201])}, Coverage(fail_below=1, warn_below=1))
    assert render_markdown(one_more).rstrip().endswith("(3, 199) and 1 more")


def test_write_reports_names_and_formats(tmp_path):
    import json

    from glm51.calib.coverage import write_reports

    report = evaluate({"p": counts([[1, 2]])}, Coverage(fail_below=1, warn_below=2))
    out = tmp_path / "a" / "b"
    paths = write_reports(report, out)
    assert {k: p.name for k, p in paths.items()} == {
        "json": "coverage.json",
        "md": "coverage.md",
        "png": "coverage.png",
    }
    assert all(p.parent == out and p.is_file() for p in paths.values())
    text = paths["json"].read_text()
    assert text == json.dumps(report.as_dict(), indent=2) + "\n"
    assert paths["md"].read_text() == render_markdown(report)
    assert write_reports(report, str(out)) == paths  # again, into the same folder
