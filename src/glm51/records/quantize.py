"""What `glm51 quantize` produced."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from glm51.records.base import Record, ToolVersions


class CalibrationUnit(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    samples: int
    tokens: int
    digest: str  # sha256 of the token ids
    device: str | None = None  # where its input amaxes were measured; None: not recorded
    device_name: str | None = None  # the GPU's name, for a CUDA device
    reused: bool = False  # its artifact came from an earlier run (resume)


class QuantizeRecord(Record):
    kind: Literal["quantize"] = "quantize"
    source: str  # the BF16 checkpoint folder
    source_fingerprint: str
    output: str  # the NVFP4 checkpoint folder
    mode: Literal["resident", "bounded"]
    device: str  # "cpu", "cuda", "cuda:1"... (the run's: calibration and export)
    device_name: str | None = None  # the GPU's name when the device is CUDA
    ranks: int = 1  # torchrun processes that shared the calibration and the export
    calibration: tuple[CalibrationUnit, ...]
    config_digest: str  # the ModelOpt quantization config
    quantized_tensors: int = 0
    bf16_tensors: int = 0
    coverage_passed: bool = True
    under_covered: tuple[str, ...] = ()  # "layer.expert" below the recipe's warn_below
    tools: ToolVersions = ToolVersions()
    seconds: float | None = None
