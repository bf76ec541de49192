"""`glm51 verify`'s hashing throughput next to `sha256sum` on the same files.

Not a test: a measurement. Hashes the shards of a checkpoint folder (or generated files)
three ways, each timed on a warm page cache so the disk is out of the picture:

- `sha256sum FILES` (coreutils, one process, one file after another);
- glm51's verify path: `manifest.hash_files` (whole-file sha256, files in parallel threads);
- glm51's write path: the same with per-tensor digests (what `verify --write` and
  `quantize` record; two sha256 per byte).

Run: `python benchmarks/verify_hashing.py [--folder CHECKPOINT] [--files 4 --mb 256]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import struct
import tempfile
import time
from pathlib import Path

from glm51.checkpoint import manifest as mf
from glm51.checkpoint.safetensors import ShardError, read_header
from glm51.proc import run


def generate(folder: Path, files: int, mb: int, tensors: int = 64) -> list[Path]:
    """Safetensors-shaped files: a header of ``tensors`` U8 tensors, then their bytes."""
    out = []
    block = os.urandom(1024 * 1024)
    each = mb * 1024 * 1024 // tensors
    for i in range(files):
        header = {
            f"t{k}": {"dtype": "U8", "shape": [each], "data_offsets": [k * each, (k + 1) * each]}
            for k in range(tensors)
        }
        raw = json.dumps(header).encode()
        raw += b" " * (-len(raw) % 8)
        path = folder / f"model-{i + 1:05d}-of-{files:05d}.safetensors"
        with path.open("wb") as fh:
            fh.write(struct.pack("<Q", len(raw)) + raw)
            for k in range(mb):
                fh.write(block[k % 7 :] + block[: k % 7])  # distinct blocks, cheap to make
        out.append(path)
    return out


def warm(paths: list[Path]) -> None:
    for p in paths:
        with p.open("rb", buffering=0) as fh:
            while fh.read(16 * 1024 * 1024):
                pass


def timed(label: str, total: int, fn) -> float:
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    rate = total / seconds / 1e6
    print(f"{label:<44} {seconds:8.2f} s  {rate:8.0f} MB/s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", type=Path, help="a checkpoint folder (its *.safetensors)")
    parser.add_argument("--files", type=int, default=4, help="generated files (default 4)")
    parser.add_argument("--mb", type=int, default=256, help="MB per generated file (default 256)")
    parser.add_argument("--threads", type=int, default=None, help="default: the CPU count")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="glm51-hash-") as tmp:
        paths = (
            sorted(args.folder.glob("*.safetensors"))
            if args.folder
            else generate(Path(tmp), args.files, args.mb)
        )
        if not paths:
            raise SystemExit(f"{args.folder}: no *.safetensors")
        total = sum(p.stat().st_size for p in paths)
        threads = args.threads or os.cpu_count() or 1
        print(f"{len(paths)} file(s), {total / 1e6:.0f} MB, {os.cpu_count()} CPU(s); warm cache")
        warm(paths)
        base = timed("sha256sum (coreutils)", total, lambda: run(["sha256sum", *map(str, paths)]))
        jobs = {p.name: (p, None) for p in paths}
        one = timed("glm51 verify, 1 thread", total, lambda: mf.hash_files(jobs, threads=1))
        par = timed(
            f"glm51 verify, {threads} threads", total, lambda: mf.hash_files(jobs, threads=threads)
        )
        headers = {}
        for p in paths:
            with contextlib.suppress(ShardError):
                headers[p.name] = read_header(p)
        if headers:
            with_tensors = {p.name: (p, headers.get(p.name)) for p in paths}
            timed(
                f"glm51 verify --write (per-tensor), {threads} thr",
                total,
                lambda: mf.hash_files(with_tensors, threads=threads),
            )
        print(f"verify vs sha256sum: {one / base:.2f}x on 1 thread, {par / base:.2f}x on {threads}")


if __name__ == "__main__":
    main()
