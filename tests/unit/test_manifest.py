"""glm51-manifest.json (checkpoint/manifest.py) exactly: the hashes, what is recorded, the
recipe stamp, the round trip, and each kind of mismatch with its words."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from glm51.checkpoint import manifest as mf
from glm51.checkpoint.safetensors import read_header
from glm51.errors import InputError
from tests.support import checkpoint as ck


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def shard(tmp_path: Path) -> Path:
    path = tmp_path / "s.safetensors"
    ck.write_safetensors(path, {"a": ("U8", (5,)), "b": ("BF16", (3,)), "c": ("F32", (2,))})
    raw = bytearray(path.read_bytes())
    header = read_header(path)
    base = 8 + header.header_len
    for i in range(base, len(raw)):
        raw[i] = (i * 7) % 251  # distinct bytes, so each tensor hashes differently
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("block", [1, 3, 7, 4096])
def test_hash_file_whole_and_per_tensor_in_any_block_size(shard, block):
    raw = shard.read_bytes()
    header = read_header(shard)
    base = 8 + header.header_len
    seen: list[int] = []
    d = mf.hash_file(shard, header, block=block, progress=seen.append)
    assert d.size == len(raw) == sum(seen) and d.sha256 == sha(raw)
    assert d.tensors == {
        n: sha(raw[base + t.begin : base + t.end]) for n, t in header.tensors.items()
    }
    assert mf.hash_file(shard, block=block).tensors == {}


def test_hash_files_keeps_the_order_of_the_names(shard, tmp_path):
    (tmp_path / "x.json").write_text("{}")
    jobs = {"x.json": (tmp_path / "x.json", None), "s": (shard, read_header(shard))}
    got = mf.hash_files(jobs, threads=1)
    assert list(got) == ["x.json", "s"] and got["x.json"].sha256 == sha(b"{}")
    assert mf.hash_files(jobs) == got


def test_recorded_files(tmp_path):
    for name in (
        "a.json",
        "model.safetensors",
        ".hidden",
        "README.md",
        ".gitattributes",
        mf.MANIFEST,
        "x.incomplete",
        "y.partial",
        "z.lock",
        "b.txt",
    ):
        (tmp_path / name).write_text("")
    (tmp_path / "sub").mkdir()
    assert mf.recorded_files(tmp_path) == ["a.json", "b.txt", "model.safetensors"]


def test_recipe_stamp_of_a_recipe_and_of_its_quantize_section(recipe):
    whole = mf.recipe_stamp(recipe)
    canonical = json.dumps(recipe.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    assert whole.digest == sha(canonical.encode())
    assert (whole.source, whole.source_revision, whole.published) == (
        recipe.model.source,
        recipe.model.source_revision,
        recipe.model.published,
    )
    assert (whole.algorithm, whole.group_size) == ("NVFP4", 16)
    part = mf.recipe_stamp(recipe.quantize)
    assert (part.source, part.source_revision, part.published) == (None, None, None)
    assert (part.algorithm, part.group_size) == ("NVFP4", 16)
    qc = json.dumps(recipe.quantize.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    assert part.digest == sha(qc.encode())


def test_tool_versions_none_when_not_installed():
    got = mf.tool_versions(["pytest", "no-such-distribution-glm51"])
    assert got["pytest"] and got["no-such-distribution-glm51"] is None


def test_build_write_read(tmp_path, recipe):
    folder = ck.build(tmp_path / "m")
    headers = {n: read_header(folder / n) for n in ck.shard_names(folder)}
    m = mf.build(folder, headers, recipe=recipe, timestamp=False)
    assert m.created_at == "" and m.recipe == mf.recipe_stamp(recipe)
    assert m.producer == {"name": "modelopt", "version": "0.47.0"}
    assert sorted(m.shards) == ck.shard_names(folder)
    assert "config.json" in m.files and not set(m.files) & set(m.shards)
    assert list(m.tensors) == sorted(m.tensors)
    name = next(iter(headers[ck.shard_names(folder)[0]].tensors))
    entry = m.tensors[name]
    info = headers[entry.shard].tensors[name]
    assert (entry.dtype, entry.shape) == (info.dtype, info.shape)
    assert m.entry("config.json") == m.files["config.json"] and m.entry("nope") is None
    assert m.all_files() == {**m.files, **m.shards}
    assert mf.build(folder, headers, timestamp=False).recipe is None
    assert mf.build(folder, headers).created_at.endswith("+00:00")
    path = mf.write(m, folder)
    assert path == folder / mf.MANIFEST and path.read_text().endswith("}\n")
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]
    assert mf.read(folder) == m == mf.read(path)
    (folder / "hf_quant_config.json").write_text("[1]")  # no producer to be read: none recorded
    assert mf.build(folder, headers, timestamp=False).producer == {}


def test_reading_no_manifest_says_how_to_write_one(tmp_path):
    with pytest.raises(InputError, match=r"glm51 verify --write"):
        mf.read(tmp_path)


def manifest_of(**tensors) -> mf.Manifest:
    return mf.Manifest(
        shards={"s": mf.FileEntry(size=10, sha256="a" * 64)},
        files={"c.json": mf.FileEntry(size=2, sha256="b" * 64)},
        tensors={
            n: mf.TensorEntry(shard="s", dtype="U8", shape=(1,), sha256=h)
            for n, h in tensors.items()
        },
    )


def test_compare_files_each_mismatch():
    m = manifest_of(**{f"t{i}": "0" * 64 for i in range(7)})
    digests = {
        "new.txt": mf.Digest(1, "c" * 64, {}),
        "c.json": mf.Digest(1, "b" * 64, {}),
        "s": mf.Digest(10, "d" * 64, {f"t{i}": ("0" if i == 3 else "1") * 64 for i in range(7)}),
    }
    assert [(x.where, x.message) for x in mf.compare_files(m, digests)] == [
        ("new.txt", "is not in the manifest (a file added after it was written)"),
        ("c.json", "is 1 bytes, the manifest recorded 2 (truncated by 1)"),
        (
            "s",
            f"sha256 {'d' * 16}... differs from the manifest's {'a' * 16}...; changed "
            "tensor(s): t0, t1, t2, t4, t5 and 1 more",
        ),
    ]
    grown = mf.compare_files(m, {"c.json": mf.Digest(5, "b" * 64, {})})
    assert grown[0].message == "is 5 bytes, the manifest recorded 2 (grown by 3)"
    whole = mf.compare_files(m, {"c.json": mf.Digest(2, "e" * 64, {})})
    assert whole[0].message == f"sha256 {'e' * 16}... differs from the manifest's {'b' * 16}..."
    assert mf.compare_files(m, {"c.json": mf.Digest(2, "b" * 64, {})}) == []
    five = mf.compare_files(
        m, {"s": mf.Digest(10, "d" * 64, {f"t{i}": "1" * 64 for i in range(5)})}
    )
    assert five[0].message.endswith("changed tensor(s): t0, t1, t2, t3, t4")
    unknown = mf.compare_files(m, {"s": mf.Digest(10, "d" * 64, {"zz": "1" * 64})})
    assert unknown[0].message.endswith(f"{'a' * 16}...")


def test_compare_headers_each_mismatch(tmp_path):
    path = tmp_path / "s"
    ck.write_safetensors(path, {"t0": ("U8", (1,)), "t1": ("U8", (2,)), "t9": ("U8", (1,))})
    header = read_header(path)
    m = manifest_of(t0="0" * 64, t1="0" * 64, t2="0" * 64)
    assert [(x.where, x.message) for x in mf.compare_headers(m, {"s": header})] == [
        ("s: t1", "is U8 [2] in s; the manifest recorded U8 [1] in s"),
        ("s: t9", "is not in the manifest"),
        ("s: t2", "is in the manifest but not in the shard"),
    ]
    assert mf.compare_headers(m, {}) == []  # a shard not read is not judged
    moved = mf.compare_headers(m, {"other": read_header(path)})
    assert ("other: t0", "is U8 [1] in other; the manifest recorded U8 [1] in s") in [
        (x.where, x.message) for x in moved
    ]


def test_reading_messages_name_the_manifest(tmp_path):
    path = tmp_path / mf.MANIFEST
    with pytest.raises(InputError) as info:
        mf.read(tmp_path)
    assert str(info.value) == f"{path}: no manifest (write one with `glm51 verify --write`)"
    path.write_text("{not json")
    with pytest.raises(InputError, match=r": not a JSON manifest \("):
        mf.read(path)


def test_write_is_atomic_beside_the_manifest_and_its_format(tmp_path, monkeypatch):
    import glm51.outputs as outputs

    calls = []
    real = outputs.tempfile.mkstemp

    def spy(**kw):
        calls.append(kw)
        return real(**kw)

    monkeypatch.setattr(outputs.tempfile, "mkstemp", spy)
    m = manifest_of(t0="0" * 64)
    path = mf.write(m, tmp_path)
    assert calls == [{"prefix": f".{mf.MANIFEST}.", "dir": tmp_path}]
    assert path.read_text() == m.model_dump_json(indent=1) + "\n"
    assert path.stat().st_mode & 0o777 == outputs.file_mode()  # not mkstemp's 0600


def test_build_reports_progress_and_reads_no_producer_when_there_is_none(tmp_path):
    folder = ck.build(tmp_path / "m", quant_config_in=("config.json",))
    headers = {n: read_header(folder / n) for n in ck.shard_names(folder)}
    seen: list[int] = []
    m = mf.build(folder, headers, timestamp=False, progress=seen.append, threads=2)
    assert m.producer == {}  # no hf_quant_config.json
    assert sum(seen) == sum(e.size for e in m.all_files().values())
    (folder / "hf_quant_config.json").write_text("{not json")
    assert mf.build(folder, headers, timestamp=False).producer == {}


def test_hash_files_reports_progress(shard):
    seen: list[int] = []
    mf.hash_files({"s": (shard, None)}, progress=seen.append)
    assert sum(seen) == shard.stat().st_size
