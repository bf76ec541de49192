"""Recorded outputs and doubles for the preflight and serve tests."""

from __future__ import annotations

import os
from pathlib import Path

from glm51.preflight import gpus

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
DOUBLES = REPO / "tests" / "doubles"


def smi_output(name: str) -> Path:
    return DATA / "nvidia-smi" / f"{name}.txt"


def gpu_probe(name: str) -> gpus.GpuProbe:
    """A probe feeding a recorded nvidia-smi output through the real parser."""
    text = smi_output(name).read_text()
    return lambda: gpus.parse(text)


def sglang_help(name: str) -> str:
    return (DATA / "sglang-help" / f"{name}.txt").read_text()


def fake_env(
    *,
    nvidia_smi: str = "rtx-pro-6000-x8-595",
    smi_rc: int = 0,
    help_name: str = "blackwell-fork",
    marker: Path | None = None,
) -> dict[str, str]:
    """Variables that put the nvidia-smi and sglang doubles in front of the real ones."""
    env = {
        "PATH": f"{DOUBLES / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(DOUBLES), str(REPO / "src"), os.environ.get("PYTHONPATH")) if p
        ),
        "FAKE_NVIDIA_SMI_OUTPUT": str(smi_output(nvidia_smi)),
        "FAKE_NVIDIA_SMI_RC": str(smi_rc),
        "FAKE_SGLANG_HELP": str(DATA / "sglang-help" / f"{help_name}.txt"),
        "COLUMNS": "200",
    }
    if marker is not None:
        env["FAKE_SGLANG_MARKER"] = str(marker)
    return env
