"""`glm51 fidelity` on CUDA (`-m gpu`): the activation quantization equals the CPU's and
ModelOpt's own NVFP4 fake quantization (its Triton kernel, which asserts CUDA), and the walk
on CUDA measures what the CPU measures. Skips with the reason where there is no CUDA device."""

from __future__ import annotations

import pytest

from glm51.fidelity import numerics

pytestmark = pytest.mark.gpu


def _cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip(f"no CUDA device (torch {torch.__version__})")
    return torch


def test_activation_quantization_on_cuda_is_the_cpus_bit_for_bit():
    torch = _cuda()
    g = torch.Generator().manual_seed(5)
    x = (torch.randn(256, 512, generator=g) * torch.logspace(-2, 1, 512)).to(torch.bfloat16)
    scale = x.float().abs().max() / (6 * 448)
    cpu = numerics.unit_fake_quantize(x, scale)
    cuda = numerics.unit_fake_quantize(x.cuda(), scale.cuda()).cpu()
    assert torch.equal(cpu, cuda)


def test_activation_quantization_matches_modelopts_kernel():
    torch = _cuda()
    kernel = pytest.importorskip("modelopt.torch.kernels.quantization.gemm.fp4_kernel_hopper")
    g = torch.Generator().manual_seed(6)
    # Blocks whose E4M3 scale times the global scale stays >= 1e-5: below that ModelOpt
    # rescales a block by 1.0, a serving kernel (and glm51) by its own scale.
    x = (torch.randn(128, 256, generator=g) + 0.5).to(torch.bfloat16).cuda()
    amax = x.float().abs().max()
    theirs = kernel.fp4_fake_quant_block(x.float(), amax).cpu()
    ours = numerics.fake_quantize(x, amax / (6 * 448)).cpu()
    # ModelOpt divides amax by a Python number on CUDA (a reciprocal multiply, one ulp off for
    # some values: quantize/nvfp4.py) and rounds q * fl(s * g) instead of fl(q * s) * g: a value
    # on a rounding boundary may land one step apart; everything else agrees to an ulp or two.
    close = torch.isclose(ours, theirs, rtol=1e-6, atol=0)
    assert close.double().mean() > 0.999, (~close).sum()


def test_the_walk_on_cuda_measures_what_the_cpu_measures(tmp_path, recipe):
    torch = _cuda()
    from glm51.calib.rehearsal_data import write_jsonl
    from glm51.checkpoint.folder import Checkpoint
    from glm51.fidelity.request import FidelityRequest
    from glm51.fidelity.stage import build_text
    from glm51.fidelity.walk import measure
    from glm51.quantize import stage
    from glm51.quantize.tiny import build_tiny_model

    tiny = build_tiny_model(tmp_path / "tiny")
    calib = write_jsonl(tmp_path / "calib.jsonl", 12, 0)
    stage.quantize(
        stage.Request(tiny, tmp_path / "nvfp4", tmp_path / "w", stage.Calibration(files=(calib,))),
        recipe,
    )
    text = write_jsonl(tmp_path / "text.jsonl", 8, 9)
    req = FidelityRequest(source=tiny, checkpoint=tiny, text_files=(text,), gate_set="rehearsal")
    samples = build_text(req, recipe)[0]
    cpu = measure(Checkpoint(tiny), Checkpoint(tmp_path / "nvfp4"), samples)
    cuda = measure(Checkpoint(tiny), Checkpoint(tmp_path / "nvfp4"), samples, device="cuda")
    # BF16 GEMMs differ between devices: the same figures, not the same bits.
    assert cuda.kl.mean().item() == pytest.approx(cpu.kl.mean().item(), rel=0.1)
    assert (cuda.agree == cpu.agree).double().mean() > 0.95
    assert cuda.expert_errors == cpu.expert_errors  # from the tensors alone: exact
    assert torch.isfinite(cuda.kl).all()
