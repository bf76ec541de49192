"""Run the bench figures against an endpoint: prompts sized, prefixes warmed, streams kept
saturated for a fixed window, tokens counted from the server's usage.

Async streaming on one pooled `httpx.AsyncClient` whose connection limit is the figure's
concurrency, so the client is never the bottleneck. A request that fails (the server died,
refused, cut a stream) cancels the figure's other streams at once and raises.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from glm51 import __version__
from glm51.bench import measure
from glm51.endpoint.client import (
    AsyncEndpoint,
    BadAnswer,
    Endpoint,
    EndpointError,
    RequestRejected,
    ServerGone,
    async_client,
    spec_accept_length,
)
from glm51.endpoint.prompts import filler, fit
from glm51.endpoint.stream import Streamed
from glm51.errors import InfraError, InputError
from glm51.recipe.gates import Gates
from glm51.records.bench import BenchFigure, BenchRecord, FailedRequest, at_card_size

SHORT_PROMPT = "Write a long story about a lighthouse keeper."
OPTIONAL_FIELDS = ("ignore_eos", "continuous_usage_stats")


@dataclass(frozen=True)
class FigureSpec:
    name: str
    concurrency: int
    context_tokens: int  # 0: the short prompt as it is
    option: str | None = None  # the option that set context_tokens, for errors

    @property
    def gated(self) -> bool:
        """Only a figure measured at the card's size is held to the card's gate."""
        return self.context_tokens == 0 or at_card_size(self.name, self.context_tokens)


def card_figures(context_32k: int = 32768, context_128k: int = 131072) -> list[FigureSpec]:
    return [
        FigureSpec("short_tg", 1, 0),
        FigureSpec("tg_32k", 1, context_32k, "--context-32k"),
        FigureSpec("tg_128k", 1, context_128k, "--context-128k"),
        FigureSpec("c32", 32, 0),
        FigureSpec("c64", 64, 0),
    ]


@dataclass(frozen=True)
class Settings:
    warmup_s: float = 15.0
    duration_s: float = 30.0
    max_tokens: int = 1024  # per request; streams send the next request when one ends
    timeout_s: float = 300.0  # one read of a stream (a server that stops talking)
    temperature: float = 0.0
    # Requests a figure may lose and go on (behind a gateway, a replica may die): each is
    # recorded with why it failed; one more fails the figure. 0: the first failure does.
    max_failed_requests: int = 0


@dataclass
class Session:
    """What the bench learnt about the server (which optional fields it takes)."""

    sync: Endpoint
    url: str
    model: str
    settings: Settings
    extras: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    api_key: str | None = field(default=None, repr=False)

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "max_tokens": self.settings.max_tokens,
            "temperature": self.settings.temperature,
        }
        if self.extras.get("ignore_eos"):
            params["ignore_eos"] = True
        if self.extras.get("continuous_usage_stats"):
            params["stream_options"] = {"include_usage": True, "continuous_usage_stats": True}
        return params


def probe_options(session: Session) -> None:
    """Find out which optional request fields the server accepts (one short stream each)."""
    for name in OPTIONAL_FIELDS:
        extra: dict[str, Any] = (
            {"ignore_eos": True}
            if name == "ignore_eos"
            else {"stream_options": {"include_usage": True, "continuous_usage_stats": True}}
        )
        try:
            session.sync.stream([_user(SHORT_PROMPT)], max_tokens=2, **extra)
            session.extras[name] = True
        except RequestRejected as exc:
            if exc.status >= 500:
                raise
            session.extras[name] = False
            session.notes.append(f"the server rejects {name} (HTTP {exc.status}); sent without it")


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def sized_prompt(session: Session, tokens: int) -> tuple[list[dict], int]:
    """The prompt for a figure and its exact prompt_tokens."""
    if tokens == 0:
        messages = [_user(SHORT_PROMPT)]
        usage = session.sync.chat(messages, max_tokens=1).usage
        if usage is None:
            raise InfraError("the server's answer has no usage: tokens cannot be counted")
        return messages, usage.prompt_tokens

    def count(messages: list[dict]) -> int:
        usage = session.sync.chat(messages, max_tokens=1).usage
        if usage is None:
            raise InfraError("the server's answer has no usage: tokens cannot be counted")
        return usage.prompt_tokens

    def build(words: int, pad: int) -> list[dict]:
        return [_user(filler(words, pad) + "\nContinue the list.")]

    sized = fit(count, build, tokens, exact=True)
    return sized.messages, sized.prompt_tokens


_STARTED = (
    "the stream had started (HTTP 200 sent, perhaps tokens too) when its replica died: a "
    "gateway retries a request only before the first byte of its answer, and the client "
    "cannot resend it without counting twice the tokens it may have received"
)


def failed_request(exc: EndpointError, at_s: float) -> FailedRequest:
    """A lost request, and why neither a gateway in front nor the bench could retry it."""
    text = str(exc)
    if isinstance(exc, ServerGone | BadAnswer) and any(
        cut in text for cut in ("mid-answer", "without a finish_reason", "error mid-stream")
    ):
        why = _STARTED
    elif isinstance(exc, ServerGone):
        why = "no answer at all: the endpoint itself (the gateway, or the only server) is gone"
    elif isinstance(exc, RequestRejected):
        why = (
            f"the endpoint answered HTTP {exc.status} before any token: a gateway answers so "
            "once its own retries are spent or no healthy replica is left; the bench does not "
            "resend it (the gateway already did)"
        )
    elif isinstance(exc, BadAnswer):
        why = "the answer was not a valid completion: resending would hide a broken server"
    else:
        why = type(exc).__name__
    return FailedRequest(at_s=round(at_s, 3), error=text[:300], why_not_retried=why)


async def measure_streams(
    session: Session,
    spec: FigureSpec,
    messages: list[dict],
    prompt_tokens: int,
    tick: Callable[[float], None],
    failures: list[FailedRequest] | None = None,
) -> tuple[list[Streamed], float, float]:
    s = session.settings
    results: list[Streamed] = []
    failures = [] if failures is None else failures
    async with async_client(spec.concurrency, s.timeout_s, session.api_key) as http:
        ep = AsyncEndpoint(session.url, session.model, http)
        start = time.perf_counter()
        a, b = start + s.warmup_s, start + s.warmup_s + s.duration_s

        async def stream_worker() -> None:
            while time.perf_counter() < b:
                try:
                    r = await ep.stream(messages, **session.params())
                except EndpointError as exc:
                    if len(failures) >= s.max_failed_requests:
                        raise
                    failures.append(failed_request(exc, time.perf_counter() - start))
                    continue
                if r.usage is None:
                    raise InfraError(f"{spec.name}: a stream ended without usage")
                if r.usage.prompt_tokens != prompt_tokens:
                    raise InfraError(
                        f"{spec.name}: the server counted {r.usage.prompt_tokens} prompt tokens, "
                        f"the prompt was sized to {prompt_tokens}"
                    )
                results.append(r)

        async def ticker() -> None:
            while True:
                tick(min(time.perf_counter() - start, s.warmup_s + s.duration_s))
                await asyncio.sleep(0.25)

        tick_task = asyncio.create_task(ticker())
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(spec.concurrency):
                    group.create_task(stream_worker())
        except* InfraError as errors:
            raise errors.exceptions[0] from None
        finally:
            tick_task.cancel()
    return results, a, b


def size_prompts(session: Session, specs: Sequence[FigureSpec]) -> list[tuple[list[dict], int]]:
    """Every figure's prompt, sized before anything is measured: a size the template cannot
    reach is refused (naming its option) in seconds, not after minutes of other figures."""
    sized = []
    for spec in specs:
        try:
            sized.append(sized_prompt(session, spec.context_tokens))
        except InputError as exc:
            raise InputError(f"{spec.option or spec.name} {spec.context_tokens}: {exc}") from None
    return sized


def run_figure(
    session: Session,
    spec: FigureSpec,
    gates: Gates,
    tick: Callable[[float], None],
    prompt: tuple[list[dict], int] | None = None,
) -> BenchFigure:
    messages, prompt_tokens = prompt or sized_prompt(session, spec.context_tokens)
    # Warm the prefix (and measure the cold prefill) with a one-token answer.
    cold = session.sync.stream(messages, max_tokens=1, temperature=0.0)
    ttft = cold.ttft_s if cold.ttft_s is not None else cold.t_end - cold.t_sent
    failures: list[FailedRequest] = []
    streams, a, b = asyncio.run(
        measure_streams(session, spec, messages, prompt_tokens, tick, failures)
    )
    window = (measure.single_stream if spec.concurrency == 1 else measure.aggregate)(streams, a, b)
    if window.tokens <= 0:
        raise InfraError(f"{spec.name}: no tokens were decoded inside the measurement window")
    rate = window.tokens_per_s
    return BenchFigure(
        name=spec.name,
        concurrency=spec.concurrency,
        context_tokens=prompt_tokens,
        tokens_per_s=round(rate, 3),
        output_tokens=round(window.tokens),
        duration_s=round(b - a, 3),
        ttft_s=round(ttft, 4),
        prefill_tokens_per_s=round(prompt_tokens / ttft, 1) if ttft > 0 else None,
        accept_length=spec_accept_length(session.sync.server_info()),
        requests=window.requests,
        gate=measure.gate(spec.name, rate, gates) if spec.gated else None,
        failed_requests=tuple(failures),
    )


# Not settings (version), or secrets SGLang 0.5.23 reports back in /server_info: never recorded.
_NOT_FLAGS = ("version", "api_key", "admin_api_key", "launch_command", "ssl_keyfile_password")


def server_flags(info: dict | None) -> tuple[str, ...]:
    """The server's arguments from /server_info, as `--flag=value` (scalars only)."""
    if not info:
        return ()
    flags = []
    for key, value in sorted(info.items()):
        if value is None or isinstance(value, dict | list) or key in _NOT_FLAGS:
            continue
        flags.append(f"--{key.replace('_', '-')}={value}")
    return tuple(flags)


def bench(
    session: Session,
    specs: Sequence[FigureSpec],
    gates: Gates,
    *,
    profile: str | None,
    hardware: str,
    on_start: Callable[[FigureSpec], Callable[[float], None]],
    on_done: Callable[[BenchFigure], None] = lambda _f: None,
) -> BenchRecord:
    probe_options(session)
    prompts = size_prompts(session, specs)
    for spec in specs:
        if not spec.gated:
            session.notes.append(
                f"{spec.name} was measured at a {spec.context_tokens}-token prompt ({spec.option}),"
                " not the card's size: it is labelled with its size and not gated"
            )
    figures = []
    for spec, prompt in zip(specs, prompts, strict=True):
        figure = run_figure(session, spec, gates, on_start(spec), prompt)
        figures.append(figure)
        on_done(figure)
    info = session.sync.server_info()
    return BenchRecord(
        glm51_version=__version__,
        endpoint=session.url,
        served_model=session.model,
        profile=profile,
        hardware=hardware,
        server_flags=server_flags(info),
        accept_length=spec_accept_length(info),
        figures=tuple(figures),
        notes=tuple(session.notes),
    )
