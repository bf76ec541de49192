"""Recipe models for `glm51 fidelity`: the held-out text and its token budget, and the gates
on the KL of the NVFP4 model against BF16."""

from __future__ import annotations

from pydantic import Field

from glm51.recipe.base import Strict


class FidelityBudget(Strict):
    """How many positions `glm51 fidelity` measures: the same ones every run."""

    sequences: int = Field(ge=1, description="sequences measured, drawn from the built set")
    tokens_per_sequence: int = Field(
        ge=2, description="each sequence's first tokens measured (a shorter one: all of it)"
    )
    seed: int = Field(ge=0, description="seed of the draw of `sequences` from the built set")


class FidelityRecipe(FidelityBudget):
    """The release's held-out text and its budget."""

    manifest: str = Field(
        description="the held-out text's manifest (the calibration format), relative to the "
        "recipe; never one of the calibration passes, and no source shared with one"
    )


class FidelityGates(Strict):
    """KL(BF16 || NVFP4) of the next-token distribution and top-1 agreement, per position."""

    kl_mean_max: float = Field(ge=0, description="fail when the mean KL (nats) is above this")
    kl_p99_max: float = Field(ge=0, description="fail when the 99th-percentile KL is above this")
    top1_min: float = Field(
        ge=0, le=1, description="fail when fewer positions agree on the top-1 token"
    )
