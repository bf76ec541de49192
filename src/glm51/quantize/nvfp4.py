"""NVFP4 scale arithmetic that gives the same bytes on every device.

ModelOpt 0.47 computes the per-tensor scales as ``amax.float() / (6 * 448)``: a tensor
divided by a Python number. On the CPU that is IEEE division, correctly rounded. On CUDA,
PyTorch multiplies by the reciprocal instead (``BinaryDivTrueKernel.cu``: "this may lose
one bit of precision"), which is one ulp off for about 22% of all values. Measured on an
H200: amax 0.0810546875 gives ``weight_scale_2`` 3.0154273190e-05 on the CPU and
3.0154275009e-05 on CUDA, and the packed weights and FP8 block scales derived from it
flip with it.

Here every scale is ``amax / divisor`` with the divisor a tensor on amax's own device:
PyTorch then runs the true division on both devices (correctly rounded, measured on the
H200: 0 differences in 1,000,000 values). The rest of ModelOpt's weight path already
divides tensor by tensor (FP8 block scales, scaled weights), and rounds to E4M3/E2M1 with
comparisons, so with these scales the weight side is one fixed sequence of correctly
rounded FP32 operations:

    weight_scale_2 = fl(amax / 2688)                      amax = max|W| (gate and up: both)
    weight_scale   = E4M3(clamp(fl(block_amax / fl(6 * weight_scale_2)), 2^-9, 448))
    weight         = E2M1(fl(W / fl(weight_scale * weight_scale_2)))  two codes per byte
    input_scale    = fl(input_amax / 2688)

`correctly_rounded_scales()` installs these scale functions in ModelOpt's NVFP4QTensor
for the duration of an export; `quantize_weight` is the weight side of one projection
through the same code, for tests and checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from glm51.errors import InfraError

E2M1_MAX = 6.0
E4M3_MAX = 448.0
# The NVFP4QTensor class methods replaced by `correctly_rounded_scales`.
PATCHED = (
    "get_weights_scaling_factor_2",
    "get_weights_scaling_factor_2_from_quantizer",
    "get_activation_scaling_factor",
)


def exact_div(x, divisor: float):
    """fl(x / divisor) in FP32, correctly rounded on every device: the divisor is a tensor on
    x's device, never a Python number (which CUDA turns into a reciprocal multiply)."""
    import torch

    x = x.float()
    return x / torch.tensor(float(divisor), dtype=torch.float32, device=x.device)


def weight_scale_2(amax, fp8_max: float = E4M3_MAX):
    """The FP32 global weight scale: amax / (6 * 448)."""
    return exact_div(amax, E2M1_MAX * fp8_max)


def input_scale(amax, maxbound: float = E2M1_MAX):
    """The FP32 input scale of an NVFP4 input quantizer: amax / (6 * 448)."""
    return exact_div(amax, maxbound * E4M3_MAX)


def _wsf2(cls, input):
    from modelopt.torch.quantization.utils import reduce_amax

    return weight_scale_2(reduce_amax(input))


def _wsf2_from_quantizer(cls, weight_quantizer):
    from modelopt.torch.quantization.utils.numeric_utils import fp8_max_for_normalization

    amax = cls._get_static_global_amax(weight_quantizer)
    if amax is None:
        assert hasattr(weight_quantizer, "_amax"), "Weight quantizer does not have attribute amax"
        amax = weight_quantizer._amax
    return weight_scale_2(amax, fp8_max_for_normalization(weight_quantizer))


def _activation(cls, quantizer):
    if not quantizer.is_enabled:
        return None
    amax = quantizer.export_amax()
    if amax is None:
        return None
    scale = input_scale(amax, quantizer.maxbound)
    assert bool((scale > 0).all()), f" activation scaling factor {scale} not positive."
    return scale


@contextmanager
def correctly_rounded_scales() -> Iterator[None]:
    """ModelOpt's NVFP4 scale functions, with exact division, for the duration of the block.

    The replacements return what ModelOpt 0.47 returns on the CPU, bit for bit; only the
    CUDA result changes (a test checks both). Refuses a ModelOpt whose class lacks them."""
    from modelopt.torch.quantization.qtensor.nvfp4_tensor import NVFP4QTensor

    missing = [name for name in PATCHED if name not in vars(NVFP4QTensor)]
    if missing:
        raise InfraError(
            f"ModelOpt's NVFP4QTensor has no {', '.join(missing)}: this glm51 fixes the "
            "NVFP4 scale arithmetic of ModelOpt 0.47 and needs that version"
        )
    saved = {name: vars(NVFP4QTensor)[name] for name in PATCHED}
    replacement = dict(zip(PATCHED, (_wsf2, _wsf2_from_quantizer, _activation), strict=True))
    try:
        for name, fn in replacement.items():
            setattr(NVFP4QTensor, name, classmethod(fn))
        yield
    finally:
        for name, original in saved.items():
            setattr(NVFP4QTensor, name, original)


def quantize_weight(weight, amax, block_size: int = 16):
    """The weight side of one projection, as the export computes it: (packed uint8
    [out, in/2], E4M3 block scales [out, in/block], FP32 weight_scale_2), from the BF16
    weight and its amax (for gate and up: the max over both). On whatever device `weight`
    is; the same bytes on every device."""
    from modelopt.torch.quantization.qtensor.nvfp4_tensor import NVFP4QTensor

    with correctly_rounded_scales():
        scale_2 = weight_scale_2(amax.to(weight.device))
        scale, _ = NVFP4QTensor.get_weights_scaling_factor(weight, block_size, scale_2)
        packed = NVFP4QTensor.quantize(weight, block_size, scale, scale_2)[0]._quantized_data
    return packed, scale, scale_2
