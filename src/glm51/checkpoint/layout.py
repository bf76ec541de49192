"""Which decoder layers are dense, MoE or MTP, from a `glm_moe_dsa` config (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def dense_layers(config: Mapping[str, Any]) -> list[int]:
    """Decoder layers with a dense MLP (`mlp_layer_types`, else `first_k_dense_replace`)."""
    n = int(config["num_hidden_layers"])
    types = config.get("mlp_layer_types")
    if types:
        return [i for i, t in enumerate(types[:n]) if t == "dense"]
    return list(range(min(int(config.get("first_k_dense_replace", 0)), n)))


def moe_layers(config: Mapping[str, Any]) -> list[int]:
    dense = set(dense_layers(config))
    return [i for i in range(int(config["num_hidden_layers"])) if i not in dense]


def mtp_layers(config: Mapping[str, Any]) -> list[int]:
    """MTP/NextN layers are stored after the decoder layers: model.layers.{N}..{N+k-1}."""
    n = int(config["num_hidden_layers"])
    return list(range(n, n + int(config.get("num_nextn_predict_layers") or 0)))
