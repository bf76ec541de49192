"""verify's structure check: the index and the shards agree (every shard named is there and
readable, every index entry is in its shard, every shard on disk is referenced, no tensor
twice)."""

from __future__ import annotations

from pathlib import Path

from glm51.checkpoint.integrity import listed
from glm51.checkpoint.safetensors import ShardError, ShardHeader, read_header
from glm51.checkpoint.verify.report import Report, read_json

INDEX = "model.safetensors.index.json"


def check_structure(folder: Path, report: Report) -> tuple[dict[str, str], dict[str, ShardHeader]]:
    """Index against shards; returns the weight map and the readable shards' headers."""
    index = read_json(folder / INDEX, report, "index") if (folder / INDEX).exists() else None
    on_disk = sorted(p.name for p in folder.glob("*.safetensors"))
    if index is None and not (folder / INDEX).exists():
        if on_disk == ["model.safetensors"]:
            weight_map = None  # one shard, no index: its header is the map
        else:
            report.add("index", INDEX, f"missing (the folder has {len(on_disk)} shard(s))")
            return {}, {}
    elif not isinstance(index, dict) or not isinstance(index.get("weight_map"), dict):
        if index is not None:
            report.add("index", INDEX, "has no weight_map object")
        return {}, {}
    else:
        weight_map = index["weight_map"]

    headers: dict[str, ShardHeader] = {}
    if weight_map is None:
        try:
            headers["model.safetensors"] = read_header(folder / "model.safetensors")
        except ShardError as exc:
            report.add(f"shard-{exc.kind}", "model.safetensors", f"truncated or corrupt: {exc}")
            return {}, {}
        weight_map = dict.fromkeys(headers["model.safetensors"].tensors, "model.safetensors")
        report.shards = 1
        report.tensors = len(weight_map)
        return weight_map, headers

    by_shard: dict[str, list[str]] = {}
    for name, shard in weight_map.items():
        by_shard.setdefault(shard, []).append(name)
    report.shards = len(by_shard)
    report.tensors = len(weight_map)
    for shard in sorted(by_shard):
        names = sorted(by_shard[shard])
        if not (folder / shard).is_file():
            report.add(
                "shard-missing",
                shard,
                f"missing: {INDEX} maps {len(names)} tensor(s) to it ({listed(names)})",
            )
            continue
        try:
            header = read_header(folder / shard)
        except ShardError as exc:
            what = "header" if exc.kind == "header" else "data (the file is cut short)"
            report.add(f"shard-{exc.kind}", shard, f"truncated or corrupt {what}: {exc}")
            continue
        headers[shard] = header
        for name in names:
            if name not in header.tensors:
                report.add(
                    "index-entry",
                    name,
                    f"{INDEX} maps it to {shard}, which has no such tensor",
                )
        extra = sorted(set(header.tensors) - set(weight_map))
        if extra:
            report.add(
                "tensor-unindexed",
                shard,
                f"holds {len(extra)} tensor(s) that {INDEX} does not list: {listed(extra)}",
            )
        moved = sorted(n for n in header.tensors if n in weight_map and weight_map[n] != shard)
        if moved:
            report.add(
                "tensor-duplicate",
                shard,
                f"holds {len(moved)} tensor(s) that {INDEX} maps to another shard: {listed(moved)}",
            )
    for shard in sorted(set(on_disk) - set(by_shard)):
        report.add("shard-unreferenced", shard, f"is not referenced by {INDEX}")
    return weight_map, headers
