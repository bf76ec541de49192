"""Recipe models for the calibration passes and the expert-coverage gate."""

from __future__ import annotations

from pydantic import Field, model_validator

from glm51.recipe.base import Strict


class CalibrationPass(Strict):
    """One calibration pass; its data is described by a manifest file under release/."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    description: str
    manifest: str = Field(description="path of the pass's manifest, relative to the recipe")


class Coverage(Strict):
    """Tokens each routed expert must see during calibration."""

    fail_below: int = Field(1, ge=0, description="fail when an expert got fewer tokens")
    warn_below: int = Field(8, ge=0, description="warn when an expert got fewer tokens")

    @model_validator(mode="after")
    def _ordered(self) -> Coverage:
        if self.warn_below < self.fail_below:
            raise ValueError("warn_below must be >= fail_below")
        return self
