"""The device a quantization runs on: checked before anything is loaded, and described for
the record and the checkpoint (the activation side of NVFP4 depends on it)."""

from __future__ import annotations

import re
from importlib import metadata

from glm51.errors import InputError

ALLOWED = "cpu, cuda, cuda:N"
_FORM = re.compile(r"cpu|cuda(:\d+)?")


def check_device(device: str) -> str:
    """`device` if this machine has it; else InputError (exit 3) saying what is allowed or
    what is missing. Imports torch, loads nothing."""
    if not _FORM.fullmatch(device):
        raise InputError(f"--device {device!r}: not a device this command runs on ({ALLOWED})")
    if device == "cpu":
        return device
    import torch

    if not torch.cuda.is_available():
        built = torch.version.cuda or "none: a CPU-only build"
        raise InputError(
            f"--device {device}: no CUDA device is available to torch {torch.__version__} "
            f"(its CUDA: {built}). Run on a machine with an NVIDIA GPU and a CUDA build of "
            "torch, or use --device cpu"
        )
    index = int(device.split(":")[1]) if ":" in device else 0
    count = torch.cuda.device_count()
    if index >= count:
        raise InputError(
            f"--device {device}: torch sees {count} CUDA device(s) (cuda:0..cuda:{count - 1})"
        )
    return device


def device_name(device: str) -> str | None:
    """The GPU's name (torch's view) for a CUDA device; None for the CPU."""
    if not device.startswith("cuda"):
        return None
    import torch

    return torch.cuda.get_device_name(torch.device(device))


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def tool_versions() -> dict[str, str | None]:
    """What the scales depend on besides the data: torch (and its CUDA), ModelOpt,
    transformers (5.24 writes the router in F32 where 5.19 writes BF16)."""
    import platform

    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "modelopt": _version("nvidia-modelopt"),
        "transformers": _version("transformers"),
    }


def provenance(device: str, calibration_devices: list[dict[str, str | None]]) -> dict:
    """What goes into the checkpoint (`hf_quant_config.json`, key "glm51"): where the input
    scales were measured (one entry per distinct device of the calibration units), where the
    export ran, and the tool versions. No time stamps: two runs on one machine stay
    byte-identical."""
    keys = dict.fromkeys(tuple(sorted(d.items())) for d in calibration_devices)
    distinct = [dict(t) for t in keys]
    return {
        "calibration": distinct,
        "export": {"device": device, "device_name": device_name(device)},
        "tools": tool_versions(),
    }
