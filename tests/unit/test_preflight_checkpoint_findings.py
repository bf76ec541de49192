"""The serve preflight's checkpoint findings, exactly: each message, fix and severity, and
which checks stop the others (tests/support/checkpoint.py builds the checkpoints)."""

import json

import pytest

from glm51.preflight import checkpoint
from glm51.preflight.findings import Severity
from tests.support import checkpoint as ckpt

INDEX = "model.safetensors.index.json"


def run(path, recipe, profile):
    found, facts = checkpoint.check(path, recipe, profile)
    return {f.check: f for f in found}, facts


def edit_json(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_no_config_is_the_only_finding(tmp_path, recipe, profile):
    (tmp_path / "m").mkdir()
    found, facts = checkpoint.check(tmp_path / "m", recipe, profile)
    assert [(f.check, f.severity) for f in found] == [("checkpoint.config", Severity.ERROR)]
    assert f"{tmp_path / 'm'}" in found[0].message and "config.json" in found[0].message
    assert found[0].fix == "point --model at the checkpoint folder (it holds config.json)"
    assert facts.quant is None and facts.config == {}


def test_model_type_exactly(tmp_path, recipe, profile):
    path = ckpt.build(tmp_path / "m", model_type="deepseek_v3")
    finding = run(path, recipe, profile)[0]["checkpoint.model-type"]
    assert finding.severity is Severity.ERROR
    assert finding.message == (
        f"{path / 'config.json'}: model_type is 'deepseek_v3', not 'glm_moe_dsa'"
    )
    assert finding.fix == f"serve a GLM-5.1 checkpoint ({recipe.model.published})"


def test_no_quant_config_exactly(tmp_path, recipe, profile):
    found, facts = run(ckpt.build(tmp_path / "m", quant_config_in=()), recipe, profile)
    finding = found["checkpoint.quant-config"]
    assert finding.severity is Severity.ERROR
    assert finding.message == (
        "no quantization config: neither config.json quantization_config nor "
        "hf_quant_config.json (SGLang would quantize the BF16 experts on load instead of "
        "serving NVFP4 weights)"
    )
    assert finding.fix == "serve the NVFP4 export (glm51 quantize writes both files)"
    assert facts.quant is None


def test_unreadable_hf_quant_config(tmp_path, recipe, profile):
    path = ckpt.build(tmp_path / "m", quant_config_in=("hf_quant_config.json",))
    (path / "hf_quant_config.json").write_text("{not json")
    found, facts = run(path, recipe, profile)
    finding = found["checkpoint.quant-config"]
    assert finding.severity is Severity.ERROR and "hf_quant_config.json" in finding.message
    assert finding.fix == "re-download hf_quant_config.json"
    assert facts.quant is None
    assert "checkpoint.shard-missing" not in found  # the other checks still ran: none fired


def test_quant_method_exactly(tmp_path, recipe, profile):
    path = ckpt.build(tmp_path / "m")
    edit_json(
        path / "config.json",
        lambda c: c["quantization_config"].update(quant_method="compressed-tensors"),
    )
    finding = run(path, recipe, profile)[0]["checkpoint.quant-method"]
    assert finding.severity is Severity.ERROR
    assert finding.message == (
        "config.json quantization_config: quant_method is 'compressed-tensors', not 'modelopt'"
    )
    assert finding.fix == "serve a ModelOpt NVFP4 export"


def test_quant_algo_exactly_and_it_hides_the_group_size(tmp_path, recipe, profile):
    path = ckpt.build(tmp_path / "m", quant_algo="FP8", group_size=32)
    found = run(path, recipe, profile)[0]
    assert "checkpoint.group-size" not in found
    finding = found["checkpoint.quant-algo"]
    assert finding.severity is Severity.ERROR
    assert finding.message == "config.json quantization_config: quant_algo is 'FP8', not 'NVFP4'"
    assert finding.fix == (
        "serve a ModelOpt NVFP4 checkpoint (this profile renders --quantization modelopt_fp4)"
    )


def test_group_size_exactly(tmp_path, recipe, profile):
    found = run(ckpt.build(tmp_path / "m", group_size=32), recipe, profile)[0]
    finding = found["checkpoint.group-size"]
    assert finding.severity is Severity.ERROR
    assert finding.message == "config.json quantization_config: group_size is 32, NVFP4 needs 16"
    assert finding.fix == "re-export the checkpoint with group_size 16"


def test_quant_configs_that_differ_exactly(tmp_path, recipe, profile):
    path = ckpt.build(tmp_path / "m")
    config_excludes = len(
        json.loads((path / "config.json").read_text())["quantization_config"]["ignore"]
    )
    edit_json(
        path / "hf_quant_config.json",
        lambda d: d["quantization"].update(exclude_modules=["lm_head"], group_size=32),
    )
    finding = run(path, recipe, profile)[0]["checkpoint.quant-config-differs"]
    assert finding.severity is Severity.WARNING
    assert finding.message == (
        "hf_quant_config.json (quant_algo NVFP4, group_size 32, 1 exclusions) differs from "
        f"config.json quantization_config (quant_algo NVFP4, group_size 16, {config_excludes} "
        "exclusions); SGLang uses config.json's"
    )
    assert finding.fix == "re-export the checkpoint so both files agree"


@pytest.mark.parametrize("field", ["quant_algo", "group_size"])
def test_each_differing_field_is_noticed(tmp_path, recipe, profile, field):
    path = ckpt.build(tmp_path / "m")
    value = {"quant_algo": "FP8", "group_size": 32}[field]
    edit_json(path / "hf_quant_config.json", lambda d: d["quantization"].update({field: value}))
    assert "checkpoint.quant-config-differs" in run(path, recipe, profile)[0]


def test_agreeing_quant_configs_in_another_order_pass(tmp_path, recipe, profile):
    path = ckpt.build(tmp_path / "m")
    edit_json(
        path / "hf_quant_config.json",
        lambda d: d["quantization"].update(
            exclude_modules=d["quantization"]["exclude_modules"][::-1]
        ),
    )
    assert run(path, recipe, profile)[0] == {}


def test_agreement_is_only_checked_when_config_json_has_the_copy(tmp_path, recipe, profile):
    path = ckpt.build(tmp_path / "m")
    (path / "hf_quant_config.json").write_text("{not json")  # unreadable: not a second opinion
    assert run(path, recipe, profile)[0] == {}
    (path / "hf_quant_config.json").write_text("{}")  # readable but empty: it differs
    assert "checkpoint.quant-config-differs" in run(path, recipe, profile)[0]
    (path / "hf_quant_config.json").unlink()
    assert run(path, recipe, profile)[0] == {}


def test_bf16_experts_exactly_and_the_mtp_layer_may_stay_bf16(tmp_path, recipe, profile):
    path = ckpt.build(tmp_path / "m")
    retyped = []
    for shard in ckpt.shard_names(path):
        raw = (path / shard).read_bytes()
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + n])
        entries = {
            k: (v["dtype"], tuple(v["shape"])) for k, v in header.items() if k != "__metadata__"
        }
        for name in entries:
            if name.endswith(("experts.0.down_proj.weight", "experts.1.down_proj.weight")):
                entries[name] = ("BF16", entries[name][1])
                retyped.append(name)
        ckpt.write_safetensors(path / shard, entries)
    decoder = sorted(n for n in retyped if not n.startswith("model.layers.4."))
    assert len(decoder) < len(retyped)  # the MTP layer (4) was retyped too
    finding = run(path, recipe, profile)[0]["checkpoint.expert-dtype"]
    assert finding.severity is Severity.ERROR
    shown = ", ".join(decoder[:5]) + (f" and {len(decoder) - 5} more" if len(decoder) > 5 else "")
    assert finding.message == (
        f"{len(decoder)} routed expert weight(s) are BF16, not packed NVFP4 (U8): {shown}"
    )
    assert finding.fix == "serve the NVFP4 export, not the BF16 source checkpoint"


def test_no_index_stops_before_the_shard_and_mtp_checks(tmp_path, recipe, profile):
    path = ckpt.build(tmp_path / "m", mtp=False)
    (path / INDEX).unlink()
    found, facts = checkpoint.check(path, recipe, profile)
    assert [f.check for f in found] == ["checkpoint.index"]
    assert found[0].severity is Severity.ERROR
    assert found[0].fix == "re-download model.safetensors.index.json"
    assert facts.quant is not None


def test_shard_problems_are_errors(tmp_path, recipe, profile):
    path = ckpt.build(tmp_path / "m")
    ckpt.drop_shard(path, 1)
    finding = run(path, recipe, profile)[0]["checkpoint.shard-missing"]
    assert finding.severity is Severity.ERROR
    assert finding.fix == "finish the download (hf download ... resumes) or copy the missing files"


def test_mtp_missing_exactly(tmp_path, recipe, profile):
    found = run(ckpt.build(tmp_path / "m", mtp=False), recipe, profile)[0]
    finding = found["checkpoint.mtp-missing"]
    assert finding.severity is Severity.ERROR
    assert finding.message == (
        f"the profile uses NEXTN speculative decoding but {INDEX} has no MTP layer "
        "(model.layers.4.*, num_hidden_layers 4)"
    )
    assert finding.fix == (
        "serve a checkpoint that keeps the MTP layer, or a profile without speculative decoding"
    )


def test_eagle_does_not_need_the_mtp_layer(tmp_path, recipe, profile):
    spec = profile.server.speculative.model_copy(update={"algorithm": "EAGLE"})
    eagle = profile.model_copy(
        update={"server": profile.server.model_copy(update={"speculative": spec})}
    )
    assert run(ckpt.build(tmp_path / "m", mtp=False), recipe, eagle)[0] == {}


def test_an_unreadable_index_is_named(tmp_path, recipe, profile):
    path = ckpt.build(tmp_path / "m")
    (path / INDEX).write_text("{not json")
    finding = run(path, recipe, profile)[0]["checkpoint.index"]
    assert str(path / INDEX) in finding.message


def test_without_num_hidden_layers_no_expert_is_judged_a_decoder_one(tmp_path, recipe, profile):
    # Every layer has routed experts here; a BF16 one in layer 0 is an error only when the
    # config says layer 0 is a decoder layer.
    path = ckpt.build(tmp_path / "m", sizes=ckpt.Sizes(first_k_dense_replace=0))
    for shard in ckpt.shard_names(path):
        raw = (path / shard).read_bytes()
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + n])
        entries = {
            k: (v["dtype"], tuple(v["shape"])) for k, v in header.items() if k != "__metadata__"
        }
        for name in entries:
            if name == "model.layers.0.mlp.experts.0.up_proj.weight":
                entries[name] = ("BF16", entries[name][1])
        ckpt.write_safetensors(path / shard, entries)
    assert "checkpoint.expert-dtype" in run(path, recipe, profile)[0]
    edit_json(path / "config.json", lambda c: c.pop("num_hidden_layers"))
    found = run(path, recipe, profile)[0]
    assert "checkpoint.expert-dtype" not in found
