"""`glm51 verify` on the real-layout test checkpoint: passes when whole, and each way of
breaking it fails with its own check and a message naming the file or tensor."""

from __future__ import annotations

import hashlib
import json
import math
import random
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from glm51.checkpoint import manifest as mf
from glm51.checkpoint.safetensors import read_header
from glm51.checkpoint.verify import excluded_by, verify
from glm51.cli import app
from glm51.errors import InputError
from tests.support import checkpoint as ck
from tests.support.checkpoint import EXPERT, drop_tensor, tensor_offset


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return ck.build(tmp_path / "ckpt")


def snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def checks(report) -> set[str]:
    return {p.check for p in report.problems}


def test_whole_checkpoint_passes_and_write_records_a_manifest(good, recipe):
    report = verify(good, recipe)
    assert report.ok, report.problems
    assert report.manifest == "absent"
    assert report.nvfp4_modules == 36  # 3 MoE layers x 4 experts x 3 projections
    assert not (good / mf.MANIFEST).exists()

    written = verify(good, recipe, write=True)
    assert written.ok and written.manifest == "written"
    manifest = mf.read(good)
    for shard in ck.shard_names(good):
        data = (good / shard).read_bytes()
        assert manifest.shards[shard].sha256 == hashlib.sha256(data).hexdigest()
        assert manifest.shards[shard].size == len(data)
    assert set(manifest.files) == {
        "config.json",
        "hf_quant_config.json",
        "model.safetensors.index.json",
    }
    path, begin, end = tensor_offset(good, f"{EXPERT}.input_scale")
    want = hashlib.sha256(path.read_bytes()[begin:end]).hexdigest()
    assert manifest.tensors[f"{EXPERT}.input_scale"].sha256 == want
    assert manifest.tensors[f"{EXPERT}.weight"].dtype == "U8"
    assert manifest.recipe.published == recipe.model.published
    assert manifest.tools["glm51"] is not None

    again = verify(good, recipe)
    assert again.ok and again.manifest == "matched"


def test_truncated_shard(good, recipe):
    verify(good, recipe, write=True)
    name = ck.truncate_shard(good, 2)
    report = verify(good, recipe)
    assert "shard-data" in checks(report)
    problem = next(p for p in report.problems if p.check == "shard-data")
    assert problem.where == name
    assert "7 missing" in problem.message
    # The manifest comparison says the same in its own words.
    digest = next(p for p in report.problems if p.check == "manifest-digest")
    assert digest.where == name and "truncated by 7" in digest.message


def test_flipped_byte_names_the_tensor(good, recipe):
    verify(good, recipe, write=True)
    tensor = "model.layers.2.mlp.experts.1.down_proj.weight"
    path, begin, _ = tensor_offset(good, tensor)
    with path.open("r+b") as fh:
        fh.seek(begin + 3)
        fh.write(b"\x01")
    report = verify(good, recipe)
    assert checks(report) == {"manifest-digest"}
    (problem,) = report.problems
    assert problem.where == path.name
    assert f"changed tensor(s): {tensor}" in problem.message
    assert report.manifest == "mismatched"


def test_missing_shard(good, recipe):
    name = ck.drop_shard(good, 3)
    report = verify(good, recipe)
    problem = next(p for p in report.problems if p.check == "shard-missing")
    assert problem.where == name
    assert "maps" in problem.message and "tensor(s) to it" in problem.message


def test_index_entry_pointing_to_a_missing_tensor(good, recipe):
    index_file = good / "model.safetensors.index.json"
    index = json.loads(index_file.read_text())
    shard = index["weight_map"][f"{EXPERT}.weight"]
    index["weight_map"]["model.layers.1.mlp.experts.9.gate_proj.weight"] = shard
    index_file.write_text(json.dumps(index))
    report = verify(good, recipe)
    assert checks(report) == {"index-entry"}
    (problem,) = report.problems
    assert problem.where == "model.layers.1.mlp.experts.9.gate_proj.weight"
    assert f"maps it to {shard}, which has no such tensor" in problem.message


def test_nvfp4_projection_without_input_scale(good, recipe):
    drop_tensor(good, f"{EXPERT}.input_scale")
    report = verify(good, recipe)
    assert checks(report) == {"nvfp4-incomplete"}
    (problem,) = report.problems
    assert problem.where == EXPERT
    assert "without input_scale" in problem.message


@pytest.mark.parametrize(
    ("suffix", "value"),
    [
        ("input_scale", math.nan),
        ("weight_scale_2", math.inf),
        ("input_scale", 0.0),
        ("weight_scale_2", -1.0),
    ],
)
def test_non_finite_or_non_positive_scalar_scale(good, recipe, suffix, value):
    path, begin, _ = tensor_offset(good, f"{EXPERT}.{suffix}")
    with path.open("r+b") as fh:
        fh.seek(begin)
        fh.write(struct.pack("<f", value))
    report = verify(good, recipe)
    assert checks(report) == {"scale-invalid"}
    (problem,) = report.problems
    assert problem.where == f"{EXPERT}.{suffix}"
    assert "finite and positive" in problem.message


def test_gate_and_up_global_scales_must_match(good, recipe):
    path, begin, _ = tensor_offset(good, "model.layers.2.mlp.experts.3.up_proj.weight_scale_2")
    with path.open("r+b") as fh:
        fh.seek(begin)
        fh.write(struct.pack("<f", 2.0))
    report = verify(good, recipe)
    assert checks(report) == {"nvfp4-w13-scale"}
    (problem,) = report.problems
    assert problem.where == "model.layers.2.mlp.experts.3"
    assert "1.0 but up_proj.weight_scale_2 is 2.0" in problem.message


def test_nan_block_scale(good, recipe):
    path, begin, _ = tensor_offset(good, f"{EXPERT}.weight_scale")
    with path.open("r+b") as fh:
        fh.seek(begin + 1)
        fh.write(b"\x7f")  # E4M3 NaN
    report = verify(good, recipe)
    (problem,) = report.problems
    assert problem.where == f"{EXPERT}.weight_scale"
    assert "1 NaN" in problem.message


def _rewrite_excludes(folder: Path, edit) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"]["ignore"] = edit(config["quantization_config"]["ignore"])
    (folder / "config.json").write_text(json.dumps(config))
    hf = json.loads((folder / "hf_quant_config.json").read_text())
    hf["quantization"]["exclude_modules"] = edit(hf["quantization"]["exclude_modules"])
    (folder / "hf_quant_config.json").write_text(json.dumps(hf))


def test_exclude_list_missing_bf16_modules(good, recipe):
    # Both files agree with each other, but not with the tensors: the dense layer's MLP is BF16
    # and no pattern names it any more, so SGLang would look for NVFP4 tensors.
    _rewrite_excludes(good, lambda lst: [p for p in lst if p != "model.layers.0.mlp*"])
    report = verify(good, recipe)
    assert checks(report) == {"exclude-disagrees"}
    (problem,) = report.problems
    assert "BF16 module(s) are not named by the exclude list" in problem.message
    assert "model.layers.0.mlp.down_proj" in problem.message


def test_exclude_list_naming_nvfp4_modules(good, recipe):
    _rewrite_excludes(good, lambda lst: [*lst, "model.layers.2.mlp.experts*"])
    report = verify(good, recipe)
    assert checks(report) == {"exclude-disagrees"}
    (problem,) = report.problems
    assert "NVFP4 module(s) are named by the exclude list" in problem.message
    assert "model.layers.2.mlp.experts.0.down_proj (by 'model.layers.2.mlp.experts*')" in (
        problem.message
    )


def test_the_two_exclude_lists_disagree(good, recipe):
    hf = json.loads((good / "hf_quant_config.json").read_text())
    hf["quantization"]["exclude_modules"].append("*lm_head_extra*")
    (good / "hf_quant_config.json").write_text(json.dumps(hf))
    report = verify(good, recipe)
    assert checks(report) == {"exclude-differs"}
    assert "*lm_head_extra*" in report.problems[0].message


def test_exclude_list_lacking_a_recipe_pattern(good, recipe, tmp_path):
    other = ck.build(tmp_path / "other", exclude_shared=False)  # shared experts NVFP4
    report = verify(other, recipe)
    assert "exclude-recipe" in checks(report)
    assert "*shared_experts*" in next(
        p.message for p in report.problems if p.check == "exclude-recipe"
    )


def test_bf16_source_checkpoint_is_not_an_nvfp4_export(good, recipe, tmp_path):
    bf16 = ck.build(tmp_path / "bf16", quant_config_in=())
    report = verify(bf16, recipe)
    assert "quant-config" in checks(report)


def test_sglang_exclude_matching():
    assert excluded_by("model.layers.1.self_attn.o_proj", ("*self_attn*",)) == "*self_attn*"
    assert excluded_by("model.layers.4.eh_proj", ("model.layers.4*",)) == "model.layers.4*"
    assert excluded_by("model.layers.40.eh_proj", ("model.layers.4",)) is None
    assert excluded_by("lm_head", ("lm_head",)) == "lm_head"


# ---------------------------------------------------------------------------------- the CLI


def run(*args: str):
    return CliRunner().invoke(app, ["verify", *args], catch_exceptions=False)


def test_cli_passes_and_modifies_nothing(good):
    before = snapshot(good)
    result = run(str(good))
    assert result.exit_code == 0, result.output
    assert "verified" in result.output
    assert snapshot(good) == before


def run_main(*args: str, monkeypatch) -> int:
    """The console script itself: its error boundary turns typed errors into exit codes."""
    from glm51.cli import main

    monkeypatch.setattr("sys.argv", ["glm51", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code


def test_cli_failure_is_exit_3_with_the_tensor_and_no_traceback(good, monkeypatch, capsys):
    drop_tensor(good, f"{EXPERT}.input_scale")
    before = snapshot(good)
    assert run_main("verify", str(good), monkeypatch=monkeypatch) == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"{EXPERT}: NVFP4 projection without input_scale" in " ".join(err.split())
    assert snapshot(good) == before


def test_cli_write_then_json(good):
    assert run(str(good), "--write").exit_code == 0
    assert (good / mf.MANIFEST).is_file()
    before = snapshot(good)
    result = run(str(good), "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["manifest"] == "matched"
    assert snapshot(good) == before


def test_cli_write_never_replaces_a_manifest_that_disagrees(good):
    assert run(str(good), "--write").exit_code == 0
    recorded = (good / mf.MANIFEST).read_bytes()
    path, begin, _ = tensor_offset(good, f"{EXPERT}.weight")
    with path.open("r+b") as fh:
        fh.seek(begin)
        fh.write(b"\xff")
    result = CliRunner().invoke(app, ["verify", str(good), "--write"])
    assert result.exit_code == InputError.exit_code  # a named error, exit 3
    assert (good / mf.MANIFEST).read_bytes() == recorded


@pytest.mark.parametrize("block", [7, 64, 4096, mf.BLOCK])
def test_tensor_digests_do_not_depend_on_the_read_size(good, block):
    shard = good / ck.shard_names(good)[1]
    header = read_header(shard)
    base = 8 + header.header_len
    raw = shard.read_bytes()[:base] + random.Random(0).randbytes(shard.stat().st_size - base)
    shard.write_bytes(raw)  # distinct bytes everywhere: a misplaced span cannot hide
    digest = mf.hash_file(shard, header, block=block)
    assert digest.sha256 == hashlib.sha256(raw).hexdigest() and digest.size == len(raw)
    for name, info in header.tensors.items():
        want = hashlib.sha256(raw[base + info.begin : base + info.end]).hexdigest()
        assert digest.tensors[name] == want, name
