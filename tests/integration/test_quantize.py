"""`glm51 quantize` end to end on the tiny glm_moe_dsa model, on CPU."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from tests.support import nvfp4_reference as ref

pytestmark = pytest.mark.slow

EXPERT = re.compile(r"^(model\.layers\.(\d+)\.mlp\.experts\.(\d+))\.(gate|up|down)_proj\.")
SUFFIXES = ("weight", "weight_scale", "weight_scale_2", "input_scale")


def tensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out = {}
    for f in sorted(Path(folder).glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def dtypes(folder: Path) -> dict[str, str]:
    from safetensors import safe_open

    out = {}
    for f in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(f), "pt") as fh:
            out.update({k: fh.get_slice(k).get_dtype() for k in fh.keys()})  # noqa: SIM118
    return out


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == torch.float8_e4m3fn:
        a, b = a.view(torch.uint8), b.view(torch.uint8)
    return torch.equal(a, b)


def layers(config) -> int:
    return int(config["num_hidden_layers"])


def excluded(name: str, patterns: list[str]) -> bool:
    """SGLang's ModelOpt matching: a glob as a regex, fullmatched against the module prefix or
    one of its dot-separated parts."""
    for p in patterns:
        rx = re.compile(p.replace(".", r"\.").replace("*", ".*"))
        if rx.fullmatch(name) or any(rx.fullmatch(part) for part in name.split(".")):
            return True
    return False


@pytest.fixture(scope="session")
def source(runs):
    return tensors(runs.tiny)


@pytest.fixture(scope="session")
def exported(runs):
    return tensors(runs.resident.output)


@pytest.fixture(scope="session")
def config(runs):
    return json.loads((runs.tiny / "config.json").read_text())


def test_only_routed_experts_are_nvfp4(runs, source, exported, config):
    kinds = dtypes(runs.resident.output)
    n = layers(config)
    quantized = {
        m[1] + f".{m[4]}_proj" for k in exported if (m := EXPERT.match(k)) and int(m[2]) < n
    }
    assert quantized, "no routed expert was quantized"
    for mod in quantized:
        w, out_f, in_f = source[f"{mod}.weight"], *source[f"{mod}.weight"].shape
        assert kinds[f"{mod}.weight"] == "U8" and exported[f"{mod}.weight"].shape == (
            out_f,
            in_f // 2,
        )
        assert kinds[f"{mod}.weight_scale"] == "F8_E4M3"
        assert exported[f"{mod}.weight_scale"].shape == (out_f, in_f // 16)
        for scalar in ("weight_scale_2", "input_scale"):
            assert kinds[f"{mod}.{scalar}"] == "F32" and exported[f"{mod}.{scalar}"].shape == ()
        assert w.dtype == torch.bfloat16
    for mod in {q.rsplit(".", 1)[0] for q in quantized}:  # gate and up share the global scale
        assert same(
            exported[f"{mod}.gate_proj.weight_scale_2"], exported[f"{mod}.up_proj.weight_scale_2"]
        )
    # Every other tensor: bit-identical, or the router's lossless FP32 upcast.
    others = [k for k in exported if k.rsplit(".", 1)[0] not in quantized]
    assert set(others) == set(source) - {f"{q}.weight" for q in quantized}
    for k in others:
        if ".mlp.gate." in k and exported[k].dtype == torch.float32:
            assert torch.equal(exported[k], source[k].float()), k
        else:
            assert same(exported[k], source[k]), k


def test_mtp_layer_is_bf16_and_excluded(runs, source, exported, config):
    mtp = f"model.layers.{layers(config)}."
    names = [k for k in source if k.startswith(mtp)]
    assert any(".eh_proj." in k for k in names) and any(".mlp.experts.0." in k for k in names)
    for k in names:
        assert exported[k].dtype == torch.bfloat16 and same(exported[k], source[k]), k
    hf = json.loads((runs.resident.output / "hf_quant_config.json").read_text())["quantization"]
    cfg = json.loads((runs.resident.output / "config.json").read_text())["quantization_config"]
    assert cfg["quant_method"] == "modelopt" and cfg["quant_algo"] == hf["quant_algo"] == "NVFP4"
    assert hf["group_size"] == 16 and cfg["ignore"] == hf["exclude_modules"]
    assert excluded(mtp + "mlp.experts.0.gate_proj", hf["exclude_modules"])


def test_exclude_list_matches_what_is_quantized(runs, exported, config):
    patterns = json.loads((runs.resident.output / "hf_quant_config.json").read_text())[
        "quantization"
    ]["exclude_modules"]
    n = layers(config)
    for k, v in exported.items():
        module, leaf = k.rsplit(".", 1)
        if leaf == "weight_scale":
            assert not excluded(module, patterns), f"{module} is quantized but excluded"
        elif leaf == "weight" and v.dim() == 2 and v.dtype == torch.bfloat16:
            assert excluded(module, patterns), f"{module} is BF16 but not excluded"
    assert excluded("model.layers.0.mlp.gate_up_proj", patterns)  # dense layer (config-derived)
    assert not excluded(f"model.layers.{n - 1}.mlp.experts", patterns)


def test_independent_nvfp4_reference_matches_bit_for_bit(runs, source, exported, config):
    """Re-quantize every routed expert from the BF16 source with the test's own NVFP4."""
    merged = runs.resident.merged.amax
    n, checked = layers(config), 0
    for k in sorted(exported):
        m = EXPERT.match(k)
        if not m or int(m[2]) >= n or not k.endswith("_proj.weight"):
            continue
        expert, proj = m[1], m[4]
        w = source[k]
        if proj == "down":
            amax = w.abs().max()
        else:  # gate and up: one global scale over both (SGLang fuses them into w13)
            amax = torch.maximum(
                source[f"{expert}.gate_proj.weight"].abs().max(),
                source[f"{expert}.up_proj.weight"].abs().max(),
            )
        packed, scales, g = ref.quantize(w, amax)
        assert torch.equal(packed, exported[k]), k
        assert torch.equal(scales.view(torch.uint8), exported[f"{k}_scale"].view(torch.uint8)), k
        assert torch.equal(g, exported[f"{k}_scale_2"]), k
        # input_scale: the merged calibration amax over the NVFP4 range.
        q = (
            f"model.layers.{m[2]}.mlp.experts.{'down' if proj == 'down' else 'gate_up'}"
            "_proj_input_quantizer"
        )
        assert torch.equal(
            ref.global_scale(merged[q]), exported[k.replace("weight", "input_scale")]
        )
        checked += 1
    experts = config["n_routed_experts"] * (n - config["first_k_dense_replace"])
    assert checked == 3 * experts


def test_input_amax_is_the_max_over_routed_tokens(runs, tokenizer):
    """The gate/up input amax, measured independently: with natural top-k routing every token
    reaches some expert, so it is max |x| of the MoE block's input over all tokens."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(runs.tiny), dtype=torch.bfloat16).eval()
    seen: dict[int, torch.Tensor] = {}

    def hook(i):
        def _h(_m, args):
            a = args[0].abs().max()
            seen[i] = a if i not in seen else torch.maximum(seen[i], a)

        return _h

    n = model.config.num_hidden_layers
    moe = [i for i in range(n) if model.config.mlp_layer_types[i] == "sparse"]
    for i in moe:
        model.model.layers[i].mlp.register_forward_pre_hook(hook(i))
    with torch.no_grad():
        for calib in runs.passes.values():
            for s in calib.samples:
                model(input_ids=torch.tensor([s]), use_cache=False)
    amax = runs.resident.merged.amax
    for i in moe:
        assert torch.equal(
            seen[i], amax[f"model.layers.{i}.mlp.experts.gate_up_proj_input_quantizer"]
        )


def test_two_runs_are_byte_identical(runs):
    a, b = runs.resident.output, runs.again.output
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_resume_reuses_artifacts(runs):
    assert runs.resident.calibrated and not runs.resident.reused
    assert set(runs.resumed.reused) == set(runs.resident.calibrated)
    assert not runs.resumed.calibrated
    for p in runs.resident.output.glob("*.safetensors"):
        assert p.read_bytes() == (runs.resumed.output / p.name).read_bytes()


def test_pass_by_pass_merged_equals_joint(runs):
    a, b = tensors(runs.resident.output), tensors(runs.joint.output)
    assert set(a) == set(b)
    assert all(same(a[k], b[k]) for k in a)
    ca, cb = runs.resident.merged.counts, runs.joint.merged.counts
    assert (ca.counts == cb.counts).all() and (ca.first_seen == cb.first_seen).all()


def test_bounded_memory_equals_resident(runs):
    a, b = tensors(runs.resident.output), tensors(runs.bounded.output)
    assert set(a) == set(b)
    assert [k for k in a if not same(a[k], b[k])] == []
    for name in ("config.json", "hf_quant_config.json"):
        assert (runs.resident.output / name).read_text() == (runs.bounded.output / name).read_text()
    assert (runs.resident.merged.counts.counts == runs.bounded.merged.counts.counts).all()


def test_coverage_reports_written(runs):
    for kind in ("json", "md", "png"):
        assert runs.resident.reports[kind].stat().st_size > 0
    report = json.loads(runs.resident.reports["json"].read_text())
    assert report["ok"] and [p["name"] for p in report["passes"]] == ["coding", "broad"]


def test_starved_calibration_fails_the_gate(runs, tokenizer, recipe, tmp_path):
    from glm51.calib.data import CalibSet
    from glm51.errors import GateFailed
    from glm51.quantize.pipeline import quantize

    starved = CalibSet("starved", [runs.passes["coding"].samples[0][:3]])
    with pytest.raises(GateFailed, match=r"routed experts got fewer than 1.*\(1, \d+\)") as exc:
        quantize(
            runs.tiny,
            tmp_path / "out",
            {"starved": [starved]},
            recipe.quantize,
            work_dir=tmp_path / "w",
        )
    assert exc.value.exit_code == 5
    assert not (tmp_path / "out").exists()
    assert (tmp_path / "w" / "coverage" / "coverage.md").is_file()


def test_empty_calibration_fails(runs, recipe, tmp_path):
    from glm51.calib.data import CalibSet
    from glm51.errors import GateFailed
    from glm51.quantize.pipeline import quantize

    with pytest.raises(GateFailed, match="no data"):
        quantize(
            runs.tiny,
            tmp_path / "out",
            {"empty": [CalibSet("empty", [])]},
            recipe.quantize,
            work_dir=tmp_path / "w",
        )
    assert not (tmp_path / "out").exists()


def test_missing_input_scale_fails(runs, recipe, tmp_path):
    """An artifact that lacks an input amax (ModelOpt would export without it) is refused."""
    from glm51.checkpoint.folder import Checkpoint
    from glm51.errors import GateFailed
    from glm51.quantize.export import export
    from glm51.quantize.targets import modelopt_config

    amax = dict(runs.resident.merged.amax)
    drop = next(k for k in amax if k.endswith("down_proj_input_quantizer"))
    del amax[drop]
    qcfg = modelopt_config(recipe.quantize, Checkpoint(runs.tiny).config)
    with pytest.raises(GateFailed, match=re.escape(drop)):
        export(runs.tiny, amax, recipe.quantize, qcfg, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_tokenizer_and_generation_config_copied(runs):
    for name in (
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "generation_config.json",
    ):
        assert (runs.resident.output / name).read_bytes() == (runs.tiny / name).read_bytes()


def test_existing_output_is_refused_before_calibrating(runs, recipe, tmp_path):
    from glm51.errors import InputError
    from glm51.quantize.pipeline import quantize

    before = runs.resident.output.stat().st_mtime_ns
    with pytest.raises(InputError, match="--overwrite"):
        quantize(
            runs.tiny,
            runs.resident.output,
            {"x": [runs.passes["broad"]]},
            recipe.quantize,
            work_dir=tmp_path / "w",
        )
    assert not (tmp_path / "w").exists()
    assert runs.resident.output.stat().st_mtime_ns == before


def _cli(*argv: str):
    import subprocess
    import sys

    code = "from glm51.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)


def test_cli_end_to_end_and_exit_codes(runs, tmp_path):
    from glm51.calib.rehearsal_data import write_jsonl

    data = write_jsonl(tmp_path / "calib.jsonl", 4, 7)
    out = tmp_path / "out"
    done = _cli(
        "quantize",
        "--model",
        str(runs.tiny),
        "--output",
        str(out),
        "--calib-file",
        str(data),
        "--chunks",
        "2",
        "--bounded-memory",
    )
    assert done.returncode == 0, done.stderr
    assert "bounded memory" in done.stderr and "resident mode" in done.stderr  # the estimate
    assert (out / "hf_quant_config.json").is_file()
    assert len(list((tmp_path / "out.work" / "artifacts").glob("local.*of2-*.safetensors"))) == 2

    starved = tmp_path / "starved.jsonl"
    starved.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    done = _cli(
        "quantize",
        "--model",
        str(runs.tiny),
        "--output",
        str(tmp_path / "o2"),
        "--calib-file",
        str(starved),
        "--max-length",
        "4",
    )
    assert done.returncode == 5, done.stderr
    assert "gate failed" in done.stderr and not (tmp_path / "o2").exists()


def test_export_passes_the_serve_preflights_checkpoint_checks(runs, recipe):
    # What `glm51 serve` checks before starting SGLang: the quantize stage's real output,
    # laid out like GLM-5.1, must pass it (quant config, shards, MTP layer, shared experts).
    from glm51.preflight import checkpoint, flags

    _, profile = recipe.profile()
    found, facts = checkpoint.check(runs.resident.output, recipe, profile)
    assert found == []
    assert facts.shared_experts_excluded()
    assert flags.check(profile, facts, (), gpu_count=8) == []


MANIFEST = """
name = "{name}"
description = "rehearsal-sized {name}"
seed = {seed}
min_tokens = {min_tokens}
max_tokens = 4096

[[sources]]
name = "{name}-src"
dataset = "example/{name}"
revision = "main"
column = "{column}"
convert = "{column}"
samples = 4
{filters}
"""


def test_cli_builds_the_recipes_passes_from_data_dir(runs, tmp_path, recipe_text):
    """The recipe's own three passes (manifests + --data-dir), not --calib-file: each pass
    built through its manifest (conversion, moderation filter, length window), calibrated,
    reported and merged."""
    from glm51.calib.rehearsal_data import conversations

    (tmp_path / "calibration").mkdir()
    data = tmp_path / "data"
    data.mkdir()
    specs = {  # pass -> (column/convert, min tokens, filters)
        "coding": ("messages", 16, ""),
        "broad": ("conversation", 16, 'filters = { moderation = "openai_moderation" }'),
        "deep": ("messages", 600, ""),
    }
    for seed, (name, (column, min_tokens, filters)) in enumerate(specs.items()):
        (tmp_path / "calibration" / f"{name}.toml").write_text(
            MANIFEST.format(
                name=name, seed=seed, min_tokens=min_tokens, column=column, filters=filters
            )
        )
        rows = conversations(6, seed, words=300 if name == "deep" else 40)
        with (data / f"{name}-src.jsonl").open("w") as fh:
            for i, row in enumerate(rows):
                if column == "conversation":  # WildChat/LMSYS shape: extra keys per turn
                    turns = [{**m, "turn_identifier": i} for m in row["messages"]]
                    flagged = i == 0  # one conversation the moderation filter must drop
                    row = {
                        "conversation": turns,
                        "openai_moderation": [{"flagged": flagged}] * len(turns),
                    }
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    (tmp_path / "glm51.toml").write_text(recipe_text)

    out = tmp_path / "out"
    done = _cli(
        "quantize",
        "--model",
        str(runs.tiny),
        "--output",
        str(out),
        "--data-dir",
        str(data),
        "--recipe",
        str(tmp_path / "glm51.toml"),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "out.work" / "coverage" / "coverage.json").read_text())
    tokens = {p["name"]: p["tokens"] for p in report["passes"]}
    assert set(tokens) == {"coding", "broad", "deep"}
    assert tokens["deep"] >= 4 * 600  # the length window kept only the long samples
    artifacts = sorted(
        p.name.split("-")[0] for p in (tmp_path / "out.work" / "artifacts").iterdir()
    )
    assert artifacts == ["broad", "coding", "deep"]
    assert (out / "hf_quant_config.json").is_file()


def test_resident_mode_loads_the_model_once(runs, recipe, tmp_path, monkeypatch):
    """Four calibration units and the export on one load; a resumed run (every unit reused)
    loads it once, for the export. Same bytes as the session's resident run."""
    from glm51.quantize import calibrate
    from glm51.quantize.pipeline import quantize, split

    loads = []
    real = calibrate.load_resident

    def counting(model_dir, device):
        loads.append(device)
        return real(model_dir, device)

    monkeypatch.setattr(calibrate, "load_resident", counting)
    plan = split(runs.passes, 2)
    assert sum(len(u) for u in plan.values()) == 4
    first = quantize(runs.tiny, tmp_path / "a", plan, recipe.quantize, work_dir=tmp_path / "w")
    assert loads == ["cpu"] and len(first.calibrated) == 4
    again = quantize(runs.tiny, tmp_path / "b", plan, recipe.quantize, work_dir=tmp_path / "w")
    assert loads == ["cpu", "cpu"] and len(again.reused) == 4 and not again.calibrated
    expected = tensors(runs.resident.output)
    for out in (first.output, again.output):
        got = tensors(out)
        assert set(got) == set(expected)
        assert [k for k in got if not same(got[k], expected[k])] == []


@pytest.mark.parametrize("bounded", [False, True], ids=["resident", "bounded"])
def test_export_is_the_same_when_division_by_a_number_is_cudas(runs, recipe, tmp_path, bounded):
    """The export, with every division by a Python number done as CUDA does it (multiply by
    the reciprocal, simulated on the CPU): every tensor bit-identical to the CPU export."""
    from glm51.quantize.export import export
    from glm51.quantize.targets import modelopt_config
    from tests.support.cuda_division import reciprocal_scalar_division

    qcfg = modelopt_config(recipe.quantize, json.loads((runs.tiny / "config.json").read_text()))
    with reciprocal_scalar_division():
        out = export(
            runs.tiny,
            runs.resident.merged.amax,
            recipe.quantize,
            qcfg,
            tmp_path / "out",
            bounded=bounded,
        )
    got, expected = tensors(out), tensors(runs.resident.output)
    assert set(got) == set(expected)
    assert [k for k in got if not same(got[k], expected[k])] == []


def test_the_simulation_catches_modelopts_own_scale_division(runs, recipe, tmp_path, monkeypatch):
    """Without glm51's exact scale division, the simulated CUDA export differs from the CPU's,
    as the H200's did: weight_scale_2 by an ulp, and the bytes derived from it."""
    import contextlib

    from glm51.quantize import export as export_module
    from glm51.quantize.targets import modelopt_config
    from tests.support.cuda_division import reciprocal_scalar_division

    monkeypatch.setattr(export_module, "correctly_rounded_scales", contextlib.nullcontext)
    qcfg = modelopt_config(recipe.quantize, json.loads((runs.tiny / "config.json").read_text()))
    with reciprocal_scalar_division():
        out = export_module.export(
            runs.tiny, runs.resident.merged.amax, recipe.quantize, qcfg, tmp_path / "out"
        )
    got, expected = tensors(out), tensors(runs.resident.output)
    differ = [k for k in got if not same(got[k], expected[k])]
    assert any(k.endswith("weight_scale_2") for k in differ), differ
    assert all(EXPERT.match(k) for k in differ)  # only the quantized projections


def test_record_and_checkpoint_say_where_the_scales_were_measured(runs):
    from glm51.quantize.pipeline import RECORD
    from glm51.records.base import read_record
    from glm51.records.quantize import QuantizeRecord

    outcome = runs.resident
    assert outcome.record_path.name == RECORD and outcome.record_path.parent.name == "w1"
    # The resumed run shares the work dir: its record is the one on disk now.
    assert read_record(outcome.record_path, QuantizeRecord) == runs.resumed.record
    record = outcome.record
    assert record.mode == "resident" and record.device == "cpu" and record.device_name is None
    assert [u.name for u in record.calibration] == [
        "coding.1of2",
        "coding.2of2",
        "broad.1of2",
        "broad.2of2",
    ]
    assert all(u.device == "cpu" and not u.reused for u in record.calibration)
    # Reused units: the device comes from the artifact's own metadata.
    assert all(u.reused and u.device == "cpu" for u in runs.resumed.record.calibration)
    assert record.tools.torch == torch.__version__ and record.tools.modelopt
    assert record.tools.transformers and record.quantized_tensors > 0 and record.bf16_tensors > 0
    assert record.seconds is not None and record.seconds > 0
    hf = json.loads((outcome.output / "hf_quant_config.json").read_text())["glm51"]
    assert hf["calibration"] == [{"device": "cpu", "device_name": None}]
    assert hf["export"] == {"device": "cpu", "device_name": None}
    assert hf["tools"]["torch"] == torch.__version__ and hf["tools"]["modelopt"]


def test_quantize_reads_each_source_shard_header_once(tiny_model, tmp_path, monkeypatch):
    """The request is checked once (not by the CLI and again by the stage): for a sharded
    source, as the real one is stored, every shard's header is read exactly once."""
    import collections
    import shutil

    from typer.testing import CliRunner

    import glm51.checkpoint.folder as folder
    import glm51.checkpoint.integrity as integrity
    from glm51.calib.rehearsal_data import write_jsonl
    from glm51.checkpoint.safetensors import read_header
    from glm51.cli import app

    source = tmp_path / "bf16"
    shutil.copytree(tiny_model, source)
    names = sorted(read_header(source / "model.safetensors").tensors)
    shard = "model-00001-of-00001.safetensors"
    (source / "model.safetensors").rename(source / shard)
    index = {"metadata": {}, "weight_map": dict.fromkeys(names, shard)}
    (source / "model.safetensors.index.json").write_text(json.dumps(index))
    write_jsonl(tmp_path / "calib.jsonl", 4, 0)

    reads: collections.Counter[str] = collections.Counter()

    def counted(path, *args, **kwargs):
        reads[str(path)] += 1
        return read_header(path, *args, **kwargs)

    for module in (integrity, folder):
        monkeypatch.setattr(module, "read_header", counted)
    argv = ["quantize", "--model", str(source), "--output", str(tmp_path / "out")]
    result = CliRunner().invoke(app, [*argv, "--calib-file", str(tmp_path / "calib.jsonl")])
    assert result.exit_code == 0, result.output
    assert {p: n for p, n in reads.items() if p.startswith(str(source))} == {str(source / shard): 1}
