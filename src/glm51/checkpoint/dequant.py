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
from glm51.outputs import copy_file, os_errors, save_tensors, write_text

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

    grid = torch.tensor(E2M1, dtype=torch.float32, device=packed.device)  # on its device
    lo, hi = packed & 0x0F, packed >> 4
    codes = torch.stack((lo, hi), dim=-1).reshape(packed.shape[0], -1).long()
    values = grid[codes & 7] * torch.where(codes >= 8, -1.0, 1.0)
    scales = block_scale.float().repeat_interleave(group, dim=1)
    return values * scales * global_scale.float().reshape(()).to(packed.device)


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


# What the BF16 copy does not carry over: the quantization's own files, and the index that
# one shard replaces.
_NOT_COPIED = ("model.safetensors.index.json", "hf_quant_config.json", "glm51-manifest.json")
_SCALES = (".weight_scale", ".weight_scale_2", ".input_scale")


def to_bf16(folder: Path, out: Path) -> Path:
    """The NVFP4 checkpoint with every quantized projection dequantized to BF16 and its scales
    dropped, in one shard: what a server without NVFP4 kernels (transformers on the CPU) can
    load. ``out`` must not exist yet."""
    import torch

    shards = weight_map(folder)
    quantized = {n.removesuffix(".weight_scale") for n in shards if n.endswith(".weight_scale")}
    tensors = {}
    for name, shard in sorted(shards.items()):
        if name.endswith(_SCALES):
            continue
        module = name.removesuffix(".weight")
        if name.endswith(".weight") and module in quantized:
            parts = {s: _load(folder / shards[module + s], module + s) for s in _SCALES[:2]}
            packed = _load(folder / shard, name)
            group = packed.shape[1] * 2 // parts[".weight_scale"].shape[1]
            value = dequantize(packed, parts[".weight_scale"], parts[".weight_scale_2"], group)
            tensors[name] = value.to(torch.bfloat16)
        else:
            tensors[name] = _load(folder / shard, name)
    with os_errors(out):
        out.mkdir(parents=True)
    save_tensors(tensors, out / "model.safetensors", {"format": "pt"})
    config = json.loads((folder / "config.json").read_text())
    config.pop("quantization_config", None)
    write_text(out / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")
    skipped = (*_NOT_COPIED, "config.json")
    for path in sorted(folder.iterdir()):
        plain = path.is_file() and not path.name.startswith(".")
        if plain and not path.name.endswith(".safetensors") and path.name not in skipped:
            copy_file(path, out / path.name)
    return out
