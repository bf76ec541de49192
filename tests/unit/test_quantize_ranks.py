"""Data-parallel quantize, the pure parts: shares, layer owners, the launcher's verdict on
failed ranks, the ranks' command, the option checks and the per-rank estimate."""

from __future__ import annotations

import itertools
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from glm51 import env
from glm51.errors import GateFailed, InfraError, InputError
from glm51.quantize.launch import failed, rank_argv
from glm51.quantize.ranks import SINGLE, Ranks, fault_injection_hook
from tests.support.cli import error_text, exit_code


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_shares_are_contiguous_cover_every_sample_once_and_differ_by_one_at_most(world):
    for n in range(12):
        shares = [Ranks(rank=r, world=world).share(n) for r in range(world)]
        assert [i for s in shares for i in s] == list(range(n))  # in order, each once
        sizes = [len(s) for s in shares]
        assert max(sizes) - min(sizes) <= 1


def test_every_layer_has_exactly_one_owner():
    for world in (1, 2, 3):
        owners = [
            [r for r in range(world) if Ranks(rank=r, world=world).owns_layer(i)] for i in range(7)
        ]
        assert all(len(o) == 1 for o in owners)
        assert {o[0] for o in owners} == set(range(world))


def test_one_process_exchanges_nothing():
    import numpy as np
    import torch

    from glm51.calib.coverage import ExpertCounts

    amax = {"a": torch.tensor(1.0)}
    assert SINGLE.max_amax(amax) == amax
    counts = ExpertCounts((1,), np.array([[2, 0]]), np.array([[0, -1]]), 2)
    assert SINGLE.sum_counts(counts) is counts
    assert SINGLE.from_leader(lambda: 7) == 7 and SINGLE.all_gather("x", "what") == ["x"]
    SINGLE.agree({"source": "a"})  # nothing to compare with


@dataclass
class Failure:
    exitcode: int
    timestamp: int = 100


def test_a_killed_rank_is_named_not_the_ones_the_launcher_stopped():
    err = failed(3, {0: Failure(-signal.SIGTERM), 1: Failure(-signal.SIGKILL), 2: Failure(6)})
    assert isinstance(err, InfraError) and err.exit_code == 6
    assert str(err).startswith("rank 1 was killed by SIGKILL (of 3 ranks")
    assert "rank(s) 0, 2 stopped with it" in str(err)


@pytest.mark.parametrize(("code", "kind"), [(3, InputError), (5, GateFailed), (6, InfraError)])
def test_a_ranks_own_error_keeps_its_kind(code, kind):
    err = failed(2, {0: Failure(-signal.SIGTERM), 1: Failure(code)})
    assert type(err) is kind and str(err).startswith(f"rank 1 exited with {code} (of 2 ranks")


def test_among_infrastructure_failures_the_earliest_is_named():
    err = failed(2, {0: Failure(6, timestamp=105), 1: Failure(6, timestamp=101)})
    assert str(err).startswith("rank 1 exited with 6")
    err = failed(2, {0: Failure(6), 1: Failure(6)})  # a tie: the lowest rank
    assert str(err).startswith("rank 0 exited with 6")


def request(tmp_path: Path, **kw):
    from glm51.quantize.stage import Calibration, Request

    calib = Calibration(files=(tmp_path / "a.jsonl", tmp_path / "b.jsonl"), chunks=3)
    base = dict(
        model=tmp_path / "m",
        output=tmp_path / "o",
        work_dir=tmp_path / "w",
        calibration=calib,
        bounded=True,
        nproc=2,
    )
    return Request(**{**base, **kw})


def test_the_ranks_run_the_requests_options_without_nproc(tmp_path):
    argv = rank_argv(request(tmp_path, overwrite=True, recipe_file=tmp_path / "r.toml"))
    assert argv[:3] == ["-m", "glm51", "quantize"] and "--nproc" not in argv
    pairs = dict(itertools.pairwise(argv))
    assert pairs["--model"] == str(tmp_path / "m") and pairs["--output"] == str(tmp_path / "o")
    assert pairs["--work-dir"] == str(tmp_path / "w") and pairs["--chunks"] == "3"
    assert pairs["--recipe"] == str(tmp_path / "r.toml") and pairs["--device"] == "cpu"
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--calib-file"] == [
        str(tmp_path / "a.jsonl"),
        str(tmp_path / "b.jsonl"),
    ]
    assert "--bounded-memory" in argv and "--overwrite" in argv
    assert "--overwrite" not in rank_argv(request(tmp_path))
    assert "--recipe" not in rank_argv(request(tmp_path))  # the ranks load the same default


@pytest.mark.parametrize(
    ("kw", "world", "message"),
    [
        ({"nproc": 0}, None, "--nproc 0: give 1 or more processes"),
        ({"nproc": -2}, None, "--nproc -2: give 1 or more processes"),
        ({"bounded": False}, None, "--nproc 2: data-parallel quantization runs in the bounded"),
        ({"nproc": 1, "bounded": False}, "3", "3 ranks (torchrun's WORLD_SIZE): data-parallel"),
        ({}, "2", "--nproc 2 under torchrun (WORLD_SIZE=2): torchrun already started"),
        ({"device": "cuda:1"}, None, "--device cuda:1 with 2 ranks: each rank takes the GPU"),
    ],
)
def test_rank_options_are_refused_by_name(tmp_path, monkeypatch, kw, world, message):
    from glm51.quantize.stage import check_ranks

    if world is None:
        monkeypatch.delenv("WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("WORLD_SIZE", world)
    with pytest.raises(InputError) as info:
        check_ranks(request(tmp_path, **kw))
    assert str(info.value).startswith(message)


def test_nproc_zero_exits_3_before_anything_is_read(tmp_path, monkeypatch):
    from glm51.cli import app

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    argv = ["quantize", "--model", str(tmp_path / "none"), "--output", str(tmp_path / "o")]
    result = CliRunner().invoke(app, [*argv, "--bounded-memory", "--nproc", "0"])
    assert exit_code(result) == 3
    assert "--nproc 0: give 1 or more processes" in error_text(result)
    assert list(tmp_path.iterdir()) == []


def test_the_fault_hook_is_inert_unless_it_names_this_rank_unit_and_layer(monkeypatch):
    monkeypatch.delenv(env.TEST_KILL_RANK, raising=False)
    fault_injection_hook(Ranks(rank=1, world=2), "u", 1)
    monkeypatch.setenv(env.TEST_KILL_RANK, "1:u:1")
    for ranks, unit, layer in ((Ranks(rank=0, world=2), "u", 1), (Ranks(1, 2), "v", 1)):
        fault_injection_hook(ranks, unit, layer)  # another rank or unit: still alive
    fault_injection_hook(Ranks(1, 2), "u", 2)


def test_a_torchrun_environment_without_its_rank_is_refused_by_name(monkeypatch):
    from glm51.quantize.ranks import join, torchrun_world

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert join("cpu") is SINGLE  # outside torchrun: one process, no process group
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(InputError, match="WORLD_SIZE='two': not a number"):
        torchrun_world()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(InputError, match="WORLD_SIZE=2 but RANK, LOCAL_RANK or LOCAL_WORLD_SIZE"):
        join("cpu")
