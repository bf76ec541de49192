"""`glm51 bench`: the measurement arithmetic, the gates, and the CLI against the double."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from glm51.bench import measure
from glm51.bench.report import markdown
from glm51.cli import app
from glm51.endpoint.stream import Streamed, Usage
from glm51.records import BenchRecord, read_record
from tests.doubles.openai_double import Config, OpenAIDouble
from tests.support.cli import error_text, exit_code


def stream(t_first, t_last, tokens, chunks, points=()):
    return Streamed(
        content="",
        reasoning="",
        tool_calls=(),
        finish_reason="length",
        usage=Usage(10, tokens),
        t_sent=t_first - 0.01,
        t_first=t_first,
        t_last=t_last,
        t_end=t_last,
        chunks=chunks,
        usage_points=tuple(points),
    )


def test_tokens_come_from_usage_not_from_chunks():
    # 40 tokens in 10 chunks (speculative decoding: 4 per chunk) over 1 s after the first.
    s = stream(1.0, 2.0, 40, 10)
    w = measure.single_stream([s], 0.0, 3.0)
    assert w.tokens == pytest.approx(36)  # the first chunk (prefill's) is not decode
    assert w.tokens_per_s == pytest.approx(36.0)
    assert measure.aggregate([s], 0.0, 3.0).tokens == pytest.approx(40)


def test_window_cuts_a_stream_proportionally():
    s = stream(0.0, 10.0, 1001, 1001)  # 1000 decode tokens over 10 s
    w = measure.single_stream([s], 2.0, 7.0)
    assert w.tokens == pytest.approx(500) and w.seconds == pytest.approx(5.0)
    assert w.tokens_per_s == pytest.approx(100.0)


def test_single_stream_rate_ignores_gaps_between_requests():
    a = stream(0.0, 1.0, 101, 101)
    b = stream(1.5, 2.5, 101, 101)  # 0.5 s of prefill/round trip in between
    assert measure.single_stream([a, b], 0.0, 3.0).tokens_per_s == pytest.approx(100.0)
    assert measure.aggregate([a, b], -0.5, 3.0).tokens_per_s == pytest.approx(202 / 3.5)


def test_continuous_usage_points_are_used_when_given():
    # The server decoded fast, then slowly: the points say where the window's tokens were.
    s = stream(0.0, 2.0, 300, 3, points=[(0.0, 1), (1.0, 200), (2.0, 300)])
    assert measure.single_stream([s], 1.0, 2.0).tokens == pytest.approx(100)


def test_gates_follow_the_recipe_threshold_and_tolerance(recipe):
    g = recipe.gates  # short_tg 95 tok/s, tolerance 5 %
    assert measure.gate("short_tg", 95.0 * 0.95, g).passed
    assert not measure.gate("short_tg", 95.0 * 0.95 - 0.01, g).passed
    assert measure.gate("c64", 1058.0, g).threshold == 1058.0
    assert measure.gate("extra", 1.0, g) is None


FAST = ["--warmup", "0.2", "--duration", "0.6", "--max-tokens", "64"]


def bench(url, out, *extra):
    return CliRunner().invoke(app, ["bench", "--endpoint", url, "--out", str(out), *FAST, *extra])


def test_bench_writes_json_markdown_png_and_passes_the_gates(tmp_path):
    with OpenAIDouble(Config(rate_tok_s=2000, tokens_per_chunk=3)) as double:
        result = bench(
            double.url, tmp_path, "--figures", "short_tg,tg_32k,c32", "--context-32k", "3000"
        )
        sent = list(double.requests)
    assert result.exit_code == 0, result.output
    record = read_record(tmp_path / "bench.json", BenchRecord)
    assert [f.name for f in record.figures] == ["short_tg", "tg_32k", "c32"]
    assert record.figures[1].context_tokens == 3000  # exact, checked against usage
    # Measured at 3000 tokens, not the card's 32768: labelled with its size, never gated.
    short, tg, c32 = record.figures
    assert short.gate.passed and c32.gate.passed and tg.gate is None
    assert all(f.accept_length == pytest.approx(3.2) for f in record.figures)
    assert "--speculative-algorithm=EAGLE" in record.server_flags
    assert record.notes == (
        "tg_32k was measured at a 3000-token prompt (--context-32k), not the card's size: "
        "it is labelled with its size and not gated",
    )
    md = (tmp_path / "bench.md").read_text()
    assert md.startswith("| | Short TG | TG at a 3000-token prompt | c=32 |")
    assert "32K" not in md
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    measured = [r for r in sent if r.get("stream") and r.get("max_tokens") == 64]
    assert measured and all(r["ignore_eos"] for r in measured)
    assert all(r["stream_options"]["include_usage"] for r in measured)


@pytest.mark.slow
def test_bench_all_five_card_figures(tmp_path):
    with OpenAIDouble(Config(rate_tok_s=2000, tokens_per_chunk=2)) as double:
        result = bench(double.url, tmp_path, "--context-32k", "2000", "--context-128k", "6000")
    assert result.exit_code == 0, result.output
    record = read_record(tmp_path / "bench.json", BenchRecord)
    assert [f.name for f in record.figures] == ["short_tg", "tg_32k", "tg_128k", "c32", "c64"]
    assert [f.concurrency for f in record.figures] == [1, 1, 1, 32, 64]


def test_a_missed_gate_exits_5_and_still_writes_the_outputs(tmp_path):
    # 20 tok/s per stream: far below the card's 95 tok/s Short TG.
    with OpenAIDouble(Config(rate_tok_s=20)) as double:
        result = bench(double.url, tmp_path, "--figures", "short_tg", "--max-tokens", "8")
    assert exit_code(result) == 5
    assert "short_tg" in error_text(result) and "< 95" in error_text(result)
    record = read_record(tmp_path / "bench.json", BenchRecord)
    assert not record.gates_passed
    assert "**FAIL**" in (tmp_path / "bench.md").read_text()


def test_a_server_dying_mid_stream_stops_the_bench(tmp_path):
    config = Config(rate_tok_s=2000, faults=frozenset({"die-mid-stream"}), die_after_chunks=20)
    with OpenAIDouble(config) as double:
        result = bench(double.url, tmp_path, "--figures", "c32", "--stall-timeout", "20")
    assert exit_code(result) == 6
    assert "mid-answer" in error_text(result) or "cannot connect" in error_text(result)
    assert not (tmp_path / "bench.json").exists()


def test_unknown_figure_is_refused(tmp_path):
    result = bench("http://127.0.0.1:9", tmp_path, "--figures", "c128")
    assert exit_code(result) == 3
    assert "c128" in error_text(result)


def test_markdown_names_the_notes(tmp_path):
    note = "the server rejects ignore_eos (HTTP 422); sent without it"
    record = BenchRecord(endpoint="http://x", served_model="m", figures=(), notes=(note,))
    assert "Note: the server rejects ignore_eos" in markdown(record)
    assert json.loads(record.to_json())["notes"]


def test_only_a_figure_at_the_cards_exact_size_is_held_to_its_gate():
    from glm51.bench.run import card_figures
    from glm51.records.bench import at_card_size

    assert at_card_size("tg_32k", 32768) and at_card_size("tg_128k", 131072)
    for name, size in (
        ("tg_32k", 2000),
        ("tg_32k", 40000),
        ("tg_128k", 131071),
        ("tg_128k", 262144),
    ):
        assert not at_card_size(name, size), (name, size)
    assert at_card_size("short_tg", 57) and at_card_size("c64", 57)  # no size of their own
    specs = {s.name: s for s in card_figures(context_32k=65536)}
    assert not specs["tg_32k"].gated and specs["tg_128k"].gated and specs["short_tg"].gated
