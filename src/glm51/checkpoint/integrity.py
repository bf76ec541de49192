"""Structural integrity of a checkpoint folder: every shard the index names is there, its
header parses, its data is as long as the header declares, and it holds the tensors the index
maps to it. Headers only (no tensor data is read), so it takes seconds even at 400 GB.

`glm51 doctor`, `glm51 serve`'s preflight and `glm51 quantize` (on the BF16 source, before
anything is loaded) all run these same checks.
"""

from __future__ import annotations

from pathlib import Path

from glm51.checkpoint.folder import INDEX, read_config, read_weight_map
from glm51.checkpoint.safetensors import ShardError, ShardHeader, read_header
from glm51.errors import InputError
from glm51.findings import Finding, Severity

SHOWN = 5  # names listed in one message before "and N more"


def listed(names: list[str]) -> str:
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def check_shards(
    path: Path, weight_map: dict[str, str]
) -> tuple[list[Finding], dict[str, ShardHeader]]:
    """Problems with the shards, and the headers of the shards that could be read."""
    found: list[Finding] = []
    headers: dict[str, ShardHeader] = {}
    by_shard: dict[str, list[str]] = {}
    for name, shard in weight_map.items():
        by_shard.setdefault(shard, []).append(name)
    missing = sorted(s for s in by_shard if not (path / s).is_file())
    if missing:
        found.append(
            Finding(
                "checkpoint.shard-missing",
                Severity.ERROR,
                f"{path}: {len(missing)} shard(s) named in {INDEX} are missing: {listed(missing)}",
                "finish the download (hf download ... resumes) or copy the missing files",
            )
        )
    for shard in sorted(set(by_shard) - set(missing)):
        try:
            header = read_header(path / shard)
        except ShardError as exc:
            check = "checkpoint.shard-header" if exc.kind == "header" else "checkpoint.shard-data"
            what = "header" if exc.kind == "header" else "data"
            found.append(
                Finding(
                    check,
                    Severity.ERROR,
                    f"{path / shard}: truncated or corrupt {what}: {exc}",
                    f"re-download {shard} (delete it first; the copy is incomplete)",
                )
            )
            continue
        headers[shard] = header
        absent = sorted(n for n in by_shard[shard] if n not in header.tensors)
        if absent:
            found.append(
                Finding(
                    "checkpoint.tensor-missing",
                    Severity.ERROR,
                    f"{path / shard} lacks {len(absent)} tensor(s) that {INDEX} maps to it: "
                    f"{listed(absent)}",
                    "the index and the shards come from different exports: re-download both",
                )
            )
    return found, headers


def require_intact(path: Path) -> None:
    """The same structural checks as `glm51 doctor --only checkpoint`, for an input checkpoint:
    config, index, every shard's header and length. InputError lists every problem found."""
    read_config(path)  # InputError naming the folder or the file
    weight_map = read_weight_map(path)
    problems, _ = check_shards(path, weight_map)
    if problems:
        lines = "\n  ".join(f"{p.message} -> {p.fix}" for p in problems)
        raise InputError(f"{path}: the checkpoint is damaged:\n  {lines}")
