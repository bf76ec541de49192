"""The pure arithmetic of `glm51 fidelity` (torch, imported lazily): NVFP4 activation
quantization as a W4A4 kernel does it, the KL and top-1 per position, hidden-state errors.

NVFP4 of an activation x with the checkpoint's FP32 ``input_scale`` g, per 16-element block
along the last dimension (the same order of operations as the weight side, quantize/nvfp4.py):

    s  = E4M3(min(fl(block_amax / fl(6 * g)), 448))     the block scale, an E4M3 value
    q  = E2M1(|x| / fl(s * g)) * sign(x)                nearest of {0,.5,1,1.5,2,3,4,6}, ties
                                                        to the even code (ModelOpt's bounds)
    x^ = (q * s) * g

``q * s`` is exact in FP32 (and in BF16: 2 + 4 significant bits), so a kernel multiplies the
global scales in afterwards: ``x^ @ w^T = (q*s)_x @ (q*s)_w^T * (g_x * g_w)``. That is how
`unit_fake_quantize` and the candidate experts compute. A block whose scale rounds to 0 is 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

E2M1_MAX = 6.0
E4M3_MAX = 448.0
BLOCK = 16
E2M1_GRID = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
# Midpoints of the grid: a value exactly on one rounds to the even code (index).
_BOUNDS = (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0)


def e2m1_round(magnitude):
    """|x| (already divided by its scale) to the nearest E2M1 magnitude, ties to even."""
    import torch

    bounds = torch.tensor(_BOUNDS, dtype=magnitude.dtype, device=magnitude.device)
    grid = torch.tensor(E2M1_GRID, dtype=magnitude.dtype, device=magnitude.device)
    low = torch.bucketize(magnitude, bounds, right=False)  # a tie goes down
    high = torch.bucketize(magnitude, bounds, right=True)  # a tie goes up
    return grid[torch.where(low % 2 == 0, low, high)]


def unit_fake_quantize(x, input_scale, block: int = BLOCK):
    """NVFP4 of ``x`` without its global scale: FP32 ``q * s`` (x^ = result * input_scale)."""
    import torch

    shape = x.shape
    if shape[-1] % block:
        raise ValueError(f"last dimension {shape[-1]} is not a multiple of the block {block}")
    g = input_scale.float().reshape(()).to(x.device)
    xf = x.float().reshape(*shape[:-1], shape[-1] // block, block)
    six = torch.tensor(E2M1_MAX, dtype=torch.float32, device=x.device)
    amax = xf.abs().amax(-1, keepdim=True)
    scale = (amax / (six * g)).clamp(max=E4M3_MAX).to(torch.float8_e4m3fn).float()
    zero = scale == 0
    step = torch.where(zero, torch.ones_like(scale), scale * g)
    q = e2m1_round(xf.abs() / step).clamp(max=E2M1_MAX)
    unit = torch.where(zero, torch.zeros_like(q), torch.copysign(q, xf) * scale)
    return unit.reshape(shape)


def fake_quantize(x, input_scale, block: int = BLOCK):
    """x^ in FP32: the activation a W4A4 kernel multiplies."""
    return unit_fake_quantize(x, input_scale, block) * input_scale.float().reshape(()).to(x.device)


def position_kl(ref_logits, cand_logits, chunk: int = 256):
    """Per position: KL(ref || cand) of the softmax over the last dimension, in float64, and
    whether the two argmaxes agree. Returns (kl [positions] float64, agree [positions] bool);
    identical logits give exactly 0."""
    import torch

    ref = ref_logits.reshape(-1, ref_logits.shape[-1])
    cand = cand_logits.reshape(-1, cand_logits.shape[-1])
    kls, agree = [], []
    for start in range(0, ref.shape[0], chunk):  # bounded: positions x vocabulary in float64
        lr = torch.log_softmax(ref[start : start + chunk].double(), -1)
        lc = torch.log_softmax(cand[start : start + chunk].double(), -1)
        kls.append((lr.exp() * (lr - lc)).sum(-1).clamp(min=0.0))
        agree.append(
            ref[start : start + chunk].argmax(-1) == cand[start : start + chunk].argmax(-1)
        )
    return torch.cat(kls).cpu(), torch.cat(agree).cpu()


@dataclass(frozen=True)
class Distribution:
    mean: float
    median: float
    p95: float
    p99: float
    max: float


def distribution(values: Any) -> Distribution:
    """Mean, median, P95, P99 and max (linear interpolation between order statistics)."""
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    if not v.size:
        raise ValueError("no values")
    p50, p95, p99 = np.percentile(v, [50, 95, 99])
    return Distribution(float(v.mean()), float(p50), float(p95), float(p99), float(v.max()))


class ErrorSum:
    """Running ||cand - ref||^2, ||ref||^2 and <cand, ref> over many tensors (float64): the
    relative error and cosine of everything added, as if concatenated."""

    def __init__(self) -> None:
        self.diff = self.ref = self.cand = self.dot = 0.0

    def add(self, ref, cand) -> None:
        r, c = ref.double(), cand.double()
        self.diff += float(((c - r) ** 2).sum())
        self.ref += float((r * r).sum())
        self.cand += float((c * c).sum())
        self.dot += float((r * c).sum())

    @property
    def relative(self) -> float:
        if self.ref == 0:
            return 0.0 if self.diff == 0 else float("inf")
        return (self.diff / self.ref) ** 0.5

    @property
    def cosine(self) -> float:
        norm = (self.ref * self.cand) ** 0.5
        if norm == 0:
            return 1.0 if self.ref == self.cand else 0.0
        return self.dot / norm
