"""verify's deep check (torch): a sample of NVFP4 experts dequantized and compared with the
BF16 source."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from pathlib import Path

from glm51.checkpoint import dequant
from glm51.checkpoint.names import DEEP_EXPERTS, DEEP_MAX_ERROR
from glm51.checkpoint.safetensors import ShardHeader
from glm51.checkpoint.verify.layout import modules as nvfp4_parts
from glm51.checkpoint.verify.report import DeepResult, Report
from glm51.errors import InputError


def sample_modules(modules: list[str], n: int, seed: int = 0) -> list[str]:
    """A deterministic spread of ``n`` modules (by a seeded hash of the name)."""
    key = lambda m: hashlib.sha256(f"{seed}:{m}".encode()).digest()  # noqa: E731
    return sorted(sorted(modules, key=key)[:n])


def deep_check(
    folder: Path,
    headers: Mapping[str, ShardHeader],
    source: Path,
    report: Report,
    *,
    samples: int = DEEP_EXPERTS,
    max_rel_error: float = DEEP_MAX_ERROR,
) -> None:
    """Dequantize a sample of NVFP4 experts and compare with the BF16 source (needs torch)."""
    if not source.is_dir():
        raise InputError(f"--source {source}: not a folder")
    src_map = dequant.weight_map(source)
    if not src_map:
        raise InputError(f"--source {source}: no safetensors shards (a BF16 checkpoint folder?)")
    modules = sorted(
        m
        for m, parts in nvfp4_parts(headers).items()
        if {"weight", "weight_scale", "weight_scale_2"} <= parts.keys()
        and parts["weight"][1].dtype == "U8"
    )
    picked = sample_modules(modules, samples)
    for module in picked:
        if f"{module}.weight" not in src_map:
            report.add(
                "deep-source", module, f"has no {module}.weight in the --source checkpoint {source}"
            )
            continue
        parts = nvfp4_parts(headers)[module]
        rel, max_abs = dequant.compare(folder, parts, source, src_map[f"{module}.weight"], module)
        ok = math.isfinite(rel) and rel <= max_rel_error
        report.deep.append(DeepResult(module, rel, max_abs, ok))
        if not ok:
            report.add(
                "deep-error",
                module,
                f"dequantized weight differs from the BF16 source by {rel:.3f} (relative), "
                f"more than {max_rel_error}: the scales or the packing are wrong",
            )
