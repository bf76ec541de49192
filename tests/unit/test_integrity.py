"""Shard integrity (checkpoint/integrity.py) on checkpoints the tests build: every shard is
checked, each problem is named with its fix, and require_intact lists them all."""

import json

import pytest

from glm51.checkpoint import integrity
from glm51.errors import InputError
from tests.support import checkpoint as ckpt

INDEX = "model.safetensors.index.json"


def weight_map(path):
    return json.loads((path / INDEX).read_text())["weight_map"]


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, ""), (1, "n0"), (5, "n0, n1, n2, n3, n4"), (6, "n0, n1, n2, n3, n4 and 1 more")],
)
def test_listed_shows_five_then_counts(count, text):
    assert integrity.listed([f"n{i}" for i in range(count)]) == text


def test_an_intact_checkpoint_has_no_problems_and_every_header(tmp_path):
    path = ckpt.build(tmp_path / "m")
    problems, headers = integrity.check_shards(path, weight_map(path))
    assert problems == []
    assert sorted(headers) == ckpt.shard_names(path)
    integrity.require_intact(path)  # no error


def test_every_damaged_shard_is_reported_not_just_the_first(tmp_path):
    path = ckpt.build(tmp_path / "m")
    first = ckpt.truncate_shard(path, 1, short_by=1)
    third = ckpt.truncate_shard(path, 3, part="header")
    problems, headers = integrity.check_shards(path, weight_map(path))
    assert [(p.check, p.message.split(":")[0]) for p in problems] == [
        ("checkpoint.shard-data", str(path / first)),
        ("checkpoint.shard-header", str(path / third)),
    ]
    assert problems[0].fix == f"re-download {first} (delete it first; the copy is incomplete)"
    assert first not in headers and third not in headers and len(headers) == 2


def test_missing_shards_are_listed_with_the_fix(tmp_path):
    path = ckpt.build(tmp_path / "m")
    gone = sorted([ckpt.drop_shard(path, 4), ckpt.drop_shard(path, 2)])
    problems, headers = integrity.check_shards(path, weight_map(path))
    assert [p.check for p in problems] == ["checkpoint.shard-missing"]
    assert problems[0].message == (
        f"{path}: 2 shard(s) named in {INDEX} are missing: {', '.join(gone)}"
    )
    assert problems[0].fix == (
        "finish the download (hf download ... resumes) or copy the missing files"
    )
    assert len(headers) == 2


def test_a_tensor_the_index_maps_to_a_shard_that_lacks_it(tmp_path):
    path = ckpt.build(tmp_path / "m")
    mapping = weight_map(path)
    shard = ckpt.shard_names(path)[0]
    mapping["model.ghost.weight"] = shard
    problems, _ = integrity.check_shards(path, mapping)
    assert [p.check for p in problems] == ["checkpoint.tensor-missing"]
    assert problems[0].message == (
        f"{path / shard} lacks 1 tensor(s) that {INDEX} maps to it: model.ghost.weight"
    )
    assert problems[0].fix == (
        "the index and the shards come from different exports: re-download both"
    )


def test_require_intact_lists_every_problem_with_its_fix(tmp_path):
    path = ckpt.build(tmp_path / "m")
    gone = ckpt.drop_shard(path, 1)
    cut = ckpt.truncate_shard(path, 2, short_by=1)
    problems, _ = integrity.check_shards(path, weight_map(path))
    with pytest.raises(InputError) as err:
        integrity.require_intact(path)
    lines = "\n  ".join(f"{p.message} -> {p.fix}" for p in problems)
    assert str(err.value) == f"{path}: the checkpoint is damaged:\n  {lines}"
    assert gone in str(err.value) and cut in str(err.value)


def test_require_intact_needs_the_config_and_the_index(tmp_path):
    path = ckpt.build(tmp_path / "m")
    (path / INDEX).unlink()
    with pytest.raises(InputError, match=INDEX):
        integrity.require_intact(path)
    (path / "config.json").unlink()
    with pytest.raises(InputError, match=r"config\.json"):
        integrity.require_intact(path)
