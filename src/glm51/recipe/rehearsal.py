"""The rehearsal (`glm51 release --rehearsal`): how the tiny model is served and measured on
the CPU, and the gates it must pass there (a CPU server of a random tiny model, not GLM-5.1:
these prove the chain and its gating, not the model)."""

from __future__ import annotations

from pydantic import Field

from glm51.recipe.base import Strict
from glm51.recipe.fidelity import FidelityBudget
from glm51.recipe.gates import Gates


class RehearsalRecipe(Strict):
    served_name: str = Field(
        "glm51/tiny",
        pattern=r"^[\w.-]+/[\w.-]+$",
        description="the tiny model's name on its server, OWNER/NAME",
    )
    figures: tuple[str, ...] = Field(("short_tg",), description="bench figures measured")
    warmup_s: float = Field(2.0, ge=0, description="seconds of each figure before its window")
    duration_s: float = Field(5.0, gt=0, description="seconds each figure is measured for")
    max_tokens: int = Field(64, ge=2, description="output tokens per request")
    gates: Gates = Field(description="the CPU rehearsal's throughput and fidelity gates")
    fidelity: FidelityBudget = Field(
        description="the token budget of the rehearsal's `glm51 fidelity` (synthetic text)"
    )
