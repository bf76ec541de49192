"""NVFP4 dequantization for `glm51 verify --source` (torch and safetensors, imported lazily).

x = e2m1 * E4M3 block scale (one per 16 inputs) * FP32 global scale (``weight_scale_2``);
two 4-bit codes per byte, the first element in the low nibble; code = sign << 3 | index into
{0, .5, 1, 1.5, 2, 3, 4, 6}.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from glm51.checkpoint.safetensors import read_header

E2M1 = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def weight_map(folder: Path) -> dict[str, str]:
    """tensor -> shard of a safetensors checkpoint folder (its index, or its one file)."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return dict(json.loads(index.read_text())["weight_map"])
    out: dict[str, str] = {}
    for shard in sorted(folder.glob("*.safetensors")):
        out.update(dict.fromkeys(read_header(shard).tensors, shard.name))
    return out


def _load(path: Path, name: str):
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        return fh.get_tensor(name)


def dequantize(packed, block_scale, global_scale, group: int = 16):
    """[out, in/2] uint8 + [out, in/group] E4M3 + scalar -> [out, in] float32."""
    import torch

    grid = torch.tensor(E2M1, dtype=torch.float32)
    lo, hi = packed & 0x0F, packed >> 4
    codes = torch.stack((lo, hi), dim=-1).reshape(packed.shape[0], -1).long()
    values = grid[codes & 7] * torch.where(codes >= 8, -1.0, 1.0)
    scales = block_scale.float().repeat_interleave(group, dim=1)
    return values * scales * global_scale.float().reshape(())


def compare(
    folder: Path, parts: dict[str, tuple[str, Any]], source: Path, source_shard: str, module: str
) -> tuple[float, float]:
    """(relative L2 error, max abs error) of ``module``'s dequantized weight vs the source."""
    w = _load(folder / parts["weight"][0], f"{module}.weight")
    s = _load(folder / parts["weight_scale"][0], f"{module}.weight_scale")
    g = _load(folder / parts["weight_scale_2"][0], f"{module}.weight_scale_2")
    ref = _load(source / source_shard, f"{module}.weight").float()
    deq = dequantize(w, s, g, group=w.shape[1] * 2 // s.shape[1])
    if deq.shape != ref.shape:
        return float("inf"), float("inf")
    diff = deq - ref
    norm = ref.norm().item()
    rel = diff.norm().item() / norm if norm else (0.0 if diff.abs().max() == 0 else float("inf"))
    return rel, diff.abs().max().item()
