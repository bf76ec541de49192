"""Estimates for GLM-5.1 land where the real checkpoints are (744B, ~1.5 TB BF16)."""

from __future__ import annotations

import json

import pytest

from glm51.calib.data import CalibSet
from glm51.checkpoint.folder import load_model_config
from glm51.errors import InputError
from glm51.quantize.estimate import CalibShape, estimate, layer_params
from tests.support.glm51_config import GLM51

DEEP = CalibShape("deep", samples=64, tokens=64 * 32768, max_len=32768)
GB = 1e9


def test_glm51_parameters_and_disk():
    est = estimate(GLM51, [DEEP])
    mtp = layer_params(GLM51)[-1]
    assert est.mtp_params == mtp.attention + mtp.mlp_other
    main_params = est.params - est.mtp_params
    assert 740e9 < main_params < 750e9  # "744B" is the model without its MTP layer
    assert 1.45e12 < est.source_bytes < 1.55e12  # ~1.5 TB BF16
    assert 720e9 < est.quantized_params < 730e9  # 75 MoE layers x 256 experts, MTP kept BF16
    assert 400 * GB < est.output_bytes < 480 * GB  # the NVFP4 checkpoint


def test_glm51_bounded_memory_fits_one_gpu_and_resident_does_not():
    est = estimate(GLM51, [DEEP])
    assert 19 * GB < est.largest_layer_bytes < 21 * GB  # one MoE decoder layer in BF16
    assert est.layerwise_gpu_bytes < 80 * GB < est.resident_gpu_bytes
    assert est.resident_gpu_bytes > est.source_bytes
    assert est.layerwise_host_bytes < est.source_bytes / 5
    # Eager attention materialises [heads, L, L] scores: 32K-token samples no longer fit.
    assert estimate(GLM51, [DEEP], eager_attention=True).layerwise_gpu_bytes > 150 * GB


def test_replay_buffer_follows_the_largest_unit_not_the_sum():
    small = CalibShape("a", 10, 10_000, 2000)
    big = CalibShape("b", 10, 40_000, 8000)
    est = estimate(GLM51, [small, big])
    assert est.calib_tokens == 50_000
    assert est.replay_bytes == 40_000 * 6144 * 2 * 2


def test_safetensors_index_total_size_is_used(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(GLM51))
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 1_510_000_000_000}, "weight_map": {}})
    )
    config, index = load_model_config(tmp_path)
    est = estimate(config, [DEEP], index=index)
    assert est.source_bytes == 1_510_000_000_000
    assert est.output_bytes == 1_510_000_000_000 - est.quantized_params * 2 + round(
        est.quantized_params * 4.5 / 8
    )
    text = est.render()
    assert "NVFP4" in text and "bounded memory" in text and "1,510.0 GB" in text


def test_dense_layers_come_from_the_config():
    tiny = {**GLM51, "num_hidden_layers": 4, "num_nextn_predict_layers": 0}
    tiny["mlp_layer_types"] = ["dense", "sparse", "dense", "sparse"]
    assert [bool(x.mlp_routed) for x in layer_params(tiny)] == [False, True, False, True]
    del tiny["mlp_layer_types"]
    tiny["first_k_dense_replace"] = 1
    assert [bool(x.mlp_routed) for x in layer_params(tiny)] == [False, True, True, True]


def test_shapes_from_sets_and_manifests(recipe):
    from glm51.calib.manifest import load_manifest

    shape = CalibShape.of_set(CalibSet("x", [[1, 2, 3], [4]]))
    assert (shape.samples, shape.tokens, shape.max_len) == (2, 4, 3)
    deep = load_manifest(recipe.pass_manifest("deep"))
    bound = CalibShape.of_manifest(deep)
    assert bound.tokens == deep.samples * deep.max_tokens


def test_missing_config_key_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="missing 'hidden_size'"):
        estimate({k: v for k, v in GLM51.items() if k != "hidden_size"}, [DEEP])
    with pytest.raises(InputError, match=r"no config\.json"):
        load_model_config(tmp_path)


def test_the_estimate_gives_each_rank_its_share_of_the_replay():
    from glm51.quantize import estimate as est

    config = GLM51
    units = [est.CalibShape("a", 64, 64 * 2048, 2048)]
    one = est.estimate(config, units)
    eight = est.estimate(config, units, ranks=8)
    assert "per rank" not in one.render() and one.rank_host_bytes == one.layerwise_host_bytes
    assert eight.layerwise_gpu_bytes == one.layerwise_gpu_bytes  # a whole layer on each
    replay_share = eight.rank_host_bytes - 2 * eight.largest_layer_bytes
    assert replay_share == (64 * 2048 // 8 + 2048) * config["hidden_size"] * 2 * 2
    assert "per rank          GPU" in eight.render() and "on 8 ranks" in eight.render()
    with pytest.raises(InputError, match="ranks 0: give 1 or more"):
        est.estimate(config, units, ranks=0)
