"""The b12x MoE runner core, registered with SGLang's `register_moe_runner_core`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sglang.srt.layers.moe.moe_runner.base import (
    DispatchMoeRunnerCore,
    MoeQuantInfo,
    MoeRunnerConfig,
)
from sglang.srt.layers.moe.token_dispatcher.standard import StandardCombineInput
from sglang.srt.layers.moe.utils import resolve_moe_runner_backend

from .constants import BACKEND
from .prep import B12xMoE


@dataclass
class B12xMoeQuantInfo(MoeQuantInfo):
    moe: B12xMoE
    apply_routed_scaling_factor: bool = True


class B12xRunnerCore(DispatchMoeRunnerCore):
    """Consumes SGLang's standard dispatch output (TP: every token, its top-k ids and weights)."""

    @property
    def runner_backend(self):
        return resolve_moe_runner_backend(BACKEND)

    def run_from_dispatch(
        self,
        dispatch_output: Any,
        quant_info: B12xMoeQuantInfo,
        runner_config: MoeRunnerConfig,
        hooks: Any = None,
    ) -> StandardCombineInput:
        if hooks is not None:
            raise NotImplementedError("the b12x MoE runner has no LoRA support")
        topk = dispatch_output.topk_output
        out = quant_info.moe.forward(
            dispatch_output.hidden_states, topk.topk_weights, topk.topk_ids
        )
        if (
            quant_info.apply_routed_scaling_factor
            and runner_config.routed_scaling_factor is not None
        ):
            out.mul_(runner_config.routed_scaling_factor)
        return StandardCombineInput(hidden_states=out)
