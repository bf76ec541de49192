"""What `glm51 smoke` found: one entry per check, grouped in tiers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from glm51.records.base import Record


class SmokeCheck(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str  # e.g. "protocol.stream-matches", "glm.tool-call.parallel"
    tier: Literal["protocol", "glm"]
    status: Literal["passed", "failed", "skipped"]
    message: str = ""  # why it failed or was skipped; what it measured when it passed
    value: float | None = None  # a measured figure (logprob, score, accept length)
    floor: float | None = None  # the floor it was compared against
    seconds: float = 0.0


class SmokeRecord(Record):
    kind: Literal["smoke"] = "smoke"
    endpoint: str
    served_model: str
    checks: tuple[SmokeCheck, ...]

    @property
    def passed(self) -> bool:
        return all(c.status != "failed" for c in self.checks)
