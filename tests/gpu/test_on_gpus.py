"""GPU-only tests: the Blackwell runner runs them with `nox -s tests -- -m gpu`.

Deselected by default (pytest addopts `-m 'not gpu'`); on a machine without the hardware
they skip with the reason, they never pass vacuously.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu


def _cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip(f"no CUDA device (torch {torch.__version__})")
    return torch


def _real_gpus():
    from glm51.preflight import gpus

    if shutil.which("nvidia-smi") is None:
        pytest.skip("nvidia-smi is not on PATH")
    return gpus.nvidia_smi()


def test_nvidia_smi_adapter_agrees_with_cuda():
    torch = _cuda()
    found = _real_gpus()
    if not os.environ.get("CUDA_VISIBLE_DEVICES"):
        assert len(found) == torch.cuda.device_count()
    for gpu in found:
        assert re.fullmatch(r"\d+\.\d+", gpu.compute_cap) and gpu.memory_mib > 0
        assert re.fullmatch(r"\d+(\.\d+)+", gpu.driver)
    by_cc = {tuple(map(int, g.compute_cap.split("."))) for g in found}
    assert torch.cuda.get_device_capability(0) in by_cc


def test_this_runner_meets_the_default_profiles_hardware(recipe):
    from glm51.preflight import gpus

    _, profile = recipe.profile()
    found = _real_gpus()
    if not any(profile.hardware.gpu_name in g.name for g in found):
        pytest.skip(f"not a {profile.hardware.gpu_name} runner: {found[0].name}")
    assert gpus.check(profile, found) == []


def _tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    out = {}
    for shard in sorted(folder.glob("*.safetensors")):
        out.update(load_file(shard))
    return out


def test_quantize_on_cuda_matches_the_cpu_export(tmp_path, recipe):
    """Weights and their scales depend only on the BF16 weights: bit-identical on CUDA.
    Input scales come from activations (other kernels): equal within rounding."""
    torch = _cuda()
    from transformers import AutoTokenizer

    from glm51.calib.data import from_jsonl
    from glm51.calib.rehearsal_data import write_jsonl
    from glm51.quantize.pipeline import quantize
    from glm51.quantize.tiny import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    tokenizer = AutoTokenizer.from_pretrained(str(model))
    data = write_jsonl(tmp_path / "calib.jsonl", 8, 3)
    calib = from_jsonl(data, tokenizer, max_length=512, name="local")
    runs = {
        device: quantize(
            model, tmp_path / device, {"local": [calib]}, recipe.quantize,
            work_dir=tmp_path / f"work-{device}", device=device,
        ).output
        for device in ("cpu", "cuda")
    }  # fmt: skip
    cpu, cuda = _tensors(runs["cpu"]), _tensors(runs["cuda"])
    assert cpu.keys() == cuda.keys()
    input_scales = [k for k in cpu if k.endswith("input_scale")]
    assert input_scales
    for name, tensor in cpu.items():
        if name.endswith("input_scale"):
            torch.testing.assert_close(cuda[name], tensor, rtol=2e-2, atol=0)
        else:
            assert torch.equal(cuda[name], tensor), name
