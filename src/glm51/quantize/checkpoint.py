"""Read a BF16 checkpoint a few tensors at a time, and build one decoder layer from it.

The bounded-memory mode never holds the whole model: the model is a skeleton on the meta
device and each decoder layer is materialized from the safetensors shards when its turn
comes. Expert weights are stored per expert (as upstream) and fused here into the 3-D
parameters transformers' `glm_moe_dsa` uses (gate and up concatenated along the output).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from glm51.errors import InputError

_EXPERT = re.compile(r"^(?P<pre>.*\.mlp\.experts)\.(?P<e>\d+)\.(?P<proj>\w+)\.weight$")


class Checkpoint:
    """The tensor names of a safetensors checkpoint folder and the shard holding each."""

    def __init__(self, model_dir: Path | str) -> None:
        self.dir = Path(model_dir)
        index = self.dir / "model.safetensors.index.json"
        if index.is_file():
            weight_map = json.loads(index.read_text())["weight_map"]
        elif (self.dir / "model.safetensors").is_file():
            from safetensors import safe_open

            with safe_open(str(self.dir / "model.safetensors"), "pt") as f:
                weight_map = dict.fromkeys(f.keys(), "model.safetensors")
        else:
            raise InputError(f"{self.dir}: no model.safetensors or model.safetensors.index.json")
        self.weight_map: dict[str, str] = dict(sorted(weight_map.items()))
        try:
            self.config: dict[str, Any] = json.loads((self.dir / "config.json").read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{self.dir / 'config.json'}: cannot read ({exc})") from exc

    def fingerprint(self) -> str:
        """Cheap identity of the checkpoint: config, tensor names and shard sizes."""
        import hashlib

        h = hashlib.sha256((self.dir / "config.json").read_bytes())
        for name, shard in self.weight_map.items():
            h.update(f"{name}\0{shard}\0".encode())
        for shard in sorted(set(self.weight_map.values())):
            h.update(f"{shard}:{(self.dir / shard).stat().st_size}".encode())
        return h.hexdigest()

    def keys(self, prefix: str = "") -> list[str]:
        return [k for k in self.weight_map if k.startswith(prefix)]

    def read(self, names: Iterable[str]) -> dict:
        """Read the named tensors (each shard opened once, closed before returning)."""
        from safetensors import safe_open

        by_shard: dict[str, list[str]] = {}
        for name in names:
            if name not in self.weight_map:
                raise InputError(f"{self.dir}: tensor {name} is not in the checkpoint")
            by_shard.setdefault(self.weight_map[name], []).append(name)
        out = {}
        for shard, shard_names in by_shard.items():
            with safe_open(str(self.dir / shard), "pt") as f:
                for name in shard_names:
                    out[name] = f.get_tensor(name)
        return out


def fuse_experts(tensors: dict) -> dict:
    """Per-expert `experts.{e}.{gate,up,down}_proj.weight` -> `experts.gate_up_proj` [E,2I,H]
    and `experts.down_proj` [E,H,I], the in-memory layout of transformers 5.x."""
    import torch

    out, groups = {}, {}
    for name, value in tensors.items():
        m = _EXPERT.match(name)
        if not m:
            out[name] = value
            continue
        groups.setdefault(m["pre"], {}).setdefault(int(m["e"]), {})[m["proj"]] = value
    for pre, experts in groups.items():
        ids = sorted(experts)
        if ids != list(range(len(ids))):
            raise InputError(f"{pre}: expert ids are not 0..{len(ids) - 1}")
        try:
            out[f"{pre}.gate_up_proj"] = torch.stack(
                [torch.cat([experts[e]["gate_proj"], experts[e]["up_proj"]]) for e in ids]
            )
            out[f"{pre}.down_proj"] = torch.stack([experts[e]["down_proj"] for e in ids])
        except KeyError as exc:
            raise InputError(f"{pre}: an expert lacks {exc.args[0]}.weight") from None
    return out


def load_into(module, ckpt: Checkpoint, prefix: str, device: str) -> None:
    """Materialize a meta-device `module` from the checkpoint tensors under `prefix`."""
    tensors = fuse_experts(ckpt.read(ckpt.keys(prefix)))
    state = {k.removeprefix(prefix): v for k, v in tensors.items()}
    module.to_empty(device=device)
    # Non-persistent buffers (none in a decoder layer) would stay uninitialized: refuse them.
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise InputError(
            f"{ckpt.dir}: {prefix}* does not fit the model class "
            f"(missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})"
        )


def release() -> None:
    """Give a dropped layer's memory back: collect module reference cycles (ModelOpt's
    wrappers hold some), then return freed heap pages to the OS (glibc keeps them)."""
    import contextlib
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)
