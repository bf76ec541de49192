"""glm51-manifest.json: what a checkpoint folder held when it was written, to the byte.

Per shard its size and sha256 (the same sha256 the Hub shows as the file's LFS oid), per
other file (config, index, tokenizer) its size and sha256, per tensor its dtype, shape and
the sha256 of its bytes, and the recipe and tool versions that produced it. ``glm51
quantize`` and ``glm51 verify --write`` write it; ``glm51 verify`` and ``glm51 publish``
recompute and compare.

Hashing reads each file once, sequentially, in large blocks; several files are hashed at
once on threads (hashlib releases the GIL), so a folder hashes at about ``sha256sum``'s
speed per core. Tensor digests are only computed when they are needed: when the manifest
is written, and for a shard whose sha256 does not match (to name the tensors that changed).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from glm51.checkpoint.names import MANIFEST
from glm51.checkpoint.safetensors import ShardHeader
from glm51.outputs import write_text
from glm51.records.base import read_versioned_json
from glm51.ui import Progress, quiet

SCHEMA_VERSION = 1
BLOCK = 8 * 1024 * 1024  # read size: large enough that Python's overhead vanishes
# Files never recorded: the manifest itself, and what a publish adds next to the weights.
NOT_RECORDED = frozenset({MANIFEST, "README.md", ".gitattributes"})
# The tools whose versions are recorded (distribution names; read from metadata, not imported).
TOOLS = ("glm51", "torch", "transformers", "nvidia-modelopt", "safetensors", "huggingface_hub")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FileEntry(_Frozen):
    size: int
    sha256: str


class TensorEntry(_Frozen):
    shard: str
    dtype: str
    shape: tuple[int, ...]
    sha256: str


class RecipeStamp(_Frozen):
    source: str | None = None  # None when only the quantize section was at hand
    source_revision: str | None = None
    published: str | None = None
    algorithm: str
    group_size: int
    digest: str  # sha256 of the whole recipe (its canonical JSON)


class Manifest(_Frozen):
    kind: Literal["glm51-manifest"] = "glm51-manifest"
    schema_version: int = SCHEMA_VERSION
    created_at: str = ""
    recipe: RecipeStamp | None = None
    producer: dict[str, Any] = {}  # hf_quant_config.json's producer (ModelOpt and its version)
    tools: dict[str, str | None] = {}  # versions installed where the manifest was written
    shards: dict[str, FileEntry]
    files: dict[str, FileEntry] = {}
    tensors: dict[str, TensorEntry]

    def entry(self, name: str) -> FileEntry | None:
        return self.shards.get(name) or self.files.get(name)

    def all_files(self) -> dict[str, FileEntry]:
        return {**self.files, **self.shards}


@dataclass(frozen=True)
class Digest:
    """One file's sha256 and size, and (when asked for) each tensor's sha256."""

    size: int
    sha256: str
    tensors: Mapping[str, str]


def tool_versions(names: Iterable[str] = TOOLS) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def recipe_stamp(recipe) -> RecipeStamp:
    """The recipe fields a reader of the manifest needs, and a digest of the rest. Takes the
    whole Recipe, or its quantize section alone (what the export is handed)."""
    canonical = json.dumps(recipe.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    model = getattr(recipe, "model", None)
    quantize = getattr(recipe, "quantize", recipe)
    if isinstance(quantize, tuple):  # QuantizeRecipe.quantize is its pattern list
        quantize = recipe
    return RecipeStamp(
        source=model.source if model else None,
        source_revision=model.source_revision if model else None,
        published=model.published if model else None,
        algorithm=quantize.algorithm,
        group_size=quantize.group_size,
        digest=hashlib.sha256(canonical.encode()).hexdigest(),
    )


def hash_file(
    path: Path,
    header: ShardHeader | None = None,
    *,
    progress: Progress = quiet,
    block: int = BLOCK,
) -> Digest:
    """sha256 of ``path``; with ``header``, also the sha256 of every tensor's bytes, in the
    same single read."""
    whole = hashlib.sha256()
    spans: list[tuple[int, int, str]] = []
    if header is not None:
        base = 8 + header.header_len
        spans = sorted((base + t.begin, base + t.end, n) for n, t in header.tensors.items())
    tensor_hash = {name: hashlib.sha256() for _, _, name in spans}
    buf = bytearray(block)
    view = memoryview(buf)
    pos = 0
    first = 0  # index of the first span not yet fully consumed
    with path.open("rb", buffering=0) as fh:
        while True:
            n = fh.readinto(buf)
            if not n:
                break
            chunk = view[:n]
            whole.update(chunk)
            end = pos + n
            i = first
            while i < len(spans) and spans[i][0] < end:
                begin, stop, name = spans[i]
                lo, hi = max(begin, pos), min(stop, end)
                if lo < hi:
                    tensor_hash[name].update(chunk[lo - pos : hi - pos])
                if stop <= end and i == first:
                    first += 1
                i += 1
            pos = end
            progress(n)
    return Digest(pos, whole.hexdigest(), {n: h.hexdigest() for n, h in tensor_hash.items()})


def hash_files(
    jobs: Mapping[str, tuple[Path, ShardHeader | None]],
    *,
    threads: int | None = None,
    progress: Progress = quiet,
) -> dict[str, Digest]:
    """Hash several files at once (name -> (path, header or None)); keeps the names' order."""
    workers = max(1, min(threads or os.cpu_count() or 1, len(jobs)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {
            name: pool.submit(hash_file, path, header, progress=progress)
            for name, (path, header) in jobs.items()
        }
        return {name: f.result() for name, f in futures.items()}


def recorded_files(folder: Path) -> list[str]:
    """The files a manifest covers: every regular file at the top of the folder, but the
    manifest, the card, hidden files and partial downloads."""
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.is_file()
        and not p.name.startswith(".")
        and p.name not in NOT_RECORDED
        and not p.name.endswith((".incomplete", ".partial", ".lock"))
    )


def build(
    folder: Path,
    headers: Mapping[str, ShardHeader],
    *,
    recipe=None,
    threads: int | None = None,
    progress: Progress = quiet,
    timestamp: bool = True,
) -> Manifest:
    """Hash ``folder`` (shards with their tensors, other files whole) into a Manifest.
    ``timestamp=False`` leaves created_at empty, so the same folder gives the same bytes."""
    names = recorded_files(folder)
    jobs = {n: (folder / n, headers.get(n)) for n in names}
    digests = hash_files(jobs, threads=threads, progress=progress)
    shards, files, tensors = {}, {}, {}
    for name, d in digests.items():
        entry = FileEntry(size=d.size, sha256=d.sha256)
        if name in headers:
            shards[name] = entry
            for tname, info in sorted(headers[name].tensors.items()):
                tensors[tname] = TensorEntry(
                    shard=name, dtype=info.dtype, shape=info.shape, sha256=d.tensors[tname]
                )
        else:
            files[name] = entry
    producer: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError, AttributeError):
        producer = json.loads((folder / "hf_quant_config.json").read_text()).get("producer") or {}
    return Manifest(
        created_at=datetime.now(UTC).isoformat(timespec="seconds") if timestamp else "",
        recipe=recipe_stamp(recipe) if recipe is not None else None,
        producer=producer,
        tools=tool_versions(),
        shards=shards,
        files=files,
        tensors=dict(sorted(tensors.items())),
    )


def write(manifest: Manifest, folder: Path) -> Path:
    """Write ``folder/glm51-manifest.json`` atomically (temp file + rename)."""
    return write_text(folder / MANIFEST, manifest.model_dump_json(indent=1) + "\n")


def read(folder_or_file: Path) -> Manifest:
    """Read and validate a manifest; InputError names the file and the offending key."""
    path = folder_or_file / MANIFEST if folder_or_file.is_dir() else folder_or_file
    return read_versioned_json(
        path,
        Manifest,
        kind="glm51-manifest",
        schema_version=SCHEMA_VERSION,
        what="manifest",
        missing_hint=" (write one with `glm51 verify --write`)",
    )


@dataclass(frozen=True)
class Mismatch:
    """One difference between the manifest and the folder."""

    where: str  # the file, or "shard: tensor"
    message: str


def compare_files(manifest: Manifest, digests: Mapping[str, Digest]) -> list[Mismatch]:
    """Sizes and sha256 of the files hashed against the manifest; names changed tensors when
    the digest carries tensor hashes."""
    out: list[Mismatch] = []
    for name, d in digests.items():
        want = manifest.entry(name)
        if want is None:
            out.append(Mismatch(name, "is not in the manifest (a file added after it was written)"))
            continue
        if d.size != want.size:
            out.append(
                Mismatch(
                    name,
                    f"is {d.size} bytes, the manifest recorded {want.size} "
                    f"({'truncated' if d.size < want.size else 'grown'} by "
                    f"{abs(d.size - want.size)})",
                )
            )
        elif d.sha256 != want.sha256:
            changed = sorted(
                t
                for t, h in d.tensors.items()
                if (e := manifest.tensors.get(t)) is not None and e.sha256 != h
            )
            what = (
                f"; changed tensor(s): {', '.join(changed[:5])}"
                + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
                if changed
                else ""
            )
            out.append(
                Mismatch(
                    name,
                    f"sha256 {d.sha256[:16]}... differs from the manifest's "
                    f"{want.sha256[:16]}...{what}",
                )
            )
    return out


def compare_headers(manifest: Manifest, headers: Mapping[str, ShardHeader]) -> list[Mismatch]:
    """Each tensor's shard, dtype and shape against the manifest (headers only: cheap)."""
    out: list[Mismatch] = []
    seen = set()
    for shard, header in headers.items():
        for name, info in header.tensors.items():
            seen.add(name)
            want = manifest.tensors.get(name)
            if want is None:
                out.append(Mismatch(f"{shard}: {name}", "is not in the manifest"))
            elif (want.shard, want.dtype, tuple(want.shape)) != (shard, info.dtype, info.shape):
                out.append(
                    Mismatch(
                        f"{shard}: {name}",
                        f"is {info.dtype} {list(info.shape)} in {shard}; the manifest recorded "
                        f"{want.dtype} {list(want.shape)} in {want.shard}",
                    )
                )
    for name, want in manifest.tensors.items():
        if name not in seen and want.shard in headers:
            out.append(Mismatch(f"{want.shard}: {name}", "is in the manifest but not in the shard"))
    return out
