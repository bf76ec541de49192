"""The smoke checks: each asks the endpoint one thing and says what it saw.

A check returns an `Outcome` or raises `Red` (the model or server answered wrongly, the
message says how) or an `EndpointError` (the request failed). Protocol checks hold for any
OpenAI-compatible server; GLM checks hold only for the real model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from glm51.endpoint.client import Endpoint, spec_accept_length
from glm51.endpoint.prompts import filler, fit
from glm51.endpoint.stream import Completion, ProtocolViolation
from glm51.recipe.gates import SmokeFloors

TEMP0 = {"temperature": 0.0}
NO_THINKING = {"chat_template_kwargs": {"enable_thinking": False}}
THINKING = {"chat_template_kwargs": {"enable_thinking": True}}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "the city name"}},
            "required": ["city"],
        },
    },
}
THINK_TAGS = re.compile(r"</?think>")


class Red(Exception):
    """The check ran and found the endpoint wrong; the message says what it saw."""

    def __init__(self, message: str, value: float | None = None, floor: float | None = None):
        super().__init__(message)
        self.value = value
        self.floor = floor


@dataclass(frozen=True)
class Outcome:
    message: str
    value: float | None = None
    floor: float | None = None


@dataclass(frozen=True)
class Context:
    endpoint: Endpoint
    served_name: str
    floors: SmokeFloors
    needle_tokens: tuple[int, ...]
    max_tokens: int = 1024  # for long answers; every other answer is capped by it too
    gsm8k_items: int | None = None  # None: the recipe's [smoke].gsm8k_items

    def cap(self, tokens: int) -> int:
        return min(tokens, self.max_tokens)


@dataclass(frozen=True)
class Check:
    name: str
    tier: Literal["protocol", "glm"]
    run: Callable[[Context], Outcome]


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _cut(text: str, n: int = 120) -> str:
    text = text.replace("\n", " ")
    return repr(text if len(text) <= n else text[:n] + "...")


# ---------------------------------------------------------------------------- protocol tier


def health(ctx: Context) -> Outcome:
    status = ctx.endpoint.health()
    if status != 200:
        raise Red(f"/health answered HTTP {status}, expected 200")
    return Outcome("/health answered 200")


def models(ctx: Context) -> Outcome:
    ids = ctx.endpoint.models()
    if ctx.served_name not in ids:
        raise Red(f"/v1/models lists {ids}, not the served name {ctx.served_name!r}")
    return Outcome(f"/v1/models lists {ctx.served_name!r}")


PROTOCOL_PROMPT = "Write one short sentence about the sea."


def stream_matches(ctx: Context) -> Outcome:
    params = {**TEMP0, **NO_THINKING, "max_tokens": 32}
    whole = ctx.endpoint.chat(_user(PROTOCOL_PROMPT), **params)
    streamed = ctx.endpoint.stream(_user(PROTOCOL_PROMPT), **params)
    if whole.usage is None:
        raise Red("the non-streamed answer has no usage")
    if streamed.usage is None:
        raise Red("the stream carried no usage (stream_options.include_usage was set)")
    if (whole.content, whole.reasoning) != (streamed.content, streamed.reasoning):
        raise Red(
            f"at temperature 0 the stream said {_cut(streamed.content)}, "
            f"the whole answer {_cut(whole.content)}"
        )
    if whole.usage != streamed.usage:
        raise Red(f"usage differs: whole {whole.usage}, streamed {streamed.usage}")
    return Outcome(
        f"same text ({whole.usage.completion_tokens} tokens) and usage, whole and streamed"
    )


def last_chunk(ctx: Context) -> Outcome:
    streamed = ctx.endpoint.stream(_user(PROTOCOL_PROMPT), **TEMP0, **NO_THINKING, max_tokens=16)
    if not streamed.finish_in_last_chunk:
        raise Red(f"the last chunk carries no finish_reason (saw {streamed.finish_reason!r})")
    if streamed.usage is None:
        raise Red("no usage in the stream")
    return Outcome(f"last chunk: finish_reason {streamed.finish_reason!r}, usage present")


# ---------------------------------------------------------------------------- GLM tier

REASONING_PROMPT = "What is 17 + 25? Answer with the number."


def _no_tags(answer: Completion, where: str) -> None:
    if THINK_TAGS.search(answer.content):
        raise Red(f"<think> tags leaked into content {where}: {_cut(answer.content)}")


def reasoning_on(ctx: Context) -> Outcome:
    answer = ctx.endpoint.chat(
        _user(REASONING_PROMPT), **TEMP0, **THINKING, max_tokens=ctx.max_tokens
    )
    _no_tags(answer, "with thinking on")
    if not answer.reasoning.strip():
        raise Red(f"thinking on, but no reasoning_content (content: {_cut(answer.content)})")
    if not answer.content.strip():
        raise Red("thinking on: reasoning_content came back but the answer (content) is empty")
    return Outcome(f"reasoning {len(answer.reasoning)} chars, answer {_cut(answer.content, 40)}")


def reasoning_off(ctx: Context) -> Outcome:
    answer = ctx.endpoint.chat(
        _user(REASONING_PROMPT), **TEMP0, **NO_THINKING, max_tokens=ctx.cap(256)
    )
    _no_tags(answer, "with thinking off")
    if answer.reasoning.strip():
        raise Red(f"thinking off, but reasoning_content came back: {_cut(answer.reasoning)}")
    if not answer.content.strip():
        raise Red("thinking off: the answer (content) is empty")
    return Outcome(f"no reasoning; answer {_cut(answer.content, 40)}")


def _calls(answer: Completion, expect: int, what: str) -> list[dict]:
    if len(answer.tool_calls) < expect:
        raise Red(
            f"{what}: expected {expect} tool call(s), got {len(answer.tool_calls)} "
            f"(finish_reason {answer.finish_reason!r}, content {_cut(answer.content)})"
        )
    out = []
    for call in answer.tool_calls:
        if call.name != "get_weather":
            raise Red(f"{what}: called {call.name!r}, expected 'get_weather'")
        try:
            args = call.parsed_arguments()
        except ProtocolViolation as exc:
            raise Red(f"{what}: {exc}") from None
        if not isinstance(args, dict) or not isinstance(args.get("city"), str):
            raise Red(f"{what}: arguments {call.arguments!r} have no string 'city'")
        out.append(args)
    return out


TOOLS = {"tools": [WEATHER], **TEMP0, **NO_THINKING}


def tool_single(ctx: Context) -> Outcome:
    answer = ctx.endpoint.chat(
        _user("What is the weather in Paris right now?"), **TOOLS, max_tokens=ctx.cap(256)
    )
    args = _calls(answer, 1, "single call")
    if args[0]["city"].lower() != "paris":
        raise Red(f"single call: asked about Paris, called with {args[0]}")
    return Outcome(f"get_weather({json.dumps(args[0])})")


def tool_required(ctx: Context) -> Outcome:
    answer = ctx.endpoint.chat(
        _user("Say hello."), **TOOLS, tool_choice="required", max_tokens=ctx.cap(256)
    )
    args = _calls(answer, 1, "tool_choice required")
    return Outcome(f"forced call get_weather({json.dumps(args[0])})")


def tool_none(ctx: Context) -> Outcome:
    answer = ctx.endpoint.chat(
        _user("What is the weather in Paris right now?"),
        **TOOLS,
        tool_choice="none",
        max_tokens=ctx.cap(256),
    )
    if answer.tool_calls:
        raise Red(f"tool_choice none, but the answer called {[c.name for c in answer.tool_calls]}")
    if THINK_TAGS.search(answer.content) or "<tool_call>" in answer.content:
        raise Red(f"tool_choice none: raw markup in content: {_cut(answer.content)}")
    if not answer.content.strip():
        raise Red("tool_choice none: empty answer")
    return Outcome(f"no call; answer {_cut(answer.content, 40)}")


def tool_parallel(ctx: Context) -> Outcome:
    answer = ctx.endpoint.chat(
        _user("What is the weather in Paris and in Tokyo? Check both cities."),
        **TOOLS,
        max_tokens=ctx.cap(512),
    )
    args = _calls(answer, 2, "parallel calls")
    cities = {a["city"].lower() for a in args}
    if not {"paris", "tokyo"} <= cities:
        raise Red(f"parallel calls: asked about Paris and Tokyo, called with {sorted(cities)}")
    return Outcome(f"{len(args)} calls: {sorted(cities)}")


def tool_streamed(ctx: Context) -> Outcome:
    answer = ctx.endpoint.stream(
        _user("What is the weather in Paris right now?"), **TOOLS, max_tokens=ctx.cap(256)
    )
    args = _calls(answer, 1, "streamed call")
    return Outcome(f"streamed arguments parse: {json.dumps(args[0])}")


def tool_multi_turn(ctx: Context) -> Outcome:
    messages = _user("What is the weather in Paris right now?")
    first = ctx.endpoint.chat(messages, **TOOLS, max_tokens=ctx.cap(256))
    _calls(first, 1, "multi-turn, first turn")
    call = first.tool_calls[0]
    messages = [
        *messages,
        {
            "role": "assistant",
            "content": first.content or "",
            "tool_calls": [
                {
                    "id": call.id or "call_0",
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id or "call_0", "content": "22 degrees and sunny"},
    ]
    final = ctx.endpoint.chat(messages, **TOOLS, max_tokens=ctx.cap(256))
    if final.tool_calls:
        raise Red("multi-turn: after the tool result the model called a tool again")
    if "22" not in final.content:
        raise Red(
            f"multi-turn: the answer does not use the tool result '22': {_cut(final.content)}"
        )
    return Outcome(f"answer uses the result: {_cut(final.content, 60)}")


LOGPROB_PROMPT = "What is the capital of France? Answer with one word."


def first_token_logprob(ctx: Context) -> Outcome:
    floor = ctx.floors.first_token_logprob
    answer = ctx.endpoint.chat(
        _user(LOGPROB_PROMPT), **TEMP0, **NO_THINKING, max_tokens=4, logprobs=True, top_logprobs=5
    )
    if not answer.logprobs:
        raise Red("the server returned no logprobs (logprobs=true was asked)", floor=floor)
    first = answer.logprobs[0]
    if first.logprob < floor:
        top = ", ".join(f"{t!r} {lp:.2f}" for t, lp in first.top[:5])
        raise Red(
            f"first token {first.token!r} has logprob {first.logprob:.2f} < floor {floor} "
            f"(a flat distribution: garbage weights?; top: {top})",
            value=first.logprob,
            floor=floor,
        )
    return Outcome(f"first token {first.token!r} logprob {first.logprob:.3f}", first.logprob, floor)


def _needle(tokens: int) -> Callable[[Context], Outcome]:
    def needle(ctx: Context) -> Outcome:
        secret = f"kestrel-{tokens % 9973}"
        half = [0]

        def build(words: int, pad: int) -> list[dict]:
            half[0] = words // 2
            text = (
                filler(words // 2)
                + f"\nThe secret passphrase is {secret}.\n"
                + filler(words - words // 2, pad, offset=3)
                + "\n\nWhat is the secret passphrase? Answer with the passphrase."
            )
            return _user(text)

        def count(messages: list[dict]) -> int:
            usage = ctx.endpoint.chat(messages, **TEMP0, **NO_THINKING, max_tokens=1).usage
            if usage is None:
                raise Red("no usage in the answer: cannot size the context")
            return usage.prompt_tokens

        sized = fit(count, build, tokens, exact=False, max_probes=6)
        answer = ctx.endpoint.chat(sized.messages, **TEMP0, **NO_THINKING, max_tokens=ctx.cap(64))
        if secret not in answer.content:
            raise Red(
                f"the needle {secret!r} hidden at {sized.prompt_tokens} tokens was not "
                f"retrieved; answer: {_cut(answer.content)}",
                value=sized.prompt_tokens,
            )
        return Outcome(f"retrieved at {sized.prompt_tokens} tokens", sized.prompt_tokens)

    return needle


def gsm8k_items() -> list[dict]:
    text = resources.files("glm51.smoke").joinpath("data/gsm8k.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


GSM8K_SHOTS = 4
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def gsm8k_answer(text: str) -> str | None:
    """The final number: after '####' when present, else the last number in the text."""
    tail = text.split("####")[-1] if "####" in text else text
    numbers = _NUMBER.findall(tail)
    return numbers[-1].replace(",", "").rstrip(".") if numbers else None


def gsm8k_prompt(shots: list[dict], question: str) -> str:
    parts = [f"Question: {s['question']}\nAnswer: {s['answer']}" for s in shots]
    parts.append(f"Question: {question}\nAnswer:")
    return "\n\n".join(parts)


def gsm8k(ctx: Context) -> Outcome:
    floor = ctx.floors.gsm8k_min_score
    items = gsm8k_items()
    shots, tests = (
        items[:GSM8K_SHOTS],
        items[GSM8K_SHOTS:][: ctx.gsm8k_items or ctx.floors.gsm8k_items],
    )
    right, wrong = 0, []
    for item in tests:
        expected = item["answer"].split("####")[-1].strip()
        answer = ctx.endpoint.chat(
            _user(gsm8k_prompt(shots, item["question"])),
            **TEMP0,
            **NO_THINKING,
            max_tokens=ctx.cap(256),
        )
        got = gsm8k_answer(answer.content)
        if got == expected:
            right += 1
        else:
            wrong.append(f"{expected} != {got}")
    score = right / len(tests)
    if score < floor:
        raise Red(
            f"GSM8K {right}/{len(tests)} = {score:.2f} < floor {floor} "
            f"(expected != got: {', '.join(wrong[:4])})",
            value=score,
            floor=floor,
        )
    return Outcome(f"GSM8K {right}/{len(tests)}", score, floor)


def accept_length(ctx: Context) -> Outcome:
    floor = ctx.floors.accept_length
    info = ctx.endpoint.server_info()
    value = spec_accept_length(info)
    if info is None:
        raise Red(
            "the server has no /server_info (not SGLang?): accept length unknown", floor=floor
        )
    if value is None:
        raise Red(
            "/server_info has no avg_spec_accept_length (speculative decoding off?)", floor=floor
        )
    if value < floor:
        raise Red(
            f"accept length {value:.2f} < floor {floor} (the MTP draft is rejected)",
            value=value,
            floor=floor,
        )
    return Outcome(f"accept length {value:.2f}", value, floor)


REPETITION_PROMPT = "Write an essay of about 400 words on rivers, with numbered points."


def repetition(ctx: Context) -> Outcome:
    answer = ctx.endpoint.chat(
        _user(REPETITION_PROMPT), **TEMP0, **NO_THINKING, max_tokens=ctx.max_tokens
    )
    text = answer.content
    if len(text.split()) < 50:
        raise Red(f"asked for a long answer, got {len(text.split())} words: {_cut(text)}")
    verdict = repeats(text)
    if verdict:
        raise Red(f"the long answer loops: {verdict}")
    return Outcome(f"{len(text.split())} words, no loop")


def repeats(text: str, *, n: int = 4, min_distinct: float = 0.5, tail_chars: int = 400) -> str:
    """Why `text` looks degenerate ('' when it does not): few distinct n-grams, or a tail that
    is one short period repeated."""
    words = text.split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if grams:
        distinct = len(set(grams)) / len(grams)
        if distinct < min_distinct:
            return f"only {distinct:.0%} of its {n}-word sequences are distinct"
    tail = text[-tail_chars:]
    for period in range(1, len(tail) // 3 + 1):
        unit = tail[-period:]
        if unit.strip() and tail.endswith(unit * 3) and len(unit) * 3 >= min(len(tail), 90):
            return f"it ends in {_cut(unit, 40)} repeated"
    return ""


def all_checks(needle_tokens: tuple[int, ...]) -> list[Check]:
    needles = [Check(f"glm.needle.{_k(t)}", "glm", _needle(t)) for t in needle_tokens]
    return [
        Check("protocol.health", "protocol", health),
        Check("protocol.models", "protocol", models),
        Check("protocol.stream-matches", "protocol", stream_matches),
        Check("protocol.last-chunk", "protocol", last_chunk),
        Check("glm.reasoning.on", "glm", reasoning_on),
        Check("glm.reasoning.off", "glm", reasoning_off),
        Check("glm.tools.single", "glm", tool_single),
        Check("glm.tools.required", "glm", tool_required),
        Check("glm.tools.none", "glm", tool_none),
        Check("glm.tools.parallel", "glm", tool_parallel),
        Check("glm.tools.streamed", "glm", tool_streamed),
        Check("glm.tools.multi-turn", "glm", tool_multi_turn),
        Check("glm.first-token-logprob", "glm", first_token_logprob),
        *needles,
        Check("glm.gsm8k", "glm", gsm8k),
        Check("glm.accept-length", "glm", accept_length),
        Check("glm.repetition", "glm", repetition),
    ]


def _k(tokens: int) -> str:
    return f"{round(tokens / 1024)}k" if tokens >= 1024 else str(tokens)
