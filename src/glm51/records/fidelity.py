"""What `glm51 fidelity` measured: KL(BF16 || NVFP4) per position, top-1 agreement, the error
of every layer's hidden state and of every routed expert's weights, and the gates."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from glm51.records.base import Record, ToolVersions


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KLStats(_Frozen):
    """KL(BF16 || NVFP4) of the full-vocabulary next-token distribution, nats, over positions."""

    mean: float
    median: float
    p95: float
    p99: float
    max: float


class LayerError(_Frozen):
    layer: int
    moe: bool  # routed experts (NVFP4 in the candidate); else the layer is BF16 in both
    relative_error: float  # ||h_nvfp4 - h_bf16|| / ||h_bf16|| after this layer, all positions
    cosine: float
    local_relative_error: float  # this layer alone, on the BF16 stream's input


class ExpertError(_Frozen):
    layer: int
    expert: int
    relative_error: float  # ||W_nvfp4 - W_bf16|| / ||W_bf16||, gate, up and down together
    calibration_tokens: int | None  # tokens routed to it in calibration (None: not given)


class FidelityGate(_Frozen):
    name: Literal["kl_mean", "kl_p99", "top1"]
    value: float
    threshold: float
    bound: Literal["max", "min"]
    passed: bool


class TextSource(_Frozen):
    """Where the measured text came from."""

    kind: Literal["manifest", "files"]
    name: str  # the manifest's name, or "local"
    description: str
    path: str  # the manifest (relative to the recipe when it is the recipe's), or the files
    digest: str  # sha256 of the measured token ids (calib.data.digest_of)


class FidelityRecord(Record):
    kind: Literal["fidelity"] = "fidelity"
    source: str
    checkpoint: str
    text: TextSource
    sequences: int
    positions: int
    tokens_per_sequence: int  # the budget; a shorter sequence is measured whole
    seed: int
    kl: KLStats
    kl_percentiles: tuple[float, ...]  # the KL at 0, 1, ..., 100 percent of the positions
    top1_agreement: float
    layers: tuple[LayerError, ...]
    nvfp4_layers: int  # decoder layers whose routed experts are NVFP4 in the checkpoint
    expert_errors: dict[str, tuple[float, ...]]  # MoE layer -> every expert's error, in order
    worst_experts: tuple[ExpertError, ...]
    gate_set: Literal["release", "rehearsal"]
    gates: tuple[FidelityGate, ...]
    device: str
    device_name: str | None = None
    tools: ToolVersions = ToolVersions()
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def worst_layer(self) -> LayerError | None:
        moe = [x for x in self.layers if x.moe]
        return max(moe, key=lambda x: x.local_relative_error) if moe else None
