"""Calibration artifacts: what one calibration unit (a pass, or a chunk of one) measured.

An artifact holds the amax of every enabled quantizer, the tokens routed to every expert
and the digest of the data it saw. Artifacts merge by element-wise max, which is what max
calibration over the concatenated data computes, so a merged export equals a joint one.
One safetensors file each, written atomically: a crashed run leaves whole files or none.
Its metadata is one key holding sorted JSON: safetensors writes several keys in a random
order, which would make two runs' artifacts differ in bytes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from glm51.calib.coverage import ExpertCounts
from glm51.calib.coverage import merge as merge_counts
from glm51.errors import InputError
from glm51.outputs import os_errors, save_tensors

FORMAT = "glm51-calib-artifact/1"
META = "glm51-calib-artifact"  # the one metadata key
_COUNTS = ("__layers__", "__counts__", "__first_seen__")


@dataclass(frozen=True, eq=False)
class Artifact:
    unit: str  # "coding", "coding.2of4", or "merged"
    digests: tuple[str, ...]  # sha256 of the token ids of every unit it covers
    amax: dict  # quantizer name -> torch.Tensor
    counts: ExpertCounts
    device: str | None = None  # where it was calibrated ("cpu", "cuda:0"); None: unknown
    device_name: str | None = None  # the GPU's name, for a CUDA device

    def save(self, path: Path | str) -> Path:
        import numpy as np
        import torch

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in sorted(self.amax.items())}
        c = self.counts
        for key, arr in zip(_COUNTS, (np.array(c.layers), c.counts, c.first_seen), strict=True):
            tensors[key] = torch.from_numpy(np.array(arr, dtype=np.int64))
        meta = {
            "format": FORMAT,
            "unit": self.unit,
            "digests": json.dumps(self.digests),
            "tokens": str(c.tokens),
        }
        meta.update(
            {k: v for k, v in (("device", self.device), ("device_name", self.device_name)) if v}
        )
        tmp = path.with_name(f".{path.name}.tmp")
        save_tensors(tensors, tmp, {META: json.dumps(meta, sort_keys=True)})
        with os_errors(path):
            os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: Path | str) -> Artifact:
        from safetensors import safe_open

        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
            if META in meta:  # else: written by a glm51 that spread it over several keys
                meta = json.loads(meta[META])
        except Exception as exc:
            raise InputError(f"{path}: not a calibration artifact ({exc})") from exc
        if meta.get("format") != FORMAT:
            raise InputError(f"{path}: not a calibration artifact (format {meta.get('format')})")
        layers, counts, first = (tensors.pop(k).numpy() for k in _COUNTS)
        return cls(
            unit=meta["unit"],
            digests=tuple(json.loads(meta["digests"])),
            amax=tensors,
            counts=ExpertCounts(tuple(layers.tolist()), counts, first, int(meta["tokens"])),
            device=meta.get("device"),
            device_name=meta.get("device_name"),
        )


def merge(parts: Sequence[Artifact], unit: str = "merged") -> Artifact:
    """Element-wise max of the amaxes (a quantizer missing from a part contributes nothing);
    expert counts add, in the order given."""
    import torch

    if not parts:
        raise InputError("no calibration artifacts to merge")
    amax: dict = {}
    for part in parts:
        for name, value in part.amax.items():
            amax[name] = value if name not in amax else torch.maximum(amax[name], value)
    digests = tuple(d for p in parts for d in p.digests)
    return Artifact(unit, digests, amax, merge_counts([p.counts for p in parts]))
