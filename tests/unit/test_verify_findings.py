"""`glm51 verify`'s problems exactly: where and what for each check, the structure of the
folder, the quantization configs, the NVFP4 parts and scales (tests/unit/test_verify.py has
the scenarios; this file pins the words and the boundaries)."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pytest

from glm51.checkpoint.safetensors import read_header
from glm51.checkpoint.verify import (
    DeepResult,
    Problem,
    QuantConfigs,
    Report,
    excluded_by,
    sample_modules,
    verify,
)
from glm51.findings import Severity
from tests.support import checkpoint as ck
from tests.support.checkpoint import EXPERT, drop_tensor, shard_of, tensor_offset

INDEX = "model.safetensors.index.json"


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return ck.build(tmp_path / "ckpt")


def problems(report):
    return [(p.check, p.where, p.message) for p in report.problems]


def retype(folder: Path, tensor: str, *, dtype=None, shape=None) -> None:
    """Rewrite the tensor's shard with the tensor's dtype or shape changed (data regenerated)."""
    path = folder / shard_of(folder, tensor)
    header = read_header(path)
    entries = {n: (i.dtype, i.shape) for n, i in header.tensors.items()}
    old = entries[tensor]
    entries[tensor] = (dtype or old[0], tuple(shape) if shape is not None else old[1])
    ck.write_safetensors(path, entries)


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_problem_text_report_ok_and_json():
    report = Report(Path("/x"))
    assert report.ok
    report.add("c", "w", "m")
    assert not report.ok and str(report.problems[0]) == "w: m"
    assert report.problems == [Problem("c", Severity.ERROR, "m", where="w")]
    assert report.problems[0].line() == "[error] c: w: m"  # preflight's Finding: one type
    report.deep.append(DeepResult("mod", math.nan, math.inf, False))
    report.deep.append(DeepResult("ok", 0.1, 0.2, True))
    data = json.loads(report.to_json())
    assert data["folder"] == "/x" and data["ok"] is False
    assert data["problems"] == [{"check": "c", "where": "w", "message": "m"}]
    assert data["written_by"] == "glm51 verify"  # a record a re-run may replace
    assert data["deep"][0]["rel_error"] is None and data["deep"][0]["max_abs_error"] is None
    assert data["deep"][1]["rel_error"] == 0.1 and data["deep"][1]["max_abs_error"] == 0.2
    assert report.to_json().endswith("}\n") and '\n  "folder"' in report.to_json()


def test_sample_modules_is_a_seeded_sorted_spread():
    modules = [f"m{i}" for i in range(20)]
    picked = sample_modules(modules, 5)
    assert len(picked) == 5 and picked == sorted(picked) and set(picked) <= set(modules)
    assert sample_modules(list(reversed(modules)), 5) == picked
    assert sample_modules(modules, 5, seed=1) != picked
    assert sample_modules(modules, 50) == sorted(modules)


def test_quant_configs_prefer_config_json():
    assert QuantConfigs(("a",), ("b",)).exclude == ("a",)
    assert QuantConfigs((), ("b",)).exclude == ()
    assert QuantConfigs(None, ("b",)).exclude == ("b",)
    assert QuantConfigs(None, None).exclude == ()


def test_excluded_by_parts_and_full_names():
    assert excluded_by("model.layers.3.mlp.gate", ("gate",)) == "gate"
    assert excluded_by("model.layers.3.mlp.gate", ("x", "mlp", "gate")) == "mlp"
    assert excluded_by("model.layers.3.mlp.gate", ("layers.3",)) is None
    assert excluded_by("model.layers.3.mlp.gate", ("model.layers.3.*",)) == "model.layers.3.*"
    assert excluded_by("modelXlayers", ("model.layers",)) is None  # '.' is a literal dot


def test_a_folder_that_is_not_one(tmp_path, recipe):
    from glm51.errors import InputError

    with pytest.raises(InputError, match=r"not a checkpoint folder$"):
        verify(tmp_path / "none", recipe)


def test_no_index_and_several_shards(good, recipe):
    (good / INDEX).unlink()
    report = verify(good, recipe, hash_contents=False)
    assert problems(report) == [("index", INDEX, "missing (the folder has 4 shard(s))")]


def test_one_shard_without_an_index_is_its_own_map(tmp_path, recipe):
    folder = ck.build(tmp_path / "one", shards=1)
    (only,) = ck.shard_names(folder)
    (folder / INDEX).unlink()
    (folder / only).rename(folder / "model.safetensors")
    report = verify(folder, recipe, hash_contents=False)
    header = read_header(folder / "model.safetensors")
    assert report.shards == 1 and report.tensors == len(header.tensors)
    assert report.nvfp4_modules > 0 and report.ok, problems(report)


def test_an_index_without_a_weight_map(good, recipe):
    (good / INDEX).write_text("{}")
    assert problems(verify(good, recipe, hash_contents=False)) == [
        ("index", INDEX, "has no weight_map object")
    ]
    (good / INDEX).write_text("{not json")
    ((check, where, message),) = problems(verify(good, recipe, hash_contents=False))
    assert (check, where) == ("index", INDEX) and message.startswith("not readable JSON (")


def test_counts_of_shards_and_tensors(good, recipe):
    report = verify(good, recipe, hash_contents=False)
    weight_map = json.loads((good / INDEX).read_text())["weight_map"]
    assert report.shards == 4 and report.tensors == len(weight_map)
    assert report.nvfp4_modules == 4 * 3 * 3  # 3 MoE layers x 4 experts x 3 projections
    assert report.bf16_modules > 0


def test_missing_shard_exactly(good, recipe):
    name = ck.drop_shard(good, 1)
    weight_map = json.loads((good / INDEX).read_text())["weight_map"]
    names = sorted(n for n, s in weight_map.items() if s == name)
    listed = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    report = verify(good, recipe, hash_contents=False)
    assert (
        "shard-missing",
        name,
        f"missing: {INDEX} maps {len(names)} tensor(s) to it ({listed})",
    ) in problems(report)


def test_truncated_shards_exactly(good, recipe):
    data = ck.truncate_shard(good, 1, short_by=1)
    head = ck.truncate_shard(good, 2, part="header")
    found = {p.where: p for p in verify(good, recipe, hash_contents=False).problems}
    assert found[data].check == "shard-data"
    assert found[data].message.startswith("truncated or corrupt data (the file is cut short): ")
    assert found[data].message.endswith("(1 missing)")
    assert found[head].check == "shard-header"
    assert found[head].message.startswith("truncated or corrupt header: header declares")


def test_unreferenced_unindexed_and_duplicate_tensors(good, recipe):
    names = ck.shard_names(good)
    (good / "model-extra.safetensors").write_bytes((good / names[0]).read_bytes())
    tensor = f"{EXPERT}.input_scale"
    edit_json(good / INDEX, lambda d: d["weight_map"].pop(tensor))
    other = next(n for n in names if n != shard_of_name(good, f"{EXPERT}.weight"))
    moved = f"{EXPERT}.weight_scale_2"
    edit_json(good / INDEX, lambda d: d["weight_map"].__setitem__(moved, other))
    found = problems(verify(good, recipe, hash_contents=False))
    home = shard_of_name(good, f"{EXPERT}.weight")
    assert (
        "shard-unreferenced",
        "model-extra.safetensors",
        f"is not referenced by {INDEX}",
    ) in found
    assert (
        "tensor-unindexed",
        home,
        f"holds 1 tensor(s) that {INDEX} does not list: {tensor}",
    ) in found
    assert (
        "tensor-duplicate",
        home,
        f"holds 1 tensor(s) that {INDEX} maps to another shard: {moved}",
    ) in found
    assert ("index-entry", moved, f"{INDEX} maps it to {other}, which has no such tensor") in found


def shard_of_name(folder: Path, tensor: str) -> str:
    for shard in ck.shard_names(folder):
        if tensor in read_header(folder / shard).tensors:
            return shard
    raise AssertionError(tensor)


def test_config_problems_exactly(good, recipe):
    edit_json(good / "config.json", lambda c: c.update(model_type="deepseek_v3"))
    edit_json(
        good / "config.json",
        lambda c: c["quantization_config"].update(quant_algo="FP8", quant_method="gptq"),
    )
    edit_json(
        good / "hf_quant_config.json",
        lambda d: d["quantization"].update(quant_algo="FP8", group_size=32),
    )
    found = problems(verify(good, recipe, hash_contents=False))
    assert (
        "config",
        "config.json",
        "model_type is 'deepseek_v3', the recipe says 'glm_moe_dsa'",
    ) in found
    assert (
        "quant-config",
        "config.json",
        "quantization_config.quant_algo is 'FP8', the recipe says 'NVFP4'",
    ) in found
    assert (
        "quant-config",
        "config.json",
        "quantization_config.quant_method is 'gptq', not 'modelopt'",
    ) in found
    assert (
        "quant-config",
        "hf_quant_config.json",
        "quantization.quant_algo is 'FP8', the recipe says 'NVFP4'",
    ) in found
    assert (
        "quant-config",
        "hf_quant_config.json",
        "quantization.group_size is 32, the recipe says 16",
    ) in found


def test_a_nested_quantization_config_is_read(good, recipe):
    def nest(c):
        qc = c["quantization_config"]
        c["quantization_config"] = {
            "quant_method": "modelopt",
            "quantization": {"quant_algo": qc["quant_algo"], "exclude_modules": qc["ignore"]},
        }

    edit_json(good / "config.json", nest)
    assert verify(good, recipe, hash_contents=False).ok


def test_hf_quant_config_without_its_section_and_no_config_at_all(good, recipe, tmp_path):
    (good / "hf_quant_config.json").write_text("{}")
    assert ("quant-config", "hf_quant_config.json", "has no 'quantization' object") in problems(
        verify(good, recipe, hash_contents=False)
    )
    bare = ck.build(tmp_path / "bare", quant_config_in=())
    found = problems(verify(bare, recipe, hash_contents=False))
    assert (
        "quant-config",
        "config.json",
        "no quantization config (neither config.json quantization_config nor "
        "hf_quant_config.json): not an NVFP4 export",
    ) in found
    assert not [p for p in found if p[0] == "exclude-recipe"]


def test_exclude_lists_that_differ_exactly(good, recipe):
    edit_json(
        good / "hf_quant_config.json", lambda d: d["quantization"]["exclude_modules"].append("*x*")
    )
    edit_json(good / "config.json", lambda c: c["quantization_config"]["ignore"].append("*y*"))
    found = [
        p for p in problems(verify(good, recipe, hash_contents=False)) if p[0] == "exclude-differs"
    ]
    assert found == [
        (
            "exclude-differs",
            "hf_quant_config.json",
            "exclude_modules differs from config.json quantization_config.ignore "
            "(only in config.json: ['*y*']; only in hf_quant_config.json: ['*x*'])",
        )
    ]


def test_exclude_recipe_names_the_file_it_read(tmp_path, recipe):
    shared = ck.build(
        tmp_path / "s", exclude_shared=False, quant_config_in=("hf_quant_config.json",)
    )
    found = [
        p for p in problems(verify(shared, recipe, hash_contents=False)) if p[0] == "exclude-recipe"
    ]
    assert found == [
        (
            "exclude-recipe",
            "hf_quant_config.json",
            "the exclude list lacks the recipe's keep_bf16 pattern(s) ['*shared_experts*']",
        )
    ]


def test_nvfp4_incomplete_exactly(good, recipe):
    drop_tensor(good, f"{EXPERT}.input_scale")
    drop_tensor(good, f"{EXPERT}.weight_scale_2")
    assert problems(verify(good, recipe, hash_contents=False)) == [
        (
            "nvfp4-incomplete",
            EXPERT,
            "NVFP4 projection without weight_scale_2, input_scale (expected weight U8, "
            "weight_scale F8_E4M3, weight_scale_2 F32 [], input_scale F32 [])",
        )
    ]


def test_nvfp4_dtype_exactly(good, recipe):
    retype(good, f"{EXPERT}.weight_scale", dtype="U8")
    found = problems(verify(good, recipe, hash_contents=False))
    assert found == [
        (
            "nvfp4-dtype",
            f"{EXPERT}.weight_scale",
            "is U8, an NVFP4 projection's weight_scale is F8_E4M3",
        )
    ]


@pytest.mark.parametrize(
    ("shape", "ok"), [((), True), ((1,), True), ((2,), False), ((1, 1), False)]
)
def test_scalar_scale_shapes(good, recipe, shape, ok):
    retype(good, f"{EXPERT}.input_scale", shape=shape)
    found = [
        p for p in problems(verify(good, recipe, hash_contents=False)) if p[0] == "nvfp4-shape"
    ]
    assert found == (
        []
        if ok
        else [
            (
                "nvfp4-shape",
                f"{EXPERT}.input_scale",
                f"has shape {list(shape)}, expected a scalar []",
            )
        ]
    )


def test_block_scale_shape_exactly(good, recipe):
    w = read_header(good / shard_of(good, f"{EXPERT}.weight")).tensors[f"{EXPERT}.weight"].shape
    retype(good, f"{EXPERT}.weight_scale", shape=(w[0], w[1] * 2 // 16 + 1))
    found = [
        p for p in problems(verify(good, recipe, hash_contents=False)) if p[0] == "nvfp4-shape"
    ]
    assert found == [
        (
            "nvfp4-shape",
            f"{EXPERT}.weight_scale",
            f"has shape [{w[0]}, {w[1] * 2 // 16 + 1}]; weight [{w[0]}, {w[1]}] packs {w[1] * 2} "
            f"inputs per row, so one scale per 16 is [{w[0]}, {w[1] * 2 // 16}]",
        )
    ]
    retype(good, f"{EXPERT}.weight", shape=(w[0] * w[1],))
    found = [
        p for p in problems(verify(good, recipe, hash_contents=False)) if p[0] == "nvfp4-shape"
    ]
    assert found[0][2].endswith("packs ? inputs per row, so one scale per 16 is 2-D")


def test_expert_weight_against_the_config(good, recipe):
    edit_json(good / "config.json", lambda c: c.update(hidden_size=128))
    found = [
        p for p in problems(verify(good, recipe, hash_contents=False)) if p[0] == "nvfp4-shape"
    ]
    gate = next(p for p in found if p[1] == f"{EXPERT}.weight")
    assert gate[2] == (
        "unpacks to [32, 64], config.json says [32, 128] "
        "(hidden_size 128, moe_intermediate_size 32)"
    )
    down = "model.layers.1.mlp.experts.0.down_proj.weight"
    assert next(p for p in found if p[1] == down)[2].startswith(
        "unpacks to [64, 32], config.json says [128, 32]"
    )
    edit_json(good / "config.json", lambda c: c.pop("hidden_size"))
    found = [
        p for p in problems(verify(good, recipe, hash_contents=False)) if p[0] == "nvfp4-shape"
    ]
    assert found == []  # without the size in config.json it is not judged


@pytest.mark.parametrize(("value", "shown"), [(0.0, "0.0"), (-2.5, "-2.5"), (math.inf, "inf")])
def test_scalar_scale_values_exactly(good, recipe, value, shown):
    path, begin, _ = tensor_offset(good, f"{EXPERT}.input_scale")
    with path.open("r+b") as fh:
        fh.seek(begin)
        fh.write(struct.pack("<f", value))
    assert problems(verify(good, recipe, hash_contents=False)) == [
        (
            "scale-invalid",
            f"{EXPERT}.input_scale",
            f"is {shown}: a scale must be finite and positive",
        )
    ]


def test_a_tiny_positive_scale_is_valid(good, recipe):
    path, begin, _ = tensor_offset(good, f"{EXPERT}.input_scale")
    with path.open("r+b") as fh:
        fh.seek(begin)
        fh.write(struct.pack("<f", 1e-30))
    assert verify(good, recipe, hash_contents=False).ok


def test_block_scales_nan_and_negative_counted(good, recipe):
    path, begin, _ = tensor_offset(good, f"{EXPERT}.weight_scale")
    with path.open("r+b") as fh:
        fh.seek(begin)
        fh.write(b"\x7f\xff\x81\xfe\x80\x7e")  # NaN, -NaN, two negatives, -0 and 448 (valid)
    assert problems(verify(good, recipe, hash_contents=False)) == [
        (
            "scale-invalid",
            f"{EXPERT}.weight_scale",
            "has 2 NaN and 2 negative E4M3 block scale(s): block scales must be finite and not "
            "negative",
        )
    ]


def test_quantization_config_variants(good, recipe):
    edit_json(good / "config.json", lambda c: c["quantization_config"].pop("quant_method"))
    assert verify(good, recipe, hash_contents=False).ok  # no quant_method: ModelOpt's default

    def renamed(c):
        c["quantization_config"]["modules_to_not_convert"] = c["quantization_config"].pop("ignore")

    edit_json(good / "config.json", renamed)
    assert verify(good, recipe, hash_contents=False).ok


def test_a_quantization_config_that_is_not_an_object(good, recipe):
    edit_json(
        good / "config.json",
        lambda c: c.update(
            quantization_config={"quant_method": "modelopt", "quantization": "garbage"}
        ),
    )
    found = problems(verify(good, recipe, hash_contents=False))
    assert (
        "quant-config",
        "config.json",
        "quantization_config.quant_algo is None, the recipe says 'NVFP4'",
    ) in found


def test_an_unreadable_or_odd_hf_quant_config(good, recipe):
    (good / "hf_quant_config.json").write_text("{not json")
    found = problems(verify(good, recipe, hash_contents=False))
    (hit,) = [p for p in found if p[1] == "hf_quant_config.json"]
    assert hit[0] == "quant-config" and hit[2].startswith("not readable JSON (")
    (good / "hf_quant_config.json").write_text("[1]")
    assert ("quant-config", "hf_quant_config.json", "has no 'quantization' object") in problems(
        verify(good, recipe, hash_contents=False)
    )


def test_an_invalid_global_scale_is_not_also_a_w13_mismatch(good, recipe):
    path, begin, _ = tensor_offset(good, f"{EXPERT}.weight_scale_2")
    with path.open("rb+") as fh:
        fh.seek(begin)
        fh.write(struct.pack("<f", 0.0))
    assert [p[0] for p in problems(verify(good, recipe, hash_contents=False))] == ["scale-invalid"]


def test_no_manifest_notes_and_write_only_when_everything_passed(good, recipe):
    report = verify(good, recipe)
    assert report.manifest == "absent" and report.notes == [
        "no glm51-manifest.json: the contents were not checked against recorded digests "
        "(`glm51 verify --write` records one once everything else passes)"
    ]
    drop_tensor(good, f"{EXPERT}.input_scale")
    failed = verify(good, recipe, write=True)
    assert failed.manifest == "not-written" and not (good / "glm51-manifest.json").exists()
    assert failed.notes == ["glm51-manifest.json not written: the checks above failed"]


def test_a_written_manifest_records_the_hashing(good, recipe):
    seen: list[int] = []
    report = verify(good, recipe, write=True, progress=seen.append)
    assert report.manifest == "written" and (good / "glm51-manifest.json").is_file()
    total = sum(p.stat().st_size for p in good.iterdir() if p.name != "glm51-manifest.json")
    assert report.hashed_bytes == total == sum(seen)
    assert 0 <= report.hash_seconds < 60
    seen.clear()
    again = verify(good, recipe, progress=seen.append)
    assert again.manifest == "matched" and sum(seen) == total == again.hashed_bytes


def test_manifest_tensor_and_file_mismatches(good, recipe):
    verify(good, recipe, write=True)
    tensor = f"{EXPERT}.input_scale"
    shard = shard_of(good, tensor)
    retype(good, tensor, shape=(1,))
    gone = "hf_quant_config.json"
    (good / gone).unlink()
    found = problems(verify(good, recipe))
    assert (
        "manifest-tensor",
        f"{shard}: {tensor}",
        f"is F32 [1] in {shard}; the manifest recorded F32 [] in {shard}",
    ) in found
    assert ("manifest-file", gone, "is in glm51-manifest.json but missing from the folder") in found


def test_one_quantization_config_is_enough(tmp_path, recipe):
    for only in (("config.json",), ("hf_quant_config.json",)):
        folder = ck.build(tmp_path / only[0], quant_config_in=only)
        assert verify(folder, recipe, hash_contents=False).ok, only


def test_exclude_lists_differ_on_one_side_only(good, recipe):
    edit_json(
        good / "hf_quant_config.json", lambda d: d["quantization"]["exclude_modules"].append("*x*")
    )
    (msg,) = [
        p[2]
        for p in problems(verify(good, recipe, hash_contents=False))
        if p[0] == "exclude-differs"
    ]
    assert msg.endswith("(only in config.json: none; only in hf_quant_config.json: ['*x*'])")
    edit_json(
        good / "hf_quant_config.json", lambda d: d["quantization"]["exclude_modules"].remove("*x*")
    )
    edit_json(good / "config.json", lambda c: c["quantization_config"]["ignore"].append("*y*"))
    (msg,) = [
        p[2]
        for p in problems(verify(good, recipe, hash_contents=False))
        if p[0] == "exclude-differs"
    ]
    assert msg.endswith("(only in config.json: ['*y*']; only in hf_quant_config.json: none)")


def test_config_json_exclude_list_is_the_one_judged(good, recipe):
    edit_json(
        good / "config.json",
        lambda c: c["quantization_config"].update(
            ignore=[p for p in c["quantization_config"]["ignore"] if p != "model.layers.0.mlp*"]
        ),
    )
    checks = [p[0] for p in problems(verify(good, recipe, hash_contents=False))]
    assert checks == ["exclude-differs", "exclude-disagrees"]


def test_exclude_recipe_names_config_json_when_it_has_the_list(tmp_path, recipe):
    shared = ck.build(tmp_path / "s", exclude_shared=False)
    found = [
        p for p in problems(verify(shared, recipe, hash_contents=False)) if p[0] == "exclude-recipe"
    ]
    assert [p[1] for p in found] == ["config.json"]


def test_other_tensors_of_a_projection_are_ignored(good, recipe):
    tensor = f"{EXPERT}.weight"
    path = good / shard_of(good, tensor)
    header = read_header(path)
    entries = {n: (i.dtype, i.shape) for n, i in header.tensors.items()}
    entries[f"{EXPERT}.bias"] = ("BF16", (4,))
    ck.write_safetensors(path, entries)
    edit_json(good / INDEX, lambda d: d["weight_map"].__setitem__(f"{EXPERT}.bias", path.name))
    assert verify(good, recipe, hash_contents=False).ok


def test_checking_against_a_manifest_notes_and_timing(good, recipe):
    verify(good, recipe, write=True)
    plain = verify(good, recipe)
    assert plain.manifest == "matched" and plain.notes == [] and 0 <= plain.hash_seconds < 60
    again = verify(good, recipe, write=True)
    assert again.notes == ["glm51-manifest.json already matches the folder: left as it is"]
    hf = good / "hf_quant_config.json"
    hf.write_text(hf.read_text().replace("0.47.0", "0.47.1"))  # same size, other bytes
    changed = verify(good, recipe, write=True)
    assert changed.manifest == "mismatched"
    assert changed.notes == ["glm51-manifest.json kept: it does not match (fix the folder, not it)"]
    ((check, where, message),) = problems(changed)
    assert (check, where) == ("manifest-digest", "hf_quant_config.json")
    assert "changed tensor" not in message  # not a shard: no tensors to name


def test_a_missing_config_json(good, recipe):
    (good / "config.json").unlink()
    assert ("config", "config.json", "missing") in problems(
        verify(good, recipe, hash_contents=False)
    )


def test_a_truncated_single_shard(tmp_path, recipe):
    folder = ck.build(tmp_path / "one", shards=1)
    (only,) = ck.shard_names(folder)
    (folder / INDEX).unlink()
    (folder / only).rename(folder / "model.safetensors")
    raw = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(raw[:-1])
    ((check, where, message),) = problems(verify(folder, recipe, hash_contents=False))
    assert (check, where) == ("shard-data", "model.safetensors")
    assert message.startswith("truncated or corrupt: tensors end at byte")


def test_a_projection_with_no_scales_is_nvfp4_by_its_packed_weight(good, recipe):
    for suffix in ("weight_scale", "weight_scale_2", "input_scale"):
        drop_tensor(good, f"{EXPERT}.{suffix}")
    assert problems(verify(good, recipe, hash_contents=False)) == [
        (
            "nvfp4-incomplete",
            EXPERT,
            "NVFP4 projection without weight_scale, weight_scale_2, input_scale (expected weight "
            "U8, weight_scale F8_E4M3, weight_scale_2 F32 [], input_scale F32 [])",
        )
    ]


@pytest.mark.parametrize("kept", ["weight_scale", "weight_scale_2", "input_scale"])
def test_any_one_scale_makes_a_projection_nvfp4(good, recipe, kept):
    for suffix in {"weight_scale", "weight_scale_2", "input_scale"} - {kept}:
        drop_tensor(good, f"{EXPERT}.{suffix}")
    w = read_header(good / shard_of(good, f"{EXPERT}.weight")).tensors[f"{EXPERT}.weight"].shape
    retype(good, f"{EXPERT}.weight", dtype="BF16", shape=(w[0], w[1] * 2))
    found = problems(verify(good, recipe, hash_contents=False))
    assert (
        "nvfp4-dtype",
        f"{EXPERT}.weight",
        "is BF16, an NVFP4 projection's weight is U8",
    ) in found


def test_a_scalar_scale_of_two_values_is_named(good, recipe):
    retype(good, f"{EXPERT}.input_scale", shape=(2,))
    found = problems(verify(good, recipe, hash_contents=False))
    assert ("scale-invalid", f"{EXPERT}.input_scale", "holds 8 bytes, a F32 scalar 4") in found


def test_where_the_exclude_and_recipe_problems_point(good, recipe, tmp_path):
    edit_json(
        good / "config.json",
        lambda c: c["quantization_config"].update(
            ignore=[p for p in c["quantization_config"]["ignore"] if p != "model.layers.0.mlp*"]
        ),
    )
    wheres = {p[0]: p[1] for p in problems(verify(good, recipe, hash_contents=False))}
    assert wheres["exclude-disagrees"] == "exclude list"
    shared = ck.build(tmp_path / "s", exclude_shared=False)
    found = [
        p for p in problems(verify(shared, recipe, hash_contents=False)) if p[0] == "layout-recipe"
    ]
    assert len(found) == 1 and found[0][1] == "recipe"
    assert found[0][2].startswith(
        f"9 NVFP4 module(s) match none of the recipe's quantize patterns "
        f"{list(recipe.quantize.quantize)}: model.layers.1.mlp.shared_experts.down_proj"
    ) and found[0][2].endswith(" and 4 more")


def test_bf16_modules_are_counted(good, recipe):
    report = verify(good, recipe, hash_contents=False)
    headers = {n: read_header(good / n) for n in ck.shard_names(good)}
    names = {n: i for h in headers.values() for n, i in h.tensors.items()}
    bf16 = [
        n.rpartition(".")[0]
        for n, i in names.items()
        if n.endswith(".weight")
        and len(i.shape) == 2
        and i.dtype != "U8"
        and f"{n.rpartition('.')[0]}.weight_scale" not in names
    ]
    assert report.bf16_modules == len(bf16) > 1


def test_a_checkpoint_without_nvfp4_modules(good, recipe):
    for shard in ck.shard_names(good):
        path = good / shard
        header = read_header(path)
        entries = {}
        for n, i in header.tensors.items():
            suffix = n.rpartition(".")[2]
            if suffix in ("weight_scale", "weight_scale_2", "input_scale"):
                continue
            entries[n] = (
                ("BF16", (i.shape[0], i.shape[1] * 2)) if i.dtype == "U8" else (i.dtype, i.shape)
            )
        ck.write_safetensors(path, entries)
        edit_json(
            good / INDEX,
            lambda d, kept=set(entries), s=shard: d.update(
                weight_map={k: v for k, v in d["weight_map"].items() if v != s or k in kept}
            ),
        )

    def everything_bf16(lst):
        return [*lst, "*experts*"]

    edit_json(
        good / "config.json",
        lambda c: c["quantization_config"].update(
            ignore=everything_bf16(c["quantization_config"]["ignore"])
        ),
    )
    edit_json(
        good / "hf_quant_config.json",
        lambda d: d["quantization"].update(
            exclude_modules=everything_bf16(d["quantization"]["exclude_modules"])
        ),
    )
    report = verify(good, recipe, hash_contents=False)
    assert report.nvfp4_modules == 0
    assert problems(report) == [
        ("layout-recipe", "checkpoint", "has no NVFP4 module: not an NVFP4 export")
    ]


def test_weight_scale_2_must_be_a_scalar_too(good, recipe):
    retype(good, f"{EXPERT}.weight_scale_2", shape=(2,))
    found = [
        p for p in problems(verify(good, recipe, hash_contents=False)) if p[0] == "nvfp4-shape"
    ]
    assert found == [
        ("nvfp4-shape", f"{EXPERT}.weight_scale_2", "has shape [2], expected a scalar []")
    ]


def test_block_scale_shape_message_of_a_non_square_weight(good, recipe):
    down = "model.layers.1.mlp.experts.0.down_proj"
    w = read_header(good / shard_of(good, f"{down}.weight")).tensors[f"{down}.weight"].shape
    assert w[0] != w[1]
    retype(good, f"{down}.weight_scale", shape=(w[0], 1))
    found = [
        p for p in problems(verify(good, recipe, hash_contents=False)) if p[0] == "nvfp4-shape"
    ]
    assert found[0][2].endswith(f"so one scale per 16 is [{w[0]}, {w[1] * 2 // 16}]")


def test_a_shard_with_block_scales_only(good, recipe):
    name = f"{EXPERT}.weight_scale"
    info = read_header(good / shard_of(good, name)).tensors[name]
    drop_tensor(good, name)
    ck.write_safetensors(good / "model-scales.safetensors", {name: (info.dtype, info.shape)})
    edit_json(good / INDEX, lambda d: d["weight_map"].__setitem__(name, "model-scales.safetensors"))
    assert verify(good, recipe, hash_contents=False).ok


def test_every_short_scalar_in_a_shard_is_named(good, recipe):
    retype(good, f"{EXPERT}.input_scale", shape=(2,))
    retype(good, f"{EXPERT}.weight_scale_2", shape=(2,))
    found = {
        p[1] for p in problems(verify(good, recipe, hash_contents=False)) if p[0] == "scale-invalid"
    }
    assert found == {f"{EXPERT}.input_scale", f"{EXPERT}.weight_scale_2"}


def test_an_nvfp4_module_named_by_the_exclude_list_points_at_it(good, recipe):
    pattern = "*experts.0.gate_proj"
    edit_json(good / "config.json", lambda c: c["quantization_config"]["ignore"].append(pattern))
    found = [
        p
        for p in problems(verify(good, recipe, hash_contents=False))
        if p[0] == "exclude-disagrees"
    ]
    assert [p[1] for p in found] == ["exclude list"]
    assert found[0][2].startswith("3 NVFP4 module(s) are named by the exclude list, so SGLang")


def test_a_missing_shard_does_not_stop_the_other_shards_checks(good, recipe):
    ck.drop_shard(good, 1)
    ck.truncate_shard(good, 3, short_by=1)
    checks = {p[0] for p in problems(verify(good, recipe, hash_contents=False))}
    assert {"shard-missing", "shard-data"} <= checks


def test_without_hashing_the_manifest_is_not_checked(good, recipe):
    report = verify(good, recipe, hash_contents=False)
    assert report.manifest == "not-checked" and report.folder == good
    assert json.loads(report.to_json())["folder"] == str(good)
