"""Disk, host memory and GPU memory a quantization run will need, from the model config.

Printed before a run starts, so a 1.5 TB job fails on arithmetic rather than hours in.
Parameter counts follow the `glm_moe_dsa` layout (MLA attention with a DSA indexer, dense
MLP in the first layers, routed + shared experts after, NextN/MTP layers stored after the
decoder layers). Activation sizes are rough upper bounds of what one layer's forward holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from glm51.checkpoint.layout import moe_layers
from glm51.errors import InputError

NVFP4_BITS = 4.5  # 4-bit E2M1 + one FP8 E4M3 scale per 16 elements (+ negligible FP32 scalars)
BF16 = 2


@dataclass(frozen=True)
class CalibShape:
    """One calibration unit (a pass or a chunk of one): what its activations need."""

    name: str
    samples: int
    tokens: int
    max_len: int

    @classmethod
    def of_set(cls, calib: Any) -> CalibShape:
        """From a CalibSet: exact."""
        return cls(calib.name, len(calib.samples), calib.tokens, calib.max_len)

    @classmethod
    def of_manifest(cls, manifest: Any) -> CalibShape:
        """From a Manifest before it is built: an upper bound (every sample at max_tokens)."""
        n = manifest.samples
        return cls(manifest.name, n, n * manifest.max_tokens, manifest.max_tokens)


@dataclass(frozen=True)
class LayerParams:
    attention: int
    mlp_routed: int  # the part that becomes NVFP4 (zero in dense and MTP layers' keep-lists)
    mlp_other: int  # dense MLP, or shared experts + router


def _get(config: Mapping[str, Any], key: str, default: Any = None) -> Any:
    value = config.get(key, default)
    if value is None:
        raise InputError(f"config.json: missing {key!r}, needed for the estimate")
    return value


def _attention_params(c: Mapping[str, Any]) -> int:
    h, heads = _get(c, "hidden_size"), _get(c, "num_attention_heads")
    q_rank, kv_rank = c.get("q_lora_rank"), _get(c, "kv_lora_rank")
    nope, rope, v = (_get(c, k) for k in ("qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"))
    qk = nope + rope
    q = h * q_rank + q_rank + q_rank * heads * qk if q_rank else h * heads * qk
    kv = h * (kv_rank + rope) + kv_rank + kv_rank * heads * (nope + v)
    out = heads * v * h
    indexer = 0
    if c.get("index_n_heads"):
        ih, idim = c["index_n_heads"], _get(c, "index_head_dim")
        indexer = (q_rank or h) * ih * idim + h * idim + 2 * idim + h * ih
    return q + kv + out + indexer + 2 * h  # + input/post-attention norms


def layer_params(config: Mapping[str, Any]) -> list[LayerParams]:
    """Decoder layers, then the NextN/MTP layers (MoE, kept BF16 by the recipe)."""
    h = _get(config, "hidden_size")
    attn = _attention_params(config)
    experts, inter = _get(config, "n_routed_experts"), _get(config, "moe_intermediate_size")
    routed = experts * 3 * inter * h
    shared = config.get("n_shared_experts", 0) * 3 * inter * h + experts * h + experts
    dense = 3 * _get(config, "intermediate_size") * h
    _get(config, "num_hidden_layers")
    moe = set(moe_layers(config))
    layers = [
        LayerParams(attn, routed, shared) if i in moe else LayerParams(attn, 0, dense)
        for i in range(config["num_hidden_layers"])
    ]
    # MTP: a full MoE layer plus enorm, hnorm, eh_proj [H, 2H] and its head norm; BF16.
    for _ in range(config.get("num_nextn_predict_layers", 0)):
        layers.append(LayerParams(attn + 2 * h * h + 3 * h, 0, routed + shared))
    return layers


@dataclass(frozen=True)
class Estimate:
    params: int
    mtp_params: int  # NextN/MTP layers, part of params, kept BF16
    quantized_params: int
    source_bytes: int  # the BF16 checkpoint
    output_bytes: int  # the NVFP4 checkpoint
    largest_layer_bytes: int  # one decoder layer in BF16
    activation_bytes: int  # one layer's forward over the largest calibration sample
    replay_bytes: int  # layer inputs + outputs of the largest calibration unit (layerwise)
    calib_tokens: int
    resident_gpu_bytes: int
    resident_host_bytes: int
    layerwise_gpu_bytes: int
    layerwise_host_bytes: int
    # Data-parallel bounded mode (torchrun): each rank holds one layer and its share of the
    # replay buffer; on one box the host holds every local rank's.
    ranks: int = 1
    rank_host_bytes: int = 0

    def render(self) -> str:
        per_rank = (
            [
                f"per rank          GPU {gb(self.layerwise_gpu_bytes)}, host "
                f"{gb(self.rank_host_bytes)} (bounded memory on {self.ranks} ranks: a layer "
                f"and 1/{self.ranks} of the replay each; {self.ranks} ranks on one box: host "
                f"{gb(self.ranks * self.rank_host_bytes)})"
            ]
            if self.ranks > 1
            else []
        )
        return "\n".join(
            [
                f"parameters        {count(self.params)} "
                f"({count(self.params - self.mtp_params)} without the MTP layer; "
                f"{count(self.quantized_params)} routed-expert weights to NVFP4)",
                f"source (BF16)     {gb(self.source_bytes)}",
                f"output (NVFP4)    {gb(self.output_bytes)} on disk",
                f"calibration       {self.calib_tokens:,} tokens",
                f"largest layer     {gb(self.largest_layer_bytes)} BF16; activations "
                f"{gb(self.activation_bytes)}; layer replay buffer {gb(self.replay_bytes)}",
                f"resident mode     GPU {gb(self.resident_gpu_bytes)}, "
                f"host {gb(self.resident_host_bytes)}",
                f"bounded memory    GPU {gb(self.layerwise_gpu_bytes)}, "
                f"host {gb(self.layerwise_host_bytes)} (one decoder layer at a time)",
                *per_rank,
            ]
        )


def _scaled(n: float, units: tuple[str, ...]) -> str:
    """1,507.7 GB for the real model, 2.4 MB for the tiny one (decimal units)."""
    power = 0
    while power + 1 < len(units) and abs(n) >= 1000 ** (power + 1):
        power += 1
    if power == 0:
        return f"{n:,.0f} {units[0]}".strip()
    return f"{n / 1000**power:,.1f} {units[power]}"


def gb(n: int) -> str:
    return _scaled(n, ("B", "kB", "MB", "GB"))


def count(n: int) -> str:
    return _scaled(n, ("", "K", "M", "B"))


def _activation_bytes(c: Mapping[str, Any], max_len: int, batch_size: int, eager: bool) -> int:
    h, heads = _get(c, "hidden_size"), _get(c, "num_attention_heads")
    t = batch_size * max_len
    hidden = 8 * t * h * BF16  # residual, norms, attention and MLP outputs
    head_dims = (
        2 * _get(c, "qk_nope_head_dim") + _get(c, "qk_rope_head_dim") + _get(c, "v_head_dim")
    )
    qkv = t * heads * head_dims * BF16
    moe = t * _get(c, "num_experts_per_tok") * 3 * _get(c, "moe_intermediate_size") * BF16
    router = t * _get(c, "n_routed_experts") * 4
    # The DSA indexer's [B, L, L] logits (FP32); eager attention adds [B, heads, L, L] scores.
    scores = batch_size * max_len * max_len * (4 + (heads * BF16 if eager else 0))
    return hidden + qkv + moe + router + scores


def estimate(
    config: Mapping[str, Any],
    calib: Sequence[CalibShape],
    *,
    index: Mapping[str, Any] | None = None,
    batch_size: int = 1,
    eager_attention: bool = False,
    ranks: int = 1,
) -> Estimate:
    """Estimate for a model config (+ its safetensors index) and the calibration units;
    `ranks`: the data-parallel bounded mode's processes (each replays 1/ranks of a unit)."""
    if ranks < 1:
        raise InputError(f"ranks {ranks}: give 1 or more")
    layers = layer_params(config)
    n_mtp = config.get("num_nextn_predict_layers", 0)
    h, vocab = _get(config, "hidden_size"), _get(config, "vocab_size")
    embed = vocab * h * (1 if config.get("tie_word_embeddings") else 2) + h  # + final norm
    params = embed + sum(x.attention + x.mlp_routed + x.mlp_other for x in layers)
    quantized = sum(x.mlp_routed for x in layers)
    source = params * BF16
    if index and index.get("metadata", {}).get("total_size"):
        source = int(index["metadata"]["total_size"])  # measured beats counted
    output = source - quantized * BF16 + round(quantized * NVFP4_BITS / 8)
    largest = max(x.attention + x.mlp_routed + x.mlp_other for x in layers) * BF16
    max_len = max((u.max_len for u in calib), default=0)
    act = _activation_bytes(config, max_len, batch_size, eager_attention) if max_len else 0
    # Layerwise replay keeps every token's hidden state of the unit being calibrated, in and out.
    replay = max((u.tokens for u in calib), default=0) * h * BF16 * 2
    # A rank's share: whole samples, so up to one longest sample more than 1/ranks of it.
    share = max((-(-u.tokens // ranks) + u.max_len for u in calib), default=0) * h * BF16 * 2
    share = min(share, replay)
    return Estimate(
        params=params,
        mtp_params=sum(x.attention + x.mlp_other for x in layers[len(layers) - n_mtp :]),
        quantized_params=quantized,
        source_bytes=source,
        output_bytes=output,
        largest_layer_bytes=largest,
        activation_bytes=act,
        replay_bytes=replay,
        calib_tokens=sum(u.tokens for u in calib),
        resident_gpu_bytes=source + act,
        # The exported state dict is gathered on the host before it is written.
        resident_host_bytes=output,
        layerwise_gpu_bytes=largest + act,
        # One layer read from the checkpoint, its quantized copy being written, the replay.
        layerwise_host_bytes=2 * largest + replay,
        ranks=ranks,
        rank_host_bytes=2 * largest + share,
    )
