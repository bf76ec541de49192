"""What `glm51 fidelity` checks before any work, and the text it measures on.

- The checkpoint must be the source's quantization: the same config (but its
  quantization_config), every source tensor of the decoder layers and head present either
  unchanged (same dtype and shape) or as an NVFP4 projection of the same shape, and the router
  weights byte-identical (another model of the same shapes fails there). The walk compares
  every BF16 tensor it uses in full.
- The text is held out: the fidelity manifest is not a calibration pass's, and shares no
  dataset with one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from glm51.calib.manifest import Manifest, load_manifest
from glm51.checkpoint.folder import Checkpoint
from glm51.checkpoint.layout import mtp_layers
from glm51.checkpoint.safetensors import read_header
from glm51.errors import InputError
from glm51.recipe.schema import Recipe

_NOT_COMPARED = (
    "quantization_config",
    "_name_or_path",
    "transformers_version",
    "dtype",
    "torch_dtype",
)


def _header_map(ckpt: Checkpoint) -> dict:
    headers = {shard: read_header(ckpt.dir / shard) for shard in ckpt.shards}
    return {name: (ckpt.dir / shard, headers[shard]) for name, shard in ckpt.weight_map.items()}


def _raw(path: Path, header, name: str) -> bytes:
    info = header.tensors[name]
    with path.open("rb") as fh:
        fh.seek(8 + header.header_len + info.begin)
        return fh.read(info.end - info.begin)


def check_pair(source: Checkpoint, candidate: Checkpoint) -> int:
    """Refuse a checkpoint that is not the source's quantization (exit 3), from the headers
    and the router weights; returns the number of NVFP4 projections it stores."""
    where = f"--checkpoint {candidate.dir}"
    a = {k: v for k, v in source.config.items() if k not in _NOT_COMPARED}
    b = {k: v for k, v in candidate.config.items() if k not in _NOT_COMPARED}
    differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    if differ:
        raise InputError(
            f"{where}: config.json differs from the source's in {differ[:6]}: not a "
            f"quantization of --source {source.dir}"
        )
    mtp = tuple(f"model.layers.{i}." for i in mtp_layers(source.config))
    ours, theirs = _header_map(source), _header_map(candidate)
    quantized = 0
    for name, (_, header) in ours.items():
        if name.startswith(mtp):
            continue  # not walked (kept BF16 by the recipe; serving uses it only to draft)
        info = header.tensors[name]
        if name in theirs and name.removesuffix(".weight") + ".weight_scale" in theirs:
            packed = theirs[name][1].tensors[name]
            want = (info.shape[0], info.shape[1] // 2) if len(info.shape) == 2 else None
            if packed.dtype != "U8" or packed.shape != want:
                raise InputError(
                    f"{where}: {name} is {packed.dtype} {list(packed.shape)}, expected NVFP4 "
                    f"U8 {list(want or ())} for the source's {list(info.shape)}: not a "
                    "quantization of --source"
                )
            quantized += 1
            continue
        if name not in theirs:
            raise InputError(f"{where}: has no {name}: not a quantization of --source {source.dir}")
        other = theirs[name][1].tensors[name]
        # The exporter writes a few BF16 buffers as F32 (e_score_correction_bias, which
        # transformers keeps in FP32): the walk compares their values.
        if other.shape != info.shape or (
            other.dtype != info.dtype and "F32" not in (other.dtype, info.dtype)
        ):
            raise InputError(
                f"{where}: {name} is {other.dtype} {list(other.shape)}, the source's is "
                f"{info.dtype} {list(info.shape)}: not a quantization of --source"
            )
    for name in sorted(n for n in ours if n.endswith(".mlp.gate.weight") and not n.startswith(mtp)):
        if _raw(*ours[name], name) != _raw(*theirs[name], name):
            raise InputError(
                f"{where}: {name} differs from the source's (another model?): the BF16 "
                "tensors of a quantization are the source's own"
            )
    return quantized


def _datasets(manifest: Manifest) -> set[tuple[str, str | None]]:
    return {(s.dataset, s.config) for s in manifest.sources}


def check_held_out(recipe: Recipe) -> Manifest:
    """The fidelity manifest, refused (exit 3) when it is, or shares a dataset with, a
    calibration pass's."""
    path = recipe.fidelity_manifest()
    where = f"{recipe.source or '<recipe>'}: fidelity.manifest"
    if not path.is_file():
        raise InputError(f"{where}: {path} does not exist (relative to the recipe file)")
    manifest = load_manifest(path)
    for p in recipe.quantize.passes:
        pass_path = recipe.pass_manifest(p.name)
        if pass_path.resolve() == path.resolve() or manifest.name == p.name:
            raise InputError(f"{where}: {path} is calibration pass {p.name!r}: not held out")
        if not pass_path.is_file():
            continue
        shared = _datasets(manifest) & _datasets(load_manifest(pass_path))
        if shared:
            names = ", ".join(sorted(d for d, _ in shared))
            raise InputError(
                f"{where}: {path} draws from {names}, which calibration pass {p.name!r} "
                f"({pass_path}) also uses: the fidelity text must be held out"
            )
    return manifest


def select(
    samples: Sequence[Sequence[int]],
    sequences: int,
    tokens: int,
    seed: int,
    where: str,
    budget_key: str = "fidelity",
) -> list[list[int]]:
    """``sequences`` samples drawn with ``seed`` (kept in their order), each cut to its first
    ``tokens`` tokens. ``budget_key`` is the recipe table the budget came from."""
    import numpy as np

    if len(samples) < sequences:
        raise InputError(
            f"{where}: {len(samples)} samples, the recipe's {budget_key}.sequences asks for "
            f"{sequences}"
        )
    chosen = np.sort(np.random.default_rng(seed).choice(len(samples), sequences, replace=False))
    out = [list(samples[int(i)])[:tokens] for i in chosen]
    short = [len(s) for s in out if len(s) < 2]
    if short:
        raise InputError(f"{where}: a sample has fewer than 2 tokens")
    return out
