"""A bench behind a gateway may lose requests when a replica dies: --max-failed-requests
lets a figure go on; each lost request is recorded with why it could not be retried."""

from __future__ import annotations

from typer.testing import CliRunner

from glm51.bench.report import markdown
from glm51.bench.run import failed_request
from glm51.cli import app
from glm51.endpoint.client import BadAnswer, RequestRejected, ServerGone
from glm51.records import BenchFigure, BenchRecord
from glm51.records.bench import FailedRequest
from tests.support.cli import error_text, exit_code


def test_a_cut_stream_could_not_be_retried_because_it_had_started():
    for exc in (
        ServerGone("u: the server closed the connection mid-answer (reset)"),
        ServerGone("u: the stream ended after 3 chunk(s) without a finish_reason or [DONE]"),
        BadAnswer("u: the server reported an error mid-stream: upstream closed"),
    ):
        lost = failed_request(exc, 3.21)
        assert "the stream had started" in lost.why_not_retried, exc
        assert lost.at_s == 3.21 and lost.error == str(exc)


def test_a_refusal_after_the_gateways_retries_and_a_gone_endpoint_say_so():
    refused = failed_request(RequestRejected("u", 503, "no healthy worker"), 1.0)
    assert "HTTP 503 before any token" in refused.why_not_retried
    gone = failed_request(ServerGone("u: cannot connect (refused)"), 1.0)
    assert "the endpoint itself" in gone.why_not_retried


def test_the_report_lists_each_lost_request_and_why():
    lost = FailedRequest(at_s=2.5, error="u: cut mid-answer", why_not_retried="it had started")
    figure = BenchFigure(
        name="c32",
        concurrency=32,
        context_tokens=10,
        tokens_per_s=5.0,
        output_tokens=50,
        duration_s=3.0,
        failed_requests=(lost,),
    )
    record = BenchRecord(endpoint="http://gw", served_model="m", figures=(figure,))
    text = markdown(record)
    assert "lost 1 request(s)" in text
    assert "- at 2.5s: u: cut mid-answer (not retried: it had started)" in text


def test_a_negative_allowance_is_refused_by_name(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "--endpoint",
            "http://127.0.0.1:9",
            "--out",
            str(tmp_path / "o"),
            "--max-failed-requests",
            "-1",
        ],
    )
    assert exit_code(result) == 2 and "--max-failed-requests" in error_text(result)
