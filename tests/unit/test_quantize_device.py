"""`--device`: checked before anything is loaded; a device this machine lacks is exit 3."""

from __future__ import annotations

import subprocess
import sys

import pytest

from glm51.errors import InputError
from glm51.quantize.device import check_device


def _cuda_available() -> bool:
    torch = pytest.importorskip("torch")
    return torch.cuda.is_available()


@pytest.mark.parametrize("bad", ["banana", "gpu", "cuda:", "cuda:x", "CPU", "mps", "cuda:0:1"])
def test_a_device_of_another_kind_is_refused_with_the_allowed_ones(bad):
    with pytest.raises(InputError, match=r"cpu, cuda, cuda:N") as exc:
        check_device(bad)
    assert exc.value.exit_code == 3 and repr(bad) in str(exc.value)


def test_cpu_is_always_allowed():
    assert check_device("cpu") == "cpu"


def test_cuda_without_cuda_is_refused():
    if _cuda_available():
        pytest.skip("this machine has CUDA")
    for device in ("cuda", "cuda:0"):
        with pytest.raises(InputError, match=r"no CUDA device is available .*--device cpu"):
            check_device(device)


def test_a_cuda_index_past_the_last_gpu_is_refused():
    with pytest.raises(InputError, match="cuda:4096"):
        check_device("cuda:4096")


def _quantize(tmp_path, device: str):
    code = "from glm51.cli import main; main()"
    argv = [
        "quantize",
        "--model",
        str(tmp_path / "no-such-model"),
        "--output",
        str(tmp_path / "out"),
        "--device",
        device,
    ]
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)


@pytest.mark.parametrize("device", ["cuda", "banana"])
def test_cli_refuses_the_device_before_loading_anything(tmp_path, device):
    """The model folder does not even exist: the device is what the command reports, before
    the recipe, tokenizer, data or model are touched. Nothing is written."""
    if device == "cuda" and _cuda_available():
        device = "cuda:4096"  # on a GPU machine: a device it lacks all the same
    done = _quantize(tmp_path, device)
    assert done.returncode == 3, done.stderr
    err = " ".join(done.stderr.split())
    assert (f"--device {device}" in err or f"--device '{device}'" in err) and "bad input" in err
    assert "cpu, cuda, cuda:N" in err if device == "banana" else "CUDA" in err
    assert "tokenizer" not in err and "parameters" not in err  # no load, no estimate
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_provenance_lists_each_calibration_device_once_and_the_tools():
    from glm51.quantize.device import provenance

    units = [
        {"device": "cuda:0", "device_name": "NVIDIA H200"},
        {"device": "cpu", "device_name": None},
        {"device": "cuda:0", "device_name": "NVIDIA H200"},
    ]
    got = provenance("cpu", units)
    assert got["calibration"] == units[:2]
    assert got["export"] == {"device": "cpu", "device_name": None}
    assert set(got["tools"]) == {"python", "torch", "cuda", "modelopt", "transformers"}
    assert "created" not in str(got) and "time" not in str(got)  # no time stamps
