"""What `glm51 bench` measured, and how it compares with the recipe's gates."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from glm51.records.base import Record

# The model card's rows, in the card's order.
FIGURES = ("short_tg", "tg_32k", "tg_128k", "c32", "c64")
# The prompt sizes the card's long-context figures (and their gates) are defined at.
CARD_CONTEXT = {"tg_32k": 32768, "tg_128k": 131072}


def at_card_size(name: str, context_tokens: int) -> bool:
    """Whether a figure was measured at the size its card row and gate are defined for."""
    nominal = CARD_CONTEXT.get(name)
    return nominal is None or context_tokens == nominal


class GateResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    threshold: float  # the recipe's figure, tok/s
    tolerance: float  # fraction below the threshold that still passes
    passed: bool


class FailedRequest(BaseModel):
    """A request the figure lost (allowed by --max-failed-requests), and why it stayed lost."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    at_s: float  # seconds after the figure started (warmup included)
    error: str
    why_not_retried: str


class BenchFigure(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str  # one of FIGURES, or an extra measurement
    concurrency: int
    context_tokens: int  # prompt length of each stream
    tokens_per_s: float  # decode tokens/s (aggregate over streams), from the server's usage
    output_tokens: int
    duration_s: float
    ttft_s: float | None = None
    prefill_tokens_per_s: float | None = None
    accept_length: float | None = None
    requests: int = 0  # requests whose output fell (partly) inside the window
    gate: GateResult | None = None
    # Lost requests: their tokens are not counted (the server's usage never arrived).
    failed_requests: tuple[FailedRequest, ...] = ()

    def title(self, names: dict[str, str]) -> str:
        """The figure's name, or, measured at another size than the card's, that size."""
        if at_card_size(self.name, self.context_tokens):
            return names.get(self.name, self.name)
        return f"TG at a {self.context_tokens}-token prompt"


class BenchRecord(Record):
    kind: Literal["bench"] = "bench"
    endpoint: str
    served_model: str
    profile: str | None = None
    hardware: str = ""  # e.g. "8x NVIDIA RTX PRO 6000 Blackwell"; "" when unknown
    server_flags: tuple[str, ...] = ()
    accept_length: float | None = None
    figures: tuple[BenchFigure, ...]
    notes: tuple[str, ...] = ()  # how the measurement had to adapt (e.g. no ignore_eos)

    @property
    def gates_passed(self) -> bool:
        return all(f.gate is None or f.gate.passed for f in self.figures)
