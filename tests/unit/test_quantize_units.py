"""The quantize stage's pure parts: targets and exclusions, artifacts, the router counter."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from glm51.checkpoint.layout import dense_layers, moe_layers, mtp_layers
from glm51.quantize.targets import modelopt_config, mtp_exclusions

GLM51 = {"num_hidden_layers": 78, "first_k_dense_replace": 3, "num_nextn_predict_layers": 1}


def test_layers_derived_from_glm51_config():
    assert dense_layers(GLM51) == [0, 1, 2]
    assert moe_layers(GLM51) == list(range(3, 78))
    assert mtp_layers(GLM51) == [78]
    # "model.layers.78*" alone would also match a layer 780: the two-pattern form.
    assert mtp_exclusions(GLM51) == ["model.layers.78", "model.layers.78.*"]


def test_mlp_layer_types_win_over_first_k_dense_replace():
    cfg = {
        **GLM51,
        "num_hidden_layers": 4,
        "mlp_layer_types": ["dense", "sparse", "dense", "sparse"],
    }
    assert dense_layers(cfg) == [0, 2] and moe_layers(cfg) == [1, 3]


def test_exclude_list(recipe):
    from glm51.quantize.targets import bf16_patterns

    out = bf16_patterns(recipe.quantize.keep_bf16, GLM51)
    assert out[: len(recipe.quantize.keep_bf16)] == list(recipe.quantize.keep_bf16)
    assert out[-5:] == [
        "model.layers.0.mlp.*",
        "model.layers.1.mlp.*",
        "model.layers.2.mlp.*",
        "model.layers.78",
        "model.layers.78.*",
    ]


def test_modelopt_config_targets_experts_only(recipe):
    from fnmatch import fnmatch

    cfg = modelopt_config(recipe.quantize, GLM51)
    assert cfg["algorithm"] == "max"

    def enabled(name: str) -> bool:  # ModelOpt semantics: later entries win
        state = False
        for e in cfg["quant_cfg"]:
            if fnmatch(name, e["quantizer_name"]):
                state = e.get("enable", True)
        return state

    assert enabled("model.layers.3.mlp.experts.gate_up_proj_input_quantizer")
    assert enabled("model.layers.77.mlp.experts.down_proj_weight_quantizers.255")
    for off in (
        "model.layers.3.self_attn.indexer.wk.weight_quantizer",
        "model.layers.3.mlp.gate.weight_quantizer",
        "model.layers.3.mlp.shared_experts.up_proj.input_quantizer",
        "model.layers.0.mlp.gate_proj.weight_quantizer",
        "model.layers.78.mlp.experts.down_proj_weight_quantizers.0",
        "lm_head.weight_quantizer",
        "model.layers.3.mlp.experts.gate_up_proj_output_quantizer",
    ):
        assert not enabled(off), off


def _counts(layers, counts, first, tokens):
    from glm51.calib.coverage import ExpertCounts

    return ExpertCounts(tuple(layers), np.array(counts), np.array(first), tokens)


def test_artifact_merge_is_elementwise_max_and_roundtrips(tmp_path):
    import torch

    from glm51.quantize.artifact import Artifact, merge

    a = Artifact(
        "a",
        ("d1",),
        {"q": torch.tensor(1.5), "w": torch.tensor([1.0, 4.0])},
        _counts([1], [[2, 0]], [[0, -1]], 2),
    )
    b = Artifact(
        "b",
        ("d2",),
        {"q": torch.tensor(2.5), "w": torch.tensor([3.0, 2.0])},
        _counts([1], [[1, 1]], [[1, 0]], 2),
    )
    m = merge([a, b])
    assert m.digests == ("d1", "d2")
    assert torch.equal(m.amax["q"], torch.tensor(2.5))
    assert torch.equal(m.amax["w"], torch.tensor([3.0, 4.0]))
    assert m.counts.counts.tolist() == [[3, 1]] and m.counts.first_seen.tolist() == [[0, 2]]
    back = Artifact.load(m.save(tmp_path / "m.safetensors"))
    assert back.unit == "merged" and back.digests == m.digests and back.counts.tokens == 4
    assert all(torch.equal(back.amax[k], m.amax[k]) for k in m.amax)


def test_artifact_load_rejects_other_files(tmp_path):
    from glm51.errors import InputError
    from glm51.quantize.artifact import Artifact

    (tmp_path / "x.safetensors").write_bytes(b"nope")
    with pytest.raises(InputError, match="not a calibration artifact"):
        Artifact.load(tmp_path / "x.safetensors")


def test_router_counter_counts_each_sample_once():
    import torch

    from glm51.calib.coverage import ExpertCounts
    from glm51.quantize.calibrate import RouterCounter

    routed = [torch.tensor([[0, 1], [1, 2]]), torch.tensor([[3, 1]])]
    c = RouterCounter([5], 4)
    hook = c.hook(5)
    offset = 0
    for ids in routed:
        c.at(offset)
        hook(None, None, (None, None, ids))
        hook(None, None, (None, None, ids))  # a layerwise replay: not counted again
        offset += len(ids)
    got = c.result(3)
    want = ExpertCounts.from_routing([5], 4, [torch.cat(routed).numpy()], 3)
    assert (got.counts == want.counts).all() and (got.first_seen == want.first_seen).all()


def test_fuse_experts_layout():
    import torch

    from glm51.quantize.layers import fuse_experts

    t = {
        f"m.mlp.experts.{e}.{p}_proj.weight": torch.full((2, 3), float(e * 10 + i))
        for e in range(2)
        for i, p in enumerate(("gate", "up", "down"))
    }
    t["m.mlp.gate.weight"] = torch.zeros(2, 3)
    out = fuse_experts(t)
    assert set(out) == {
        "m.mlp.experts.gate_up_proj",
        "m.mlp.experts.down_proj",
        "m.mlp.gate.weight",
    }
    assert out["m.mlp.experts.gate_up_proj"].shape == (2, 4, 3)
    assert out["m.mlp.experts.gate_up_proj"][1, :2].eq(10).all()  # gate first, then up
    assert out["m.mlp.experts.gate_up_proj"][1, 2:].eq(11).all()


@pytest.mark.slow
def test_tiny_model_is_small_and_reproducible(tmp_path):
    from glm51.quantize.tiny import build_tiny_model

    a, b = build_tiny_model(tmp_path / "a"), build_tiny_model(tmp_path / "b")
    files = sorted(p.name for p in a.iterdir())
    assert "model.safetensors" in files and "chat_template.jinja" in files
    assert sum(p.stat().st_size for p in a.iterdir()) < 4_000_000
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.slow
def test_quantize_bad_inputs_exit_3(tmp_path):
    from glm51.quantize.tiny import build_tiny_model

    model = build_tiny_model(tmp_path / "model")
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "nomodel").mkdir()
    for src, calib, what in (
        (model, "empty.jsonl", "no records"),
        (tmp_path / "nomodel", "empty.jsonl", "no config.json"),
    ):
        out, data = str(tmp_path / "out"), str(tmp_path / calib)
        argv = [
            "-c",
            "from glm51.cli import main; main()",
            "quantize",
            "--model",
            str(src),
            "--output",
            out,
            "--calib-file",
            data,
        ]
        done = subprocess.run([sys.executable, *argv], capture_output=True, text=True)
        assert done.returncode == 3, done.stderr
        assert what in " ".join(done.stderr.split())  # rich wraps long lines
    assert not (tmp_path / "out").exists()
