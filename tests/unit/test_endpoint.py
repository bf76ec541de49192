"""The endpoint client: stream folding, typed errors, on an injected httpx transport."""

from __future__ import annotations

import json

import httpx
import pytest

from glm51.endpoint.client import (
    BadAnswer,
    Endpoint,
    RequestRejected,
    ServerGone,
    base_url,
    spec_accept_length,
)
from glm51.endpoint.stream import Accumulator, ProtocolViolation, ToolCall


def sse(*chunks) -> bytes:
    out = []
    for c in chunks:
        out.append(f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n")
    return "".join(out).encode()


def delta(d, finish=None, usage=None):
    chunk = {"choices": [{"index": 0, "delta": d, "finish_reason": finish}]}
    if usage:
        chunk["usage"] = usage
    return chunk


USAGE = {"prompt_tokens": 5, "completion_tokens": 7}


def endpoint(handler) -> Endpoint:
    return Endpoint("http://srv/v1/", "m", httpx.Client(transport=httpx.MockTransport(handler)))


def test_base_url_accepts_v1_and_slashes():
    assert base_url("http://h:1/v1/") == base_url("http://h:1/") == "http://h:1"


def test_stream_folds_text_reasoning_tool_arguments_and_trailing_usage():
    body = sse(
        delta({"role": "assistant", "content": ""}),
        delta({"reasoning_content": "think "}),
        delta({"content": "Hel"}),
        delta({"content": "lo"}),
        delta(
            {
                "tool_calls": [
                    {"index": 0, "id": "c0", "function": {"name": "f", "arguments": '{"a"'}}
                ]
            }
        ),
        delta({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
        delta({}, "tool_calls"),
        {"choices": [], "usage": USAGE},  # the usage-only chunk after the last one
        "[DONE]",
    )
    ep = endpoint(lambda req: httpx.Response(200, content=body))
    s = ep.stream([{"role": "user", "content": "x"}])
    assert (s.content, s.reasoning) == ("Hello", "think ")
    assert s.tool_calls == (ToolCall("f", '{"a": 1}', "c0"),)
    assert s.tool_calls[0].parsed_arguments() == {"a": 1}
    assert s.finish_reason == "tool_calls" and s.finish_in_last_chunk and s.done_marker
    assert s.usage.completion_tokens == 7 and s.chunks == 5
    assert s.t_sent <= s.t_first <= s.t_last <= s.t_end


def test_request_asks_for_usage_in_the_stream():
    seen = {}

    def handler(req):
        seen.update(json.loads(req.content))
        return httpx.Response(200, content=sse(delta({"content": "a"}, "stop", USAGE), "[DONE]"))

    endpoint(handler).stream([{"role": "user", "content": "x"}], max_tokens=3, top_p=None)
    assert seen["stream"] is True and seen["stream_options"] == {"include_usage": True}
    assert seen["max_tokens"] == 3 and "top_p" not in seen


def test_a_stream_cut_short_is_a_dead_server():
    body = sse(delta({"content": "a"}), delta({"content": "b"}))  # no finish, no [DONE]
    ep = endpoint(lambda req: httpx.Response(200, content=body))
    with pytest.raises(ServerGone, match="without a finish_reason"):
        ep.stream([{"role": "user", "content": "x"}])


def test_http_errors_carry_the_servers_words():
    ep = endpoint(lambda req: httpx.Response(422, json={"detail": "Unexpected fields: ignore_eos"}))
    with pytest.raises(RequestRejected, match="HTTP 422: Unexpected fields: ignore_eos") as exc:
        ep.chat([{"role": "user", "content": "x"}], ignore_eos=True)
    assert exc.value.status == 422


def test_refused_connection_is_a_dead_server():
    def refuse(req):
        raise httpx.ConnectError("refused")

    with pytest.raises(ServerGone, match="cannot connect"):
        endpoint(refuse).health()


def test_not_a_completion_is_a_bad_answer():
    with pytest.raises(BadAnswer, match="no choices"):
        endpoint(lambda req: httpx.Response(200, json={"x": 1})).chat([])


def test_mid_stream_error_object_is_reported():
    acc = Accumulator(0.0)
    with pytest.raises(ProtocolViolation, match="error mid-stream"):
        acc.feed_line('data: {"error": {"message": "out of memory"}}', 1.0)


def test_server_info_falls_back_and_accept_length_is_found_where_sglang_puts_it():
    def handler(req):
        if req.url.path == "/get_server_info":
            return httpx.Response(200, json={"avg_spec_accept_length": 2.5})
        return httpx.Response(404, json={})

    assert spec_accept_length(endpoint(handler).server_info()) == 2.5
    assert spec_accept_length({"internal_states": [{"avg_spec_accept_length": 3.1}]}) == 3.1
    assert spec_accept_length({"tp_size": 8}) is None
    assert endpoint(lambda req: httpx.Response(404)).server_info() is None
