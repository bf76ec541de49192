"""b12x's kernels are SM120/SM121 only."""

from __future__ import annotations

import torch


def require_sm12x(what: str) -> None:
    if not torch.cuda.is_available():
        raise RuntimeError(f"{what} needs an SM120/SM121 GPU; CUDA is not available")
    major, minor = torch.cuda.get_device_capability()
    if major != 12:
        raise RuntimeError(f"{what} needs an SM120/SM121 GPU, this one is sm{major}{minor}")
