"""What gets quantized: the ModelOpt config from the recipe, and the layers derived from the
model config (dense MLP layers, the MTP/NextN layer) that stay BF16."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from glm51.checkpoint.layout import dense_layers, mtp_layers
from glm51.recipe.quantize import QuantizeRecipe


# NVFP4: E2M1 values, one FP8 E4M3 scale per `group_size` elements, an FP32 global scale.
# The same attributes ModelOpt's NVFP4_DEFAULT_CFG gives its weight and input quantizers.
def _nvfp4(group_size: int) -> dict[str, Any]:
    block = {-1: group_size, "type": "dynamic", "scale_bits": (4, 3)}
    return {"num_bits": (2, 1), "block_sizes": block}


def mtp_exclusions(config: Mapping[str, Any]) -> list[str]:
    # Both forms, as ModelOpt writes them: "model.layers.7*" alone would also match layer 70.
    out = []
    for i in mtp_layers(config):
        out += [f"model.layers.{i}", f"model.layers.{i}.*"]
    return out


def bf16_patterns(keep_bf16: tuple[str, ...], config: Mapping[str, Any]) -> list[str]:
    """What stays BF16, as the export's exclude list: the recipe's patterns, the dense MLPs,
    the MTP layers. The ModelOpt config disables the same patterns."""
    out = list(keep_bf16)
    out += [f"model.layers.{i}.mlp.*" for i in dense_layers(config)]
    out += mtp_exclusions(config)
    return list(dict.fromkeys(out))


def all_disabled(qcfg: Mapping[str, Any]) -> dict[str, Any]:
    """The same config with every quantizer off (its first entry disables "*"): a dense layer
    still goes through ModelOpt's conversion, so its attention runs as in the whole model."""
    return {**qcfg, "quant_cfg": qcfg["quant_cfg"][:1]}


def modelopt_config(recipe: QuantizeRecipe, config: Mapping[str, Any]) -> dict[str, Any]:
    """NVFP4 on the recipe's targets only; everything else (and what it keeps BF16) disabled."""
    fp4 = _nvfp4(recipe.group_size)
    entries: list[dict[str, Any]] = [{"quantizer_name": "*", "enable": False}]
    for pattern in recipe.quantize:
        entries.append({"quantizer_name": f"{pattern}weight_quantizer*", "cfg": fp4})
        entries.append({"quantizer_name": f"{pattern}input_quantizer", "cfg": fp4})
    entries += [
        {"quantizer_name": p, "enable": False} for p in bf16_patterns(recipe.keep_bf16, config)
    ]
    return {"quant_cfg": entries, "algorithm": recipe.calibration_method}


def config_digest(qcfg: Mapping[str, Any]) -> str:
    # repr, not JSON: block_sizes has int and str keys side by side.
    return hashlib.sha256(repr(qcfg).encode()).hexdigest()
