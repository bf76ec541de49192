"""An independent NVFP4 reference (not ModelOpt's code), written from the format's definition:

x ~= e2m1 * fp8_block_scale * global_scale
global_scale      = amax(W) / (6 * 448)             (FP32; 6 = E2M1 max, 448 = E4M3 max)
fp8_block_scale   = E4M3(amax(block of 16) / (6 * global_scale))  (6 * global_scale rounded
                    to FP32 first: the order matters where the quotient is an exact E4M3 tie,
                    which BF16 weights hit often, e.g. amax 2.1875, block max 0.030517578125:
                    fl(6 * g) gives 6.25, a tie, so 6.0; dividing by 6, then g, gives 6.5)
e2m1              = nearest of {0, .5, 1, 1.5, 2, 3, 4, 6} (ties to the even code); the sign
                    bit is the sign of x, so small negatives become -0
two 4-bit codes per byte, the first element in the low nibble.
"""

from __future__ import annotations

import re

import torch

GRID = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])


def global_scale(amax: torch.Tensor) -> torch.Tensor:
    return amax.float() / (6.0 * 448.0)


def block_scales(w: torch.Tensor, gscale: torch.Tensor, block: int = 16) -> torch.Tensor:
    blocks = w.float().reshape(w.shape[0], -1, block)
    return (blocks.abs().amax(-1) / (6.0 * gscale)).to(torch.float8_e4m3fn)


def e2m1_codes(x: torch.Tensor) -> torch.Tensor:
    """4-bit codes (sign << 3 | grid index) of the nearest grid value; ties to even index."""
    mag = x.abs().clamp(max=6.0)
    dist = (mag.unsqueeze(-1) - GRID).abs()
    best = dist.min(-1, keepdim=True).values
    ties = dist == best
    # Two nearest values are neighbours, one even and one odd index: take the even one.
    key = torch.where(ties, (torch.arange(8) % 2).float(), torch.tensor(9.0))
    idx = key.argmin(-1).to(torch.uint8)
    sign = (x < 0).to(torch.uint8)  # as IEEE rounding does: a negative rounds to -0
    return sign << 3 | idx


def quantize(w: torch.Tensor, amax: torch.Tensor, block: int = 16):
    """(packed uint8 [out, in/2], fp8 block scales [out, in/block], fp32 global scale)."""
    g = global_scale(amax)
    s = block_scales(w, g, block)
    scaled = w.float().reshape(w.shape[0], -1, block) / (s.float().unsqueeze(-1) * g)
    codes = e2m1_codes(scaled).reshape(w.shape[0], -1)
    packed = codes[:, 0::2] | (codes[:, 1::2] << 4)
    return packed, s, g


EXPERT_WEIGHT = re.compile(
    r"^(model\.layers\.(\d+)\.mlp\.experts\.(\d+))\.(gate|up|down)_proj\.weight$"
)


def check_export(source: dict, exported: dict, num_layers: int) -> tuple[int, list[str]]:
    """Re-quantize every routed expert projection of the decoder layers from the BF16 source
    (gate and up sharing the max of both as their amax) and compare with the export:
    (projections checked, names of the tensors that differ)."""
    checked, differ = 0, []
    for k in sorted(exported):
        m = EXPERT_WEIGHT.match(k)
        if not m or int(m[2]) >= num_layers:
            continue
        expert, proj = m[1], m[4]
        w = source[k]
        if proj == "down":
            amax = w.abs().max()
        else:
            amax = torch.maximum(
                source[f"{expert}.gate_proj.weight"].abs().max(),
                source[f"{expert}.up_proj.weight"].abs().max(),
            )
        packed, scales, g = quantize(w, amax)
        if not torch.equal(packed, exported[k]):
            differ.append(k)
        if not torch.equal(scales.view(torch.uint8), exported[f"{k}_scale"].view(torch.uint8)):
            differ.append(f"{k}_scale")
        if not torch.equal(g, exported[f"{k}_scale_2"]):
            differ.append(f"{k}_scale_2")
        checked += 1
    return checked, differ
