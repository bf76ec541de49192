"""The bench's measurement arithmetic and gates (bench/measure.py), at their boundaries:
which usage a timeline takes, interpolation, windows, the gate per card figure, the misses."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from glm51.bench import measure
from glm51.bench.measure import Timeline, Window
from glm51.endpoint.stream import Streamed, Usage
from glm51.records.bench import GateResult


def stream(t_first, t_last, tokens, chunks, points=(), usage=True):
    return Streamed(
        content="",
        reasoning="",
        tool_calls=(),
        finish_reason="length",
        usage=Usage(10, tokens) if usage else None,
        t_sent=0.0,
        t_first=t_first,
        t_last=t_last,
        t_end=t_last,
        chunks=chunks,
        usage_points=tuple(points),
    )


def test_a_timeline_needs_usage_and_both_chunk_times():
    assert Timeline.of(stream(1.0, 2.0, 10, 2, usage=False)) is None
    assert Timeline.of(stream(None, 2.0, 10, 2)) is None
    assert Timeline.of(stream(1.0, None, 10, 2)) is None


def test_usage_points_only_when_they_reach_the_total():
    pts = [(0.5, 1), (1.0, 2), (2.0, 10)]
    assert Timeline.of(stream(1.0, 2.0, 10, 2, pts)).points == ((1.0, 2.0), (2.0, 10.0))
    three = [(0.0, 1), (1.0, 4), (2.0, 10)]
    assert Timeline.of(stream(0.0, 2.0, 10, 2, three)).points == (
        (0.0, 1.0),
        (1.0, 4.0),
        (2.0, 10.0),
    )
    short = [(1.0, 2), (2.0, 9)]  # the last point is not the total: spread evenly instead
    assert Timeline.of(stream(1.0, 2.0, 10, 5, short)).points == ((1.0, 2.0), (2.0, 10.0))
    one = [(2.0, 10)]  # a single point is not a timeline
    assert Timeline.of(stream(1.0, 3.0, 10, 5, one)).points == ((1.0, 2.0), (3.0, 10.0))
    assert Timeline.of(stream(1.0, 3.0, 10, 0)).points == ((1.0, 10.0), (3.0, 10.0))
    assert Timeline.of(stream(3.0, 1.0, 10, 2)).points == ((3.0, 5.0), (3.0, 10.0))


def test_interpolation_and_its_edges():
    tl = Timeline(((1.0, 2.0), (3.0, 6.0), (3.0, 8.0), (5.0, 10.0)))
    assert (tl.start, tl.end) == (1.0, 5.0)
    assert tl.at(0.0) == 2.0 and tl.at(1.0) == 2.0
    assert tl.at(2.0) == pytest.approx(4.0)
    assert tl.at(3.0) == 6.0  # the first segment ending at 3.0 answers
    assert tl.at(4.0) == pytest.approx(9.0)
    assert tl.at(5.0) == 10.0 and tl.at(9.0) == 10.0
    flat = Timeline(((1.0, 2.0), (1.0, 4.0), (2.0, 4.0)))
    assert flat.at(1.5) == 4.0 and flat.at(1.0) == 2.0
    ends_twice = Timeline(((1.0, 2.0), (3.0, 6.0), (3.0, 8.0)))
    assert ends_twice.at(3.0) == 8.0 and ends_twice.at(2.0) == 4.0


def test_decoded_produced_busy():
    tl = Timeline(((1.0, 2.0), (3.0, 6.0)))
    assert tl.decoded(0.0, 9.0) == 4.0 and tl.decoded(2.0, 1.5) == 0.0
    assert tl.produced(0.0, 9.0) == 6.0  # the first chunk lands inside
    assert tl.produced(1.0, 9.0) == 4.0  # ... not when the window starts at it
    assert tl.produced(0.0, 1.0) == 2.0  # ... and when it ends at it
    assert tl.busy(0.0, 9.0) == 2.0 and tl.busy(2.0, 2.5) == 0.5 and tl.busy(4.0, 5.0) == 0.0


def test_window_rate():
    assert Window(10.0, 2.0, 1).tokens_per_s == 5.0
    assert Window(10.0, 0.0, 1).tokens_per_s == 0.0


def test_requests_counted_in_a_window():
    a, b = stream(0.0, 1.0, 11, 11), stream(2.0, 3.0, 11, 11)
    single = measure.single_stream([a, b, stream(1.0, 2.0, 5, 1, usage=False)], 0.5, 1.5)
    assert single.requests == 1 and single.seconds == pytest.approx(0.5)
    agg = measure.aggregate([a, b], 1.0, 2.0)
    assert agg.requests == 0 and agg.seconds == 1.0
    assert agg.tokens == 1.0  # b's first chunk lands at the window's end: produced inside
    assert measure.aggregate([a, b], 0.9, 2.1).requests == 2


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("short_tg", "short_tg_tok_s"),
        ("tg_32k", "tg_32k_tok_s"),
        ("tg_128k", "tg_128k_tok_s"),
        ("c32", "c32_tok_s"),
        ("c64", "c64_tok_s"),
    ],
)
def test_every_card_figure_has_its_gate(recipe, name, key):
    g = recipe.gates
    threshold = float(getattr(g, key))
    at = measure.gate(name, threshold * (1 - g.tolerance), g)
    assert at == GateResult(threshold=threshold, tolerance=g.tolerance, passed=True)
    assert not measure.gate(name, threshold * (1 - g.tolerance) - 1e-6, g).passed


def test_missed_lists_only_the_failed_gates():
    figs = [
        SimpleNamespace(
            name="c64",
            tokens_per_s=900.04,
            gate=GateResult(threshold=1058.0, tolerance=0.05, passed=False),
        ),
        SimpleNamespace(
            name="c32",
            tokens_per_s=800.0,
            gate=GateResult(threshold=751.0, tolerance=0.05, passed=True),
        ),
        SimpleNamespace(name="extra", tokens_per_s=1.0, gate=None),
    ]
    assert measure.missed(figs) == ["c64 900.0 tok/s < 1058 x (1 - 0.05)"]
