"""A checkpoint folder: config.json, the safetensors index and the shards it names.

Reading only (no torch): the tensors themselves are read with safetensors by the stages that
need them. Every error names the file and what was expected.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from glm51.checkpoint.safetensors import ShardError, read_header
from glm51.errors import InputError

CONFIG = "config.json"
INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
HF_QUANT = "hf_quant_config.json"


def read_json(path: Path) -> Any:
    """A JSON file, or InputError naming it and why it cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read it as JSON ({exc})") from None


def read_config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / CONFIG
    if not model_dir.is_dir():
        raise InputError(f"{model_dir}: not a checkpoint folder (no such directory)")
    if not path.is_file():
        raise InputError(f"{model_dir}: not a checkpoint folder (no {CONFIG})")
    config = read_json(path)
    if not isinstance(config, dict):
        raise InputError(f"{path}: expected a JSON object")
    return config


def load_model_config(model_dir: Path | str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """config.json and, when present, model.safetensors.index.json of a checkpoint folder."""
    model_dir = Path(model_dir)
    config = read_config(model_dir)
    index = model_dir / INDEX
    return config, (read_json(index) if index.is_file() else None)


def read_weight_map(model_dir: Path) -> dict[str, str]:
    """tensor name -> shard file, from the index (or the single `model.safetensors`)."""
    index = model_dir / INDEX
    if index.is_file():
        data = read_json(index)
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(weight_map, dict):
            raise InputError(f"{index}: expected a 'weight_map' object")
        return dict(sorted(weight_map.items()))
    single = model_dir / SINGLE
    if single.is_file():
        try:
            header = read_header(single)
        except ShardError as exc:
            raise InputError(f"{single}: {exc}") from None
        return dict.fromkeys(sorted(header.tensors), SINGLE)
    raise InputError(f"{model_dir}: no {SINGLE} or {INDEX}")


class Checkpoint:
    """The tensor names of a safetensors checkpoint folder and the shard holding each."""

    def __init__(self, model_dir: Path | str) -> None:
        self.dir = Path(model_dir)
        self.config: dict[str, Any] = read_config(self.dir)
        self.weight_map: dict[str, str] = read_weight_map(self.dir)

    @property
    def shards(self) -> list[str]:
        return sorted(set(self.weight_map.values()))

    def fingerprint(self) -> str:
        """Cheap identity of the checkpoint: config, tensor names and shard sizes."""
        h = hashlib.sha256((self.dir / CONFIG).read_bytes())
        for name, shard in self.weight_map.items():
            h.update(f"{name}\0{shard}\0".encode())
        for shard in self.shards:
            path = self.dir / shard
            if not path.is_file():
                raise InputError(f"{path}: missing (named in {INDEX})")
            h.update(f"{shard}:{path.stat().st_size}".encode())
        return h.hexdigest()

    def keys(self, prefix: str = "") -> list[str]:
        return [k for k in self.weight_map if k.startswith(prefix)]

    def read(self, names: Iterable[str]) -> dict:
        """Read the named tensors (each shard opened once, closed before returning)."""
        from safetensors import safe_open  # torch-backed: only the stages that read tensors

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
