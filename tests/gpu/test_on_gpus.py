"""GPU-only tests: `nox -s tests -- -m gpu -rs` on a machine with an NVIDIA GPU.

They run on any CUDA GPU; only `test_this_runner_meets_the_default_profiles_hardware` is
tied to the serving profile's GPU (it skips elsewhere). Deselected by default (pytest
addopts `-m 'not gpu'`); on a machine without the hardware they skip with the reason,
they never pass vacuously.
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


def _bits(t):
    import torch

    return t.view(torch.uint8) if t.dtype == torch.float8_e4m3fn else t


@pytest.fixture(scope="module")
def cpu_and_cuda(tmp_path_factory, recipe):
    """The tiny model quantized on the CPU (resident), on CUDA (resident) and on CUDA
    (bounded memory), from the same 32 synthetic conversations."""
    _cuda()
    from transformers import AutoTokenizer

    from glm51.calib.data import from_jsonl
    from glm51.calib.rehearsal_data import write_jsonl
    from glm51.quantize.pipeline import quantize
    from glm51.quantize.tiny import build_tiny_model

    tmp = tmp_path_factory.mktemp("cpu-cuda")
    model = build_tiny_model(tmp / "tiny")
    tokenizer = AutoTokenizer.from_pretrained(str(model))
    calib = from_jsonl(
        write_jsonl(tmp / "calib.jsonl", 32, 3), tokenizer, max_length=512, name="local"
    )
    runs = {}
    for name, device, bounded in (
        ("cpu", "cpu", False),
        ("cuda", "cuda", False),
        ("cuda-bounded", "cuda", True),
    ):
        runs[name] = quantize(
            model,
            tmp / name,
            {"local": [calib]},
            recipe.quantize,
            work_dir=tmp / f"work-{name}",
            device=device,
            bounded=bounded,
        )
    return model, runs


def test_quantize_on_cuda_has_the_cpus_weight_bytes(cpu_and_cuda):
    """Weights and their scales depend only on the BF16 weights: bit-identical on CUDA, in
    both modes, as on the CPU."""
    _, runs = cpu_and_cuda
    cpu = _tensors(runs["cpu"].output)
    for name in ("cuda", "cuda-bounded"):
        other = _tensors(runs[name].output)
        assert cpu.keys() == other.keys(), name
        differ = [
            k
            for k, t in cpu.items()
            if not k.endswith("input_scale")
            and not (
                t.dtype == other[k].dtype
                and t.shape == other[k].shape
                and bool((_bits(t) == _bits(other[k])).all())
            )
        ]
        assert differ == [], f"{name}: {len(differ)} tensors differ from the CPU's: {differ[:10]}"


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda-bounded"])
def test_the_independent_reference_matches_the_export_of_each_device(cpu_and_cuda, device):
    import json

    from tests.support.nvfp4_reference import check_export

    model, runs = cpu_and_cuda
    n = json.loads((model / "config.json").read_text())["num_hidden_layers"]
    checked, differ = check_export(_tensors(model), _tensors(runs[device].output), n)
    assert checked > 0 and differ == [], f"{len(differ)} of {checked}: {differ[:10]}"


def test_input_scales_agree_where_calibration_covered_the_experts(cpu_and_cuda, recipe):
    from glm51.quantize.agreement import compare_input_scales

    _, runs = cpu_and_cuda
    cpu = _tensors(runs["cpu"].output)
    for name in ("cuda", "cuda-bounded"):
        agreement = compare_input_scales(
            cpu,
            _tensors(runs[name].output),
            runs["cpu"].merged.counts,
            runs[name].merged.counts,
            warn_below=recipe.quantize.coverage.warn_below,
        )
        print(f"cpu vs {name}: {agreement.render()}")  # the measured figures, with -s or -rA
        assert agreement.ok, agreement.render()


def test_the_cuda_run_records_its_device_and_gpu(cpu_and_cuda):
    import json

    torch = _cuda()
    _, runs = cpu_and_cuda
    for name in ("cuda", "cuda-bounded"):
        record = runs[name].record
        assert record.device == "cuda" and record.device_name == torch.cuda.get_device_name(0)
        assert record.tools.cuda == torch.version.cuda and record.tools.modelopt
        assert all(u.device == "cuda" and u.device_name for u in record.calibration)
        meta = json.loads((runs[name].output / "hf_quant_config.json").read_text())["glm51"]
        assert meta["calibration"] == [{"device": "cuda", "device_name": record.device_name}]
        assert meta["export"]["device"] == "cuda"
