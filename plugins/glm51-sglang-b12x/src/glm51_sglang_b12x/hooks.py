"""The two AROUND hooks: SGLang's closed FP4-GEMM enum, and the NVFP4 MoE method choice."""

from __future__ import annotations

from .constants import BACKEND


def b12x_fp4_backend():
    """`Fp4GemmRunnerBackend` is a closed Enum: add a `b12x` pseudo-member (the way `enum.Flag`
    makes its pseudo-members) so that `Fp4GemmRunnerBackend("b12x")` resolves. It is no other
    backend (every `is_*` answers False), so SGLang's dense NVFP4 path keeps the 128x4 swizzled
    scales and calls FlashInfer's `mm_fp4(..., backend=get_flashinfer_backend())`, i.e. "b12x"."""
    from sglang.srt.layers.quantization.fp4_utils import Fp4GemmRunnerBackend as cls

    member = cls._value2member_map_.get(BACKEND)
    if member is None:
        member = object.__new__(cls)
        member._value_ = BACKEND
        member._name_ = BACKEND.upper()
        member.__objclass__ = cls
        member._sort_order_ = len(cls._member_names_)
        cls._value2member_map_[BACKEND] = member
    return member


def initialize_fp4_gemm_config_hook(original, *args, **kwargs):
    from sglang.srt.layers.quantization import fp4_utils
    from sglang.srt.runtime_context import get_exec

    if get_exec().kernel.fp4_gemm_runner_backend != BACKEND:
        return original(*args, **kwargs)
    from .platform import require_sm12x

    require_sm12x("--fp4-gemm-backend b12x")
    fp4_utils.FP4_GEMM_RUNNER_BACKEND = b12x_fp4_backend()
    return None


def b12x_moe_selected() -> bool:
    from sglang.srt.layers.moe.utils import get_moe_runner_backend

    return getattr(get_moe_runner_backend(), "value", None) == BACKEND


def get_quant_method_hook(original, self, layer, prefix):
    """With `--moe-runner-backend b12x`, a serialized NVFP4 FusedMoE gets the b12x subclass of
    `ModelOptNvFp4FusedMoEMethod`; every other layer and backend goes to SGLang unchanged."""
    from sglang.srt.layers.moe.fused_moe_triton import FusedMoE

    if not (isinstance(layer, FusedMoE) and b12x_moe_selected()):
        return original(self, layer, prefix)
    if not self.is_checkpoint_nvfp4_serialized or getattr(self, "is_w4a16", False):
        raise ValueError(
            "--moe-runner-backend b12x serves serialized ModelOpt NVFP4 (W4A4) experts only"
        )
    from sglang.srt.layers.quantization.modelopt_quant import ModelOptFp4LinearMethod

    from .method import B12xNvFp4FusedMoEMethod

    return self._get_quant_method(
        layer, prefix, Linear=ModelOptFp4LinearMethod, Moe=B12xNvFp4FusedMoEMethod
    )
