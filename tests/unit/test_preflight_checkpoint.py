"""Checkpoint checks on checkpoints the tests build (tests/support/checkpoint.py)."""

import json
import struct

import pytest

from glm51.checkpoint.safetensors import ShardError, read_header
from glm51.preflight import checkpoint
from glm51.preflight.findings import Severity
from tests.support import checkpoint as ckpt


def run(path, recipe, profile):
    found, facts = checkpoint.check(path, recipe, profile)
    return {f.check: f for f in found}, facts


def test_builder_writes_the_real_layout(tmp_path):
    path = ckpt.build(tmp_path / "m")
    index = json.loads((path / "model.safetensors.index.json").read_text())["weight_map"]
    expert = "model.layers.1.mlp.experts.0.gate_proj"
    header = read_header(path / index[f"{expert}.weight"])
    dtypes = {
        k: header.tensors[f"{expert}.{k}"].dtype
        for k in ("weight", "weight_scale", "weight_scale_2", "input_scale")
    }
    assert dtypes == {
        "weight": "U8",
        "weight_scale": "F8_E4M3",
        "weight_scale_2": "F32",
        "input_scale": "F32",
    }
    assert header.tensors[f"{expert}.weight"].shape == (32, 32)  # [I, H/2]
    assert header.tensors[f"{expert}.weight_scale"].shape == (32, 4)  # [I, H/16]
    for name in (
        "model.layers.1.mlp.shared_experts.down_proj.weight",
        "model.layers.0.self_attn.indexer.wk.weight",
        "lm_head.weight",
        "model.layers.4.eh_proj.weight",
    ):
        assert name in index
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "glm_moe_dsa"
    assert config["quantization_config"]["quant_method"] == "modelopt"
    assert len(set(index.values())) == 4


def test_good_checkpoint_has_no_findings(tmp_path, recipe, profile):
    found, facts = run(ckpt.build(tmp_path / "m"), recipe, profile)
    assert found == {}
    assert facts.quant.source == "config.json quantization_config"
    assert facts.quant.group_size == 16
    assert facts.shared_experts_excluded()


def test_reads_hf_quant_config_json_when_config_has_none(tmp_path, recipe, profile):
    path = ckpt.build(tmp_path / "m", quant_config_in=("hf_quant_config.json",))
    found, facts = run(path, recipe, profile)
    assert found == {}
    assert facts.quant.source == "hf_quant_config.json"


def test_no_quant_config(tmp_path, recipe, profile):
    found, _ = run(ckpt.build(tmp_path / "m", quant_config_in=()), recipe, profile)
    assert "quantize the BF16 experts on load" in found["checkpoint.quant-config"].message


def test_missing_shard(tmp_path, recipe, profile):
    path = ckpt.build(tmp_path / "m")
    name = ckpt.drop_shard(path, 2)
    finding = run(path, recipe, profile)[0]["checkpoint.shard-missing"]
    assert finding.severity is Severity.ERROR
    assert f"are missing: {name}" in finding.message


@pytest.mark.parametrize(
    ("part", "check", "words"),
    [
        ("header", "checkpoint.shard-header", "truncated or corrupt header"),
        ("data", "checkpoint.shard-data", "truncated or corrupt data"),
    ],
)
def test_truncated_shard(tmp_path, recipe, profile, part, check, words):
    path = ckpt.build(tmp_path / "m")
    name = ckpt.truncate_shard(path, 3, part=part)
    found = run(path, recipe, profile)[0]
    assert found[check].message.startswith(f"{path / name}: {words}")
    assert f"re-download {name}" in found[check].fix


@pytest.mark.parametrize("short_by", [1, 7])
def test_shard_short_by_any_bytes_is_flagged(tmp_path, recipe, profile, short_by):
    path = ckpt.build(tmp_path / "m")
    name = ckpt.truncate_shard(path, 2, short_by=short_by)
    finding = run(path, recipe, profile)[0]["checkpoint.shard-data"]
    assert finding.severity is Severity.ERROR
    assert finding.message.endswith(f"({short_by} missing)")
    assert str(path / name) in finding.message


def test_wrong_model_type(tmp_path, recipe, profile):
    found = run(ckpt.build(tmp_path / "m", model_type="deepseek_v3"), recipe, profile)[0]
    assert (
        "model_type is 'deepseek_v3', not 'glm_moe_dsa'" in found["checkpoint.model-type"].message
    )


def test_not_nvfp4(tmp_path, recipe, profile):
    found = run(ckpt.build(tmp_path / "m", quant_algo="FP8"), recipe, profile)[0]
    assert "quant_algo is 'FP8', not 'NVFP4'" in found["checkpoint.quant-algo"].message


def test_wrong_group_size(tmp_path, recipe, profile):
    found = run(ckpt.build(tmp_path / "m", group_size=32), recipe, profile)[0]
    assert "group_size is 32" in found["checkpoint.group-size"].message


def test_nextn_without_mtp(tmp_path, recipe, profile):
    found = run(ckpt.build(tmp_path / "m", mtp=False), recipe, profile)[0]
    finding = found["checkpoint.mtp-missing"]
    assert "NEXTN" in finding.message and "model.layers.4.*" in finding.message


def test_no_mtp_is_fine_without_speculative_decoding(tmp_path, recipe, profile):
    plain = profile.model_copy(
        update={"server": profile.server.model_copy(update={"speculative": None})}
    )
    assert run(ckpt.build(tmp_path / "m", mtp=False), recipe, plain)[0] == {}


def test_index_entry_not_in_its_shard(tmp_path, recipe, profile):
    path = ckpt.build(tmp_path / "m")
    index_file = path / "model.safetensors.index.json"
    index = json.loads(index_file.read_text())
    index["weight_map"]["model.layers.1.mlp.experts.9.up_proj.weight"] = ckpt.shard_names(path)[0]
    index_file.write_text(json.dumps(index))
    found = run(path, recipe, profile)[0]
    assert (
        "model.layers.1.mlp.experts.9.up_proj.weight" in found["checkpoint.tensor-missing"].message
    )


def test_bf16_experts_are_not_nvfp4(tmp_path, recipe, profile):
    path = ckpt.build(tmp_path / "m")
    shard = ckpt.shard_names(path)[1]
    raw = (path / shard).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    name = next(k for k in header if k.endswith("experts.0.down_proj.weight"))
    header[name]["dtype"] = "BF16"  # same byte count is not needed: only the header is read
    ckpt.write_safetensors(
        path / shard,
        {k: (v["dtype"], tuple(v["shape"])) for k, v in header.items() if k != "__metadata__"},
    )
    found = run(path, recipe, profile)[0]
    assert "not packed NVFP4 (U8)" in found["checkpoint.expert-dtype"].message


def test_safetensors_reader_rejects_garbage(tmp_path):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(struct.pack("<Q", 4) + b"nope")
    with pytest.raises(ShardError, match="not valid JSON"):
        read_header(bad)
    bad.write_bytes(b"abc")
    with pytest.raises(ShardError, match="shorter than the 8-byte header length"):
        read_header(bad)


def test_hf_quant_config_that_differs_is_a_warning(tmp_path, recipe, profile):
    path = ckpt.build(tmp_path / "m")
    hf_quant = path / "hf_quant_config.json"
    data = json.loads(hf_quant.read_text())
    data["quantization"]["exclude_modules"] = ["lm_head"]
    hf_quant.write_text(json.dumps(data))
    finding = run(path, recipe, profile)[0]["checkpoint.quant-config-differs"]
    assert finding.severity is Severity.WARNING
    assert "SGLang uses config.json's" in finding.message
