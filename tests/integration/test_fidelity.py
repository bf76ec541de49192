"""`glm51 fidelity` on the tiny glm_moe_dsa model, on the CPU: the layerwise KL equals the KL of
the two whole models run in transformers, BF16 against itself is exactly 0, a planted bad
scale is found and gated (exit 5 after the reports), and bad input exits 3 before any work."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from glm51.calib.rehearsal_data import write_jsonl
from glm51.cli import app
from glm51.records import read_record
from glm51.records.fidelity import FidelityRecord
from tests.conftest import REPO
from tests.support.cli import error_text, exit_code

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quantized(tiny_model, tmp_path_factory, recipe):
    """The tiny model quantized once (resident, its synthetic calibration set)."""
    from glm51.quantize import stage

    tmp = tmp_path_factory.mktemp("fidelity")
    calib = write_jsonl(tmp / "calib.jsonl", 12, 0)
    request = stage.Request(
        tiny_model, tmp / "nvfp4", tmp / "work", stage.Calibration(files=(calib,))
    )
    stage.quantize(request, recipe)
    return tmp / "nvfp4", tmp / "work" / "merged.safetensors"


@pytest.fixture(scope="module")
def text(tmp_path_factory) -> Path:
    # Another seed than the calibration set's: held-out text.
    return write_jsonl(tmp_path_factory.mktemp("text") / "text.jsonl", 8, 1234)


def _samples(tiny_model, text, recipe):
    from glm51.fidelity.request import FidelityRequest
    from glm51.fidelity.stage import build_text

    req = FidelityRequest(
        source=tiny_model, checkpoint=tiny_model, text_files=(text,), gate_set="rehearsal"
    )
    return build_text(req, recipe)[0]


def _fidelity(*args: str):
    return CliRunner().invoke(app, ["fidelity", "--gates", "rehearsal", *args])


def test_layerwise_kl_equals_the_whole_models_in_transformers(tiny_model, quantized, text, recipe):
    from transformers import AutoModelForCausalLM

    from glm51.checkpoint.folder import Checkpoint
    from glm51.fidelity.candidate import candidate_experts
    from glm51.fidelity.numerics import position_kl
    from glm51.fidelity.walk import measure

    checkpoint, _ = quantized
    samples = _samples(tiny_model, text, recipe)
    m = measure(Checkpoint(tiny_model), Checkpoint(checkpoint), samples)

    def whole():
        model = AutoModelForCausalLM.from_pretrained(str(tiny_model), dtype=torch.bfloat16)
        model.config._experts_implementation = "eager"
        return model.eval()

    bf16, nvfp4 = whole(), whole()
    moe = [i for i, layer in enumerate(nvfp4.model.layers) if hasattr(layer.mlp, "experts")]
    assert moe, "the tiny model has routed experts"
    for i in moe:  # the dequantized checkpoint with the activation quantization hooked in
        layer = nvfp4.model.layers[i]
        layer.mlp.experts, _ = candidate_experts(
            Checkpoint(checkpoint), i, layer.mlp.experts, "cpu"
        )
    kls, agree = [], []
    # The same CPU GEMM kernels as the walk (it turns oneDNN off: walk.py says why).
    with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False):
        for ids in samples:
            x = torch.tensor([ids])
            kl, a = position_kl(
                bf16(x, use_cache=False).logits[0], nvfp4(x, use_cache=False).logits[0]
            )
            kls.append(kl)
            agree.append(a)
    expected = torch.cat(kls)
    assert expected.shape == m.kl.shape and int(expected.shape[0]) == sum(map(len, samples))
    assert bool((expected > 0).any()), "NVFP4 changes the distribution somewhere"
    assert torch.allclose(m.kl, expected, rtol=1e-5, atol=0), (m.kl - expected).abs().max()
    assert torch.equal(m.agree, torch.cat(agree))


def test_bf16_against_itself_is_exactly_zero_and_agrees_everywhere(tiny_model, text, tmp_path):
    out = tmp_path / "self"
    result = _fidelity(
        "--source",
        str(tiny_model),
        "--checkpoint",
        str(tiny_model),
        "--out",
        str(out),
        "--text-file",
        str(text),
    )
    assert exit_code(result) == 0, error_text(result)
    record = read_record(out / "fidelity.json", FidelityRecord)
    assert record.kl.max == 0.0 and record.kl.mean == 0.0
    assert record.top1_agreement == 1.0 and record.positions > 0
    assert record.nvfp4_layers == 0 and record.passed
    assert all(x.relative_error == 0 and x.cosine == pytest.approx(1.0) for x in record.layers)


def test_the_real_quantization_passes_the_rehearsal_gates(tiny_model, quantized, text, tmp_path):
    checkpoint, merged = quantized
    out = tmp_path / "out"
    result = _fidelity(
        "--source",
        str(tiny_model),
        "--checkpoint",
        str(checkpoint),
        "--out",
        str(out),
        "--text-file",
        str(text),
        "--coverage",
        str(merged),
    )
    assert exit_code(result) == 0, error_text(result)
    record = read_record(out / "fidelity.json", FidelityRecord)
    assert 0 < record.kl.mean < record.kl.p99 <= record.kl.max
    assert record.nvfp4_layers == len(record.expert_errors) > 0
    assert all(e.calibration_tokens is not None for e in record.worst_experts)
    assert (out / "fidelity.md").read_text().startswith("| KL mean |")
    assert (out / "fidelity.png").read_bytes()[:4] == b"\x89PNG"


def _plant_bad_scale(checkpoint: Path, layer: int, expert: int, dest: Path, factor: float) -> None:
    from safetensors.torch import load_file, save_file

    shutil.copytree(checkpoint, dest)
    name = f"model.layers.{layer}.mlp.experts.{expert}.down_proj.weight_scale_2"
    shard = json.loads((dest / "model.safetensors.index.json").read_text())["weight_map"][name]
    tensors = load_file(str(dest / shard))
    tensors[name] = tensors[name] * factor
    save_file(tensors, str(dest / shard), {"format": "pt"})


def test_a_planted_bad_scale_is_the_worst_layer_and_trips_kl_mean(
    tiny_model, quantized, text, tmp_path
):
    from glm51.quantize.artifact import Artifact

    checkpoint, merged = quantized
    # Layer 1's busiest expert (by calibration tokens): a bad scale there moves the mean KL.
    counts = Artifact.load(merged).counts
    expert = int(counts.counts[counts.layers.index(1)].argmax())
    bad = tmp_path / "bad"
    _plant_bad_scale(checkpoint, 1, expert, bad, 64.0)
    out = tmp_path / "out"
    result = _fidelity(
        "--source",
        str(tiny_model),
        "--checkpoint",
        str(bad),
        "--out",
        str(out),
        "--text-file",
        str(text),
        "--coverage",
        str(merged),
    )
    assert exit_code(result) == 5, error_text(result)
    assert "kl_mean" in error_text(result).split("missed:")[1]
    record = read_record(out / "fidelity.json", FidelityRecord)  # written before the exit
    assert (out / "fidelity.md").is_file() and (out / "fidelity.png").is_file()
    assert record.worst_layer.layer == 1
    assert (record.worst_experts[0].layer, record.worst_experts[0].expert) == (1, expert)
    assert not next(g for g in record.gates if g.name == "kl_mean").passed


def test_another_model_of_the_same_shapes_is_refused_before_any_work(tiny_model, text, tmp_path):
    from glm51.quantize.tiny import build_tiny_model

    other = build_tiny_model(tmp_path / "other", seed=1)
    out = tmp_path / "out"
    result = _fidelity(
        "--source",
        str(tiny_model),
        "--checkpoint",
        str(other),
        "--out",
        str(out),
        "--text-file",
        str(text),
    )
    assert exit_code(result) == 3
    assert "mlp.gate.weight differs from the source's" in error_text(result)
    assert not out.exists()


def test_a_checkpoint_of_other_shapes_is_refused_before_any_work(
    tiny_model, quantized, text, tmp_path
):
    from glm51.quantize.tiny import build_tiny_model

    other = build_tiny_model(tmp_path / "two-layers", num_layers=2)
    out = tmp_path / "out"
    checkpoint, _ = quantized
    result = _fidelity(
        "--source",
        str(other),
        "--checkpoint",
        str(checkpoint),
        "--out",
        str(out),
        "--text-file",
        str(text),
    )
    assert exit_code(result) == 3
    assert "config.json differs from the source's" in error_text(result)
    assert "num_hidden_layers" in error_text(result) and not out.exists()


def test_an_output_inside_an_input_is_refused(tiny_model, quantized, text):
    checkpoint, _ = quantized
    before = sorted(p.name for p in checkpoint.iterdir())
    result = _fidelity(
        "--source",
        str(tiny_model),
        "--checkpoint",
        str(checkpoint),
        "--out",
        str(checkpoint / "fidelity"),
        "--text-file",
        str(text),
    )
    assert exit_code(result) == 3
    assert "--out" in error_text(result) and "inside --checkpoint" in error_text(result)
    assert sorted(p.name for p in checkpoint.iterdir()) == before


def test_a_fidelity_manifest_overlapping_a_calibration_pass_exits_3(
    tiny_model, quantized, tmp_path
):
    release = tmp_path / "release"
    shutil.copytree(REPO / "release", release)
    recipe = release / "glm51.toml"
    recipe.write_text(
        recipe.read_text().replace(
            'manifest = "calibration/fidelity.toml"', 'manifest = "calibration/broad.toml"'
        )
    )
    checkpoint, _ = quantized
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "fidelity",
            "--source",
            str(tiny_model),
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(out),
            "--recipe",
            str(recipe),
        ],
    )
    assert exit_code(result) == 3
    assert "is calibration pass 'broad'" in error_text(result) and not out.exists()


def test_a_bf16_tensor_that_is_not_the_sources_is_refused(tiny_model, quantized, text, tmp_path):
    """The walk compares every tensor both streams share: a changed attention weight means
    the checkpoint is not this source's quantization (exit 3, no reports)."""
    from safetensors.torch import load_file, save_file

    checkpoint, _ = quantized
    other = tmp_path / "other"
    shutil.copytree(checkpoint, other)
    name = "model.layers.1.self_attn.o_proj.weight"
    shard = json.loads((other / "model.safetensors.index.json").read_text())["weight_map"][name]
    tensors = load_file(str(other / shard))
    tensors[name] = tensors[name] * 2
    save_file(tensors, str(other / shard), {"format": "pt"})
    out = tmp_path / "out"
    result = _fidelity(
        "--source", str(tiny_model), "--checkpoint", str(other), "--out", str(out),
        "--text-file", str(text),
    )  # fmt: skip
    assert exit_code(result) == 3
    assert f"{name} differs from the source's" in error_text(result) and not out.exists()


def test_too_few_samples_name_the_budget_the_gates_chose(tiny_model, tmp_path):
    """--gates rehearsal draws on [rehearsal.fidelity]: the refusal names that table."""
    few = write_jsonl(tmp_path / "few.jsonl", 1, 99)
    out = tmp_path / "out"
    result = _fidelity(
        "--source", str(tiny_model), "--checkpoint", str(tiny_model), "--text-file", str(few),
        "--out", str(out),
    )  # fmt: skip
    assert exit_code(result) == 3, result.output
    assert "1 samples, the recipe's rehearsal.fidelity.sequences asks for" in error_text(result)
    assert not out.exists()
