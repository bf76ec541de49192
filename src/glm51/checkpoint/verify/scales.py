"""verify's scale check: scalar scales finite and positive, E4M3 block scales finite and not
negative, and an expert's gate and up projections sharing one global scale (SGLang fuses
them into w13)."""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

from glm51.checkpoint.verify.report import Report

# E4M3 (fn) bytes that are a valid block scale: +0 and every positive finite value (0x01-0x7e).
# 0x7f / 0xff are NaN; 0x80-0xfe negative (0x80 is -0, harmless but never written).
_OK_E4M3 = bytes(range(0x00, 0x7F)) + b"\x80"


def _valid(scale: float) -> bool:
    return math.isfinite(scale) and scale > 0


def _read_scales(
    folder: Path, scalars: list[tuple[str, str, Any]], blocks, report: Report
) -> dict[str, float]:
    """Scalar scales finite and > 0; block scales (E4M3) finite and not negative. Returns
    the scalar scales' values."""
    values: dict[str, float] = {}
    by_shard: dict[str, list[tuple[str, Any, str]]] = {}
    for shard, name, info in scalars:
        by_shard.setdefault(shard, []).append((name, info, "scalar"))
    for shard, name, info in blocks:
        by_shard.setdefault(shard, []).append((name, info, "block"))
    headers_len: dict[str, int] = {}
    for shard, items in sorted(by_shard.items()):
        path = folder / shard
        with path.open("rb") as fh:
            (headers_len[shard],) = struct.unpack("<Q", fh.read(8))
            base = 8 + headers_len[shard]
            for name, info, kind in sorted(items, key=lambda x: x[1].begin):
                fh.seek(base + info.begin)
                raw = fh.read(info.end - info.begin)
                if kind == "scalar":
                    if len(raw) != 4:
                        report.add("scale-invalid", name, f"holds {len(raw)} bytes, a F32 scalar 4")
                        continue
                    (value,) = struct.unpack("<f", raw)
                    values[name] = value
                    if not math.isfinite(value) or value <= 0:
                        report.add(
                            "scale-invalid",
                            name,
                            f"is {value!r}: a scale must be finite and positive",
                        )
                else:
                    bad = raw.translate(None, _OK_E4M3)
                    if bad:
                        nan = bad.count(0x7F) + bad.count(0xFF)
                        report.add(
                            "scale-invalid",
                            name,
                            f"has {nan} NaN and {len(bad) - nan} negative E4M3 block scale(s): "
                            "block scales must be finite and not negative",
                        )
    return values


def check_scales(folder: Path, scalars: list[tuple[str, str, Any]], blocks, report: Report) -> None:
    """Every scale readable and valid; gate and up of one expert with the same global one."""
    values = _read_scales(folder, scalars, blocks, report)
    # SGLang fuses an expert's gate and up projections into one w13 with one global scale.
    for name, gate in sorted(values.items()):
        if name.endswith(".gate_proj.weight_scale_2"):
            up = values.get(name.replace(".gate_proj.", ".up_proj."))
            if up is not None and up != gate and _valid(gate) and _valid(up):
                report.add(
                    "nvfp4-w13-scale",
                    name.rsplit(".", 2)[0],
                    f"gate_proj.weight_scale_2 is {gate!r} but up_proj.weight_scale_2 is "
                    f"{up!r}: SGLang fuses them into w13 with one scale, so they must be equal",
                )
