"""The NVFP4 weight side: the independent reference, bit for bit, and the same bytes when
division by a Python number behaves as on CUDA (simulated on the CPU)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("modelopt")

from glm51.quantize import nvfp4  # noqa: E402
from tests.support import nvfp4_reference as ref  # noqa: E402
from tests.support.cuda_division import reciprocal_scalar_division  # noqa: E402

# The H200's pair for this amax (issue 9): the CPU's exact quotient, CUDA's reciprocal one.
AMAX = 0.0810546875
CPU_SCALE_2, CUDA_SCALE_2 = 3.0154273190e-05, 3.0154275009e-05


def _f32(x: float) -> float:
    return torch.tensor(x, dtype=torch.float32).item()


def test_the_simulation_reproduces_the_h200s_scale_2_pair():
    from modelopt.torch.quantization.qtensor.nvfp4_tensor import NVFP4QTensor

    amax = torch.tensor(AMAX)
    modelopt_cpu = NVFP4QTensor.get_weights_scaling_factor_2(amax).item()
    assert f"{modelopt_cpu:.10e}" == f"{CPU_SCALE_2:.10e}"
    with reciprocal_scalar_division() as seen:
        modelopt_cuda = NVFP4QTensor.get_weights_scaling_factor_2(amax).item()
        ours = nvfp4.weight_scale_2(amax).item()
    assert seen[0] >= 1
    assert f"{modelopt_cuda:.10e}" == f"{CUDA_SCALE_2:.10e}"  # ModelOpt's own: the CUDA bytes
    assert f"{ours:.10e}" == f"{CPU_SCALE_2:.10e}"  # ours: the CPU's, under "CUDA" too


def test_scales_are_exact_quotients_for_many_values():
    g = torch.Generator().manual_seed(0)
    exponents = torch.randint(-20, 10, (200_000,), generator=g).float()
    amax = torch.rand(200_000, generator=g) * torch.exp2(exponents)
    exact = amax.double() / 2688.0  # the FP64 quotient, rounded once to FP32 below
    with reciprocal_scalar_division():
        w, i = nvfp4.weight_scale_2(amax), nvfp4.input_scale(amax)
    assert torch.equal(w, exact.float()) and torch.equal(i, exact.float())


def _realistic(rows: int, cols: int, seed: int) -> torch.Tensor:
    """BF16 weights shaped like a trained projection's: normal, a few outliers, rows of
    different magnitude."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g) * 0.02
    w = w * torch.where(torch.rand(w.shape, generator=g) < 1e-3, 20.0, 1.0)
    w = w * torch.exp(torch.randn(rows, 1, generator=g) * 0.5)
    return w.to(torch.bfloat16)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype == torch.float8_e4m3fn:
        a, b = a.view(torch.uint8), b.view(torch.uint8)
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)


@pytest.mark.parametrize("shared", [False, True], ids=["own-amax", "gate-up-shared-amax"])
def test_weight_side_matches_the_reference_bit_for_bit(shared):
    # GLM-5.1's expert shapes, fewer rows: up/gate [2048, 6144] -> [256, 6144]; down [., 2048].
    for seed, cols in ((1, 6144), (2, 2048)):
        w = _realistic(256, cols, seed)
        amax = w.abs().max().float()
        if shared:  # gate and up: the max over both, here the partner's larger max
            amax = amax * 1.37
        packed, scale, scale_2 = nvfp4.quantize_weight(w, amax)
        r_packed, r_scale, r_scale_2 = ref.quantize(w, amax)
        assert _same(packed, r_packed) and _same(scale, r_scale) and _same(scale_2, r_scale_2)
        with reciprocal_scalar_division() as seen:
            cuda_like = nvfp4.quantize_weight(w, amax)
        assert all(_same(a, b) for a, b in zip(cuda_like, (packed, scale, scale_2), strict=True))
        assert seen[0] == 0  # no division by a Python number anywhere on the weight side


def test_modelopt_conventions_beyond_the_definition_are_device_independent_too():
    """Two cases the format leaves open, where ModelOpt (and so the export) differs from the
    plain reference: an all-zero block gets scale 1.0 (its codes are 0 either way), and a
    block scale under the smallest E4M3 subnormal (2^-9) is clamped to it, not flushed."""
    w = _realistic(64, 256, 3)
    w[0, :16] = 0
    w[1, 16:32] = w[1, 16:32] * 1e-7
    amax = w.abs().max().float()
    packed, scale, scale_2 = nvfp4.quantize_weight(w, amax)
    assert scale[0, 0].float().item() == 1.0 and bool((packed[0, :8] == 0).all())
    assert scale[1, 1].float().item() == 2.0**-9
    with reciprocal_scalar_division():
        cuda_like = nvfp4.quantize_weight(w, amax)
    assert all(_same(a, b) for a, b in zip(cuda_like, (packed, scale, scale_2), strict=True))


def test_modelopts_functions_are_restored_after_the_export_block():
    from modelopt.torch.quantization.qtensor.nvfp4_tensor import NVFP4QTensor

    before = {n: vars(NVFP4QTensor)[n] for n in nvfp4.PATCHED}
    with pytest.raises(RuntimeError), nvfp4.correctly_rounded_scales():
        assert (
            vars(NVFP4QTensor)["get_weights_scaling_factor_2"]
            is not before["get_weights_scaling_factor_2"]
        )
        raise RuntimeError("the export failed")
    assert {n: vars(NVFP4QTensor)[n] for n in nvfp4.PATCHED} == before


def test_block_scale_ties_round_6_times_scale_2_first():
    """An exact E4M3 tie, common with BF16 weights: amax 2.1875, block max 0.030517578125.
    fl(6 * weight_scale_2) is 0.0048828125, the quotient 6.25 exactly, rounded to even: 6.0
    (dividing by 6 and then by weight_scale_2 would give 6.5). The export, the reference and
    ModelOpt's own arithmetic agree on 6.0."""
    from modelopt.torch.quantization.qtensor.nvfp4_tensor import NVFP4QTensor

    w = torch.full((1, 32), 0.001, dtype=torch.bfloat16)
    w[0, 0], w[0, 16] = 2.1875, 0.030517578125
    amax = w.abs().max().float()
    _, scale, scale_2 = nvfp4.quantize_weight(w, amax)
    assert scale[0, 1].float().item() == 6.0
    assert _same(scale, ref.quantize(w, amax)[1])
    assert _same(scale, NVFP4QTensor.get_weights_scaling_factor(w, 16, scale_2)[0])
