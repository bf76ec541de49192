"""`glm51 quantize --nproc N --device cuda` (NCCL, one rank per GPU): the same bytes as one
process on one GPU. Needs at least two CUDA devices; run with `-m gpu`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu


def _gpus() -> int:
    torch = pytest.importorskip("torch")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count < 2:
        pytest.skip(f"needs 2 CUDA devices, torch {torch.__version__} sees {count}")
    return count


def _quantize(model: Path, data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    argv = ["quantize", "--model", str(model), "--output", str(out), "--calib-file", str(data)]
    return subprocess.run(
        [sys.executable, "-m", "glm51", *argv, "--bounded-memory", "--chunks", "2", *extra],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=1200,
    )


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "glm51-quantize.json"
    }


@pytest.mark.parametrize("nproc", [2, "all"])
def test_ranks_on_gpus_give_the_bytes_of_one_gpu(tmp_path, nproc):
    from glm51.calib.rehearsal_data import write_jsonl
    from glm51.quantize.tiny import build_tiny_model

    count = _gpus()  # skips with fewer than two
    n = count if nproc == "all" else 2
    model = build_tiny_model(tmp_path / "tiny")
    data = write_jsonl(tmp_path / "calib.jsonl", 2 * n + 1, 5)  # not divisible by the ranks
    one = _quantize(model, data, tmp_path / "one", "--device", "cuda")
    assert one.returncode == 0, one.stderr
    many = _quantize(model, data, tmp_path / "many", "--device", "cuda", "--nproc", str(n))
    assert many.returncode == 0, many.stderr
    for a, b in (("one", "many"), ("one.work", "many.work")):
        mine, theirs = _files(tmp_path / a), _files(tmp_path / b)
        assert sorted(mine) == sorted(theirs)
        assert [k for k in mine if mine[k] != theirs[k]] == []
