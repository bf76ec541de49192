"""Pure measurement: tokens in a time window from the server's usage, and the gates.

Each stream's output is a timeline of (time, completion_tokens so far). With continuous
usage stats the server gives a point per chunk; otherwise the stream's final `usage` is
spread evenly between its first and last output chunk, the first chunk holding its share
(total / chunks). Chunks are never counted as tokens.

- c = 1 (TG figures): decode tokens/s = tokens decoded inside the window / time the stream
  was decoding inside the window (the first chunk, produced by prefill, is not decode; the
  gaps between back-to-back requests are not decode time).
- c > 1: aggregate tokens/s = every token produced inside the window / window length.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from glm51.endpoint.stream import Streamed
from glm51.recipe.gates import Gates
from glm51.records.bench import GateResult

GATE_KEYS = {
    "short_tg": "short_tg_tok_s",
    "tg_32k": "tg_32k_tok_s",
    "tg_128k": "tg_128k_tok_s",
    "c32": "c32_tok_s",
    "c64": "c64_tok_s",
}


@dataclass(frozen=True)
class Timeline:
    points: tuple[tuple[float, float], ...]  # (t, tokens so far), t increasing

    @classmethod
    def of(cls, s: Streamed) -> Timeline | None:
        if s.usage is None or s.t_first is None or s.t_last is None:
            return None
        total = s.usage.completion_tokens
        pts = [(t, float(n)) for t, n in s.usage_points if s.t_first <= t]
        if len(pts) >= 2 and pts[-1][1] == total:
            return cls(tuple(pts))
        first = total / max(s.chunks, 1)
        return cls(((s.t_first, first), (max(s.t_last, s.t_first), float(total))))

    @property
    def start(self) -> float:
        return self.points[0][0]

    @property
    def end(self) -> float:
        return self.points[-1][0]

    def at(self, t: float) -> float:
        """Tokens out by time t, the first chunk's tokens counted from its arrival on."""
        pts = self.points
        if t <= pts[0][0]:
            return pts[0][1]
        if t >= pts[-1][0]:
            return pts[-1][1]
        for (t0, n0), (t1, n1) in itertools.pairwise(pts):
            if t <= t1:
                return n0 + (n1 - n0) * (t - t0) / (t1 - t0) if t1 > t0 else n1
        return pts[-1][1]

    def decoded(self, a: float, b: float) -> float:
        """Tokens decoded in [a, b] (after the first chunk)."""
        return max(0.0, self.at(b) - self.at(a))

    def produced(self, a: float, b: float) -> float:
        """Every token produced in [a, b], the first chunk included when it lands inside."""
        first = self.points[0][1] if a < self.start <= b else 0.0
        return self.decoded(a, b) + first

    def busy(self, a: float, b: float) -> float:
        return max(0.0, min(b, self.end) - max(a, self.start))


@dataclass(frozen=True)
class Window:
    tokens: float
    seconds: float  # the denominator: decode time (c = 1) or the window (c > 1)
    requests: int

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def single_stream(streams: Iterable[Streamed], a: float, b: float) -> Window:
    lines = [tl for s in streams if (tl := Timeline.of(s)) is not None]
    tokens = sum(tl.decoded(a, b) for tl in lines)
    busy = sum(tl.busy(a, b) for tl in lines)
    return Window(tokens, busy, sum(tl.busy(a, b) > 0 for tl in lines))


def aggregate(streams: Iterable[Streamed], a: float, b: float) -> Window:
    lines = [tl for s in streams if (tl := Timeline.of(s)) is not None]
    tokens = sum(tl.produced(a, b) for tl in lines)
    return Window(tokens, b - a, sum(tl.end > a and tl.start < b for tl in lines))


def gate(name: str, tokens_per_s: float, gates: Gates) -> GateResult | None:
    """The recipe's gate for a card figure (None for other figures)."""
    key = GATE_KEYS.get(name)
    if key is None:
        return None
    threshold = float(getattr(gates, key))
    return GateResult(
        threshold=threshold,
        tolerance=gates.tolerance,
        passed=tokens_per_s >= threshold * (1 - gates.tolerance),
    )


def missed(figures: Sequence) -> list[str]:  # BenchFigure
    return [
        f"{f.name} {f.tokens_per_s:.1f} tok/s < {f.gate.threshold:g} x (1 - {f.gate.tolerance:g})"
        for f in figures
        if f.gate is not None and not f.gate.passed
    ]
