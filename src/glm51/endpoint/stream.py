"""Pure parsing of OpenAI-compatible chat completions, whole or streamed (no I/O here).

A streamed completion is folded chunk by chunk into an `Accumulator`, which keeps the
arrival time of every chunk that carried tokens and every `usage` the server sent, so a
measurement can count tokens from the server's usage and never from the number of chunks
(speculative decoding puts several tokens in one chunk).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


class ProtocolViolation(ValueError):
    """The server's answer is not a valid chat completion (the message says what is wrong)."""


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @classmethod
    def parse(cls, data: Any) -> Usage | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(int(data.get("prompt_tokens") or 0), int(data["completion_tokens"]))
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str  # the JSON text as the server sent it (parse it to check it)
    id: str = ""

    def parsed_arguments(self) -> Any:
        """The arguments as JSON; raises ProtocolViolation naming the text when they are not."""
        try:
            return json.loads(self.arguments or "{}")
        except ValueError as exc:
            raise ProtocolViolation(
                f"tool call {self.name!r}: arguments are not valid JSON ({exc}): "
                f"{self.arguments[:200]!r}"
            ) from None


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Completion:
    content: str
    reasoning: str
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str | None
    usage: Usage | None
    logprobs: tuple[TokenLogprob, ...] | None = None
    model: str = ""


@dataclass(frozen=True)
class Streamed(Completion):
    """A streamed completion, with the timing of its chunks (perf_counter seconds)."""

    t_sent: float = 0.0
    t_first: float | None = None  # first chunk carrying output (content, reasoning or tools)
    t_last: float | None = None  # last chunk carrying output
    t_end: float = 0.0  # the stream closed
    chunks: int = 0  # chunks that carried output
    finish_in_last_chunk: bool = False  # the last data chunk before [DONE] had finish_reason
    usage_in_last_chunk: bool = False
    done_marker: bool = False  # the stream ended with `data: [DONE]`
    # (time, completion_tokens) for every chunk that carried usage (continuous usage stats).
    usage_points: tuple[tuple[float, int], ...] = ()

    @property
    def ttft_s(self) -> float | None:
        return None if self.t_first is None else self.t_first - self.t_sent


def _logprobs(choice: dict) -> list[TokenLogprob] | None:
    lp = choice.get("logprobs")
    if not isinstance(lp, dict) or not isinstance(lp.get("content"), list):
        return None
    out = []
    for item in lp["content"]:
        top = tuple(
            (str(t.get("token", "")), float(t["logprob"]))
            for t in item.get("top_logprobs") or ()
            if isinstance(t, dict) and "logprob" in t
        )
        out.append(TokenLogprob(str(item.get("token", "")), float(item["logprob"]), top))
    return out


def parse_completion(body: Any) -> Completion:
    """A non-streamed `chat.completion` body."""
    try:
        choice = body["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError):
        raise ProtocolViolation(f"no choices[0].message in the answer: {str(body)[:300]}") from None
    calls = []
    for call in message.get("tool_calls") or ():
        fn = call.get("function") or {}
        args = fn.get("arguments")
        if not isinstance(args, str):  # some servers send an object: keep its JSON text
            args = json.dumps(args)
        calls.append(ToolCall(str(fn.get("name", "")), args, str(call.get("id", ""))))
    lps = _logprobs(choice)
    return Completion(
        content=message.get("content") or "",
        reasoning=message.get("reasoning_content") or message.get("reasoning") or "",
        tool_calls=tuple(calls),
        finish_reason=choice.get("finish_reason"),
        usage=Usage.parse(body.get("usage")),
        logprobs=None if lps is None else tuple(lps),
        model=str(body.get("model", "")),
    )


@dataclass
class _CallParts:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class Accumulator:
    """Folds `chat.completion.chunk` objects into one `Streamed`."""

    def __init__(self, t_sent: float) -> None:
        self.t_sent = t_sent
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.calls: dict[int, _CallParts] = {}
        self.logprobs: list[TokenLogprob] | None = None
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.model = ""
        self.t_first: float | None = None
        self.t_last: float | None = None
        self.chunks = 0
        self.last_finish = False
        self.last_usage = False
        self.done = False
        self.usage_points: list[tuple[float, int]] = []

    def feed_line(self, line: str, t: float) -> bool:
        """One SSE line; returns False once `data: [DONE]` was seen."""
        if not line.startswith("data:"):
            return True  # blank lines, comments, `event:` fields
        data = line[5:].strip()
        if data == "[DONE]":
            self.done = True
            return False
        try:
            chunk = json.loads(data)
        except ValueError:
            raise ProtocolViolation(f"a stream chunk is not JSON: {data[:200]!r}") from None
        if isinstance(chunk, dict) and "error" in chunk and "choices" not in chunk:
            raise ProtocolViolation(f"the server reported an error mid-stream: {chunk['error']}")
        self.feed(chunk, t)
        return True

    def feed(self, chunk: dict, t: float) -> None:
        self.model = self.model or str(chunk.get("model", ""))
        usage = Usage.parse(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
            self.usage_points.append((t, usage.completion_tokens))
        finish = None
        output = False
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self.content.append(delta["content"])
                output = True
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if reasoning:
                self.reasoning.append(reasoning)
                output = True
            for call in delta.get("tool_calls") or ():
                parts = self.calls.setdefault(int(call.get("index", 0)), _CallParts())
                parts.id = parts.id or str(call.get("id") or "")
                fn = call.get("function") or {}
                if fn.get("name"):
                    parts.name += fn["name"]
                if fn.get("arguments"):
                    args = fn["arguments"]
                    parts.arguments.append(args if isinstance(args, str) else json.dumps(args))
                output = True
            lps = _logprobs(choice)
            if lps:
                self.logprobs = (self.logprobs or []) + lps
            finish = choice.get("finish_reason") or finish
        if finish:
            self.finish_reason = finish
        if output:
            self.chunks += 1
            self.t_first = t if self.t_first is None else self.t_first
            self.t_last = t
        # What the last data chunk carried (a trailing usage-only chunk counts as the last).
        self.last_finish = bool(finish) or (self.last_finish and not output and usage is not None)
        self.last_usage = usage is not None

    def result(self, t_end: float) -> Streamed:
        calls = tuple(
            ToolCall(p.name, "".join(p.arguments), p.id) for _, p in sorted(self.calls.items())
        )
        return Streamed(
            content="".join(self.content),
            reasoning="".join(self.reasoning),
            tool_calls=calls,
            finish_reason=self.finish_reason,
            usage=self.usage,
            logprobs=None if self.logprobs is None else tuple(self.logprobs),
            model=self.model,
            t_sent=self.t_sent,
            t_first=self.t_first,
            t_last=self.t_last,
            t_end=t_end,
            chunks=self.chunks,
            finish_in_last_chunk=self.last_finish,
            usage_in_last_chunk=self.last_usage,
            done_marker=self.done,
            usage_points=tuple(self.usage_points),
        )
