"""What gets quantized (quantize/targets.py), exactly: the ModelOpt config, the BF16 list,
the MTP exclusions and the config digest. Pure: no torch, no ModelOpt."""

import hashlib

from glm51.quantize.targets import (
    all_disabled,
    bf16_patterns,
    config_digest,
    modelopt_config,
    mtp_exclusions,
)

CONFIG = {"num_hidden_layers": 4, "first_k_dense_replace": 2, "num_nextn_predict_layers": 2}
FP4 = {"num_bits": (2, 1), "block_sizes": {-1: 16, "type": "dynamic", "scale_bits": (4, 3)}}


def test_mtp_exclusions_both_forms_per_layer():
    assert mtp_exclusions(CONFIG) == [
        "model.layers.4",
        "model.layers.4.*",
        "model.layers.5",
        "model.layers.5.*",
    ]
    assert mtp_exclusions({**CONFIG, "num_nextn_predict_layers": 0}) == []


def test_bf16_patterns_in_order_without_duplicates():
    keep = ("lm_head", "model.layers.0.mlp.*", "*self_attn*")
    assert bf16_patterns(keep, CONFIG) == [
        "lm_head",
        "model.layers.0.mlp.*",
        "*self_attn*",
        "model.layers.1.mlp.*",
        "model.layers.4",
        "model.layers.4.*",
        "model.layers.5",
        "model.layers.5.*",
    ]


def test_modelopt_config_exactly(recipe):
    q = recipe.quantize.model_copy(
        update={"quantize": ("*experts.",), "keep_bf16": ("lm_head",), "group_size": 16}
    )
    cfg = modelopt_config(q, CONFIG)
    assert cfg == {
        "quant_cfg": [
            {"quantizer_name": "*", "enable": False},
            {"quantizer_name": "*experts.weight_quantizer*", "cfg": FP4},
            {"quantizer_name": "*experts.input_quantizer", "cfg": FP4},
            {"quantizer_name": "lm_head", "enable": False},
            {"quantizer_name": "model.layers.0.mlp.*", "enable": False},
            {"quantizer_name": "model.layers.1.mlp.*", "enable": False},
            {"quantizer_name": "model.layers.4", "enable": False},
            {"quantizer_name": "model.layers.4.*", "enable": False},
            {"quantizer_name": "model.layers.5", "enable": False},
            {"quantizer_name": "model.layers.5.*", "enable": False},
        ],
        "algorithm": q.calibration_method,
    }
    q32 = q.model_copy(update={"group_size": 32})
    assert modelopt_config(q32, CONFIG)["quant_cfg"][1]["cfg"]["block_sizes"][-1] == 32


def test_all_disabled_keeps_only_the_first_entry(recipe):
    cfg = modelopt_config(recipe.quantize, CONFIG)
    off = all_disabled(cfg)
    assert off == {**cfg, "quant_cfg": [{"quantizer_name": "*", "enable": False}]}
    assert len(cfg["quant_cfg"]) > 1  # the original is left as it was


def test_config_digest_is_sha256_of_the_repr(recipe):
    cfg = modelopt_config(recipe.quantize, CONFIG)
    assert config_digest(cfg) == hashlib.sha256(repr(cfg).encode()).hexdigest()
    assert config_digest(cfg) != config_digest(all_disabled(cfg))
