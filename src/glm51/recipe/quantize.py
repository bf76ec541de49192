"""Recipe model for the NVFP4 quantization (ModelOpt)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from glm51.recipe.base import Strict
from glm51.recipe.calibration import CalibrationPass, Coverage


class QuantizeRecipe(Strict):
    """What is quantized, how it is calibrated, and what stays BF16."""

    algorithm: Literal["NVFP4"] = "NVFP4"
    group_size: Literal[16] = Field(16, description="elements per FP8 E4M3 block scale")
    calibration_method: Literal["max"] = "max"
    routing: Literal["natural"] = Field(
        "natural", description="natural top-k routing during calibration (no forced experts)"
    )
    kv_cache: Literal["none"] = Field("none", description="the KV cache is not quantized")
    quantize: tuple[str, ...] = Field(
        description="glob patterns of module names quantized to NVFP4 (the routed experts)"
    )
    keep_bf16: tuple[str, ...] = Field(
        description="glob patterns that stay BF16 and are listed in the exclude list; dense "
        "layers and the MTP layer are derived from the model config and added to these"
    )
    passes: tuple[CalibrationPass, ...] = Field(description="calibration passes, in order")
    coverage: Coverage = Coverage()

    @model_validator(mode="after")
    def _unique_passes(self) -> QuantizeRecipe:
        names = [p.name for p in self.passes]
        if len(set(names)) != len(names):
            raise ValueError(f"pass names must be unique, got {names}")
        if not names:
            raise ValueError("at least one calibration pass is needed")
        return self
