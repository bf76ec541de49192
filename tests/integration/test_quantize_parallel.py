"""`glm51 quantize --nproc N` (torchrun, gloo on the CPU) on the tiny model: the same bytes as
one process, a killed rank named and resumed, ranks with different inputs refused."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from glm51 import env

pytestmark = pytest.mark.slow

# 7 samples in 3 units of 3, 2 and 2: no unit divides by 2 ranks evenly, and with 3 ranks one
# rank has no sample at all in the units of 2.
SAMPLES, CHUNKS = 7, 3


def glm51(*argv: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "glm51", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **(extra_env or {})},
        timeout=900,
    )


def quantize(tiny: Path, data: Path, out: Path, *extra: str, **kw):
    argv = ["quantize", "--model", str(tiny), "--output", str(out), "--calib-file", str(data)]
    return glm51(*argv, "--bounded-memory", "--chunks", str(CHUNKS), *extra, **kw)


def files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` by relative path (the run's record aside: it says how long
    the run took and how many ranks it had)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "glm51-quantize.json"
    }


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from glm51.calib.rehearsal_data import write_jsonl

    return write_jsonl(tmp_path_factory.mktemp("calib") / "calib.jsonl", SAMPLES, 3)


@pytest.fixture(scope="module")
def one(tiny_model, data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one") / "out"
    done = quantize(tiny_model, data, out)
    assert done.returncode == 0, done.stderr
    return out


def work(out: Path) -> Path:
    return out.with_name(out.name + ".work")


def assert_same_bytes(got: Path, expected: Path) -> None:
    """Checkpoint (shards, index, configs, manifest) and work dir (calibration artifacts,
    merged artifact, coverage report): file for file, byte for byte."""
    for a, b in ((got, expected), (work(got), work(expected))):
        mine, theirs = files(a), files(b)
        assert sorted(mine) == sorted(theirs)
        assert [name for name in mine if mine[name] != theirs[name]] == []
    assert any(n.startswith("artifacts/") for n in files(work(got)))
    assert "coverage/coverage.json" in files(work(got))
    assert "glm51-manifest.json" in files(got)


@pytest.mark.parametrize("nproc", [2, 3])
def test_ranks_give_the_bytes_of_one_process(tiny_model, data, one, tmp_path, nproc):
    out = tmp_path / "out"
    done = quantize(tiny_model, data, out, "--nproc", str(nproc))
    assert done.returncode == 0, done.stderr
    assert f"bounded memory on {nproc} ranks" in done.stderr
    assert "per rank          GPU" in done.stderr  # the estimate's per-rank memory
    assert_same_bytes(out, one)
    record = json.loads((work(out) / "glm51-quantize.json").read_text())
    assert record["ranks"] == nproc and record["mode"] == "bounded"
    assert json.loads((work(one) / "glm51-quantize.json").read_text())["ranks"] == 1


def test_torchrun_started_by_hand_gives_the_same_bytes(tiny_model, data, one, tmp_path):
    """`torchrun -m glm51 quantize ...`: the ranks of a job glm51 did not start itself."""
    out = tmp_path / "out"
    argv = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    argv += ["-m", "glm51", "quantize", "--model", str(tiny_model), "--output", str(out)]
    argv += ["--calib-file", str(data), "--bounded-memory", "--chunks", str(CHUNKS)]
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert_same_bytes(out, one)
    assert done.stdout.count("NVFP4 checkpoint written") == 1  # rank 0 speaks for the run


def test_a_killed_rank_is_named_and_a_rerun_resumes_to_the_same_bytes(
    tiny_model, data, one, tmp_path
):
    out = tmp_path / "out"
    # Rank 1 dies (SIGKILL, as the OOM killer does) inside layer 1 of the second unit.
    kill = {env.TEST_KILL_RANK: "1:local.2of3:1"}
    done = quantize(tiny_model, data, out, "--nproc", "2", extra_env=kill)
    assert done.returncode == 6, done.stderr
    assert "rank 1 was killed by SIGKILL (of 2 ranks" in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()  # nothing swapped in
    artifacts = sorted(p.name.split("-")[0] for p in (work(out) / "artifacts").iterdir())
    assert artifacts == ["local.1of3"]  # the unit before the kill is kept

    again = quantize(tiny_model, data, out, "--nproc", "2")
    assert again.returncode == 0, again.stderr
    assert "local.1of3: reusing" in again.stderr
    assert_same_bytes(out, one)
    record = json.loads((work(out) / "glm51-quantize.json").read_text())
    assert [u["reused"] for u in record["calibration"]] == [True, False, False]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ranks_given_other_calibration_data_are_refused_before_work(tiny_model, data, tmp_path):
    """Two ranks started by hand (as torchrun would, one per box), the second with another
    calibration file: both refuse with exit 3, before any calibration."""
    from glm51.calib.rehearsal_data import write_jsonl

    other = write_jsonl(tmp_path / "other.jsonl", SAMPLES, 4)
    port = str(_free_port())
    procs = []
    for rank, calib in enumerate((data, other)):
        rank_env = {
            "RANK": str(rank),
            "LOCAL_RANK": "0",
            "WORLD_SIZE": "2",
            "LOCAL_WORLD_SIZE": "1",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
        }
        argv = ["quantize", "--model", str(tiny_model), "--output", str(tmp_path / "out")]
        argv += ["--calib-file", str(calib), "--bounded-memory"]
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "glm51", *argv],
                env={**os.environ, **rank_env},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = [p.communicate(timeout=600) for p in procs]
    for p, (_, stderr) in zip(procs, results, strict=True):
        assert p.returncode == 3, stderr
        assert "rank 1 has another calibration data" in stderr
    assert not (tmp_path / "out.work" / "artifacts").exists()
    assert not (tmp_path / "out").exists()


def _collectives_rank(rank: int, world: int, init: str, out: str) -> None:
    """One rank of test_the_reductions_are_the_single_process_ones (spawned)."""
    import numpy as np
    import torch
    import torch.distributed as dist

    from glm51.calib.coverage import ExpertCounts
    from glm51.quantize.ranks import Ranks

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    ranks = Ranks(rank=rank, world=world)
    amax = {"both": torch.tensor([1.0 + rank, 5.0 - rank]), "bf16": torch.tensor(2.5 - rank)}
    amax["bf16"] = amax["bf16"].to(torch.bfloat16)
    if rank == 1:  # a quantizer only this rank's share reached
        amax["only_rank_1"] = torch.tensor(7.0)
    counts = [np.array([[1, 0], [0, 2]]), np.array([[3, 1], [0, 0]])][rank]
    first = [np.array([[4, -1], [-1, 0]]), np.array([[2, 9], [-1, -1]])][rank]
    reduced = ranks.sum_counts(ExpertCounts((1, 2), counts, first, 10))
    got = ranks.max_amax(amax)
    result = {"amax": got, "counts": reduced.counts, "first": reduced.first_seen}
    torch.save({**result, "tokens": reduced.tokens}, f"{out}/{rank}.pt")
    dist.destroy_process_group()


def test_the_reductions_are_the_single_process_ones(tmp_path):
    """max over ranks (a quantizer absent on a rank contributes nothing, every dtype kept),
    counts added, the earliest first sighting kept and "never" (-1) only where no rank saw."""
    import torch
    import torch.multiprocessing as mp

    init = f"file://{tmp_path / 'store'}"
    mp.spawn(_collectives_rank, args=(2, init, str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        got = torch.load(tmp_path / f"{rank}.pt", weights_only=False)
        assert sorted(got["amax"]) == ["bf16", "both", "only_rank_1"]
        assert torch.equal(got["amax"]["both"], torch.tensor([2.0, 5.0]))
        assert got["amax"]["bf16"].dtype == torch.bfloat16 and float(got["amax"]["bf16"]) == 2.5
        assert torch.equal(got["amax"]["only_rank_1"], torch.tensor(7.0))
        assert got["counts"].tolist() == [[4, 1], [0, 2]]
        assert got["first"].tolist() == [[2, 9], [-1, 0]]
        assert got["tokens"] == 10
