"""Build a tiny checkpoint laid out like GLM-5.1-NVFP4 (test scaffolding, not a model).

Real key names and dtypes, tiny sizes: config.json (`glm_moe_dsa`, the real config keys,
`quantization_config` as ModelOpt 0.47's export writes it), hf_quant_config.json,
model.safetensors.index.json and hand-written safetensors shards:

- routed experts `model.layers.N.mlp.experts.E.{gate,up,down}_proj.` `weight` (U8, two E2M1
  per byte), `weight_scale` (F8_E4M3, one per 16 inputs), `weight_scale_2` and `input_scale`
  (F32 scalars);
- BF16 attention (MLA + the DSA indexer), shared experts, dense MLPs, norms, embeddings,
  lm_head; the router gate and its e_score_correction_bias in F32;
- the MTP/NextN layer `model.layers.{num_hidden_layers}.*` (BF16, excluded from quantization).

Knobs break it the ways preflight must catch. The weights are zeros and the scales 1.0:
nothing can run it.

    python -m tests.support.checkpoint OUT_DIR [--no-mtp] [--layers N] [--shards S]
"""

from __future__ import annotations

import argparse
import json
import struct
from dataclasses import dataclass
from pathlib import Path

from glm51.checkpoint.safetensors import read_header

BYTES = {"BF16": 2, "F32": 4, "F8_E4M3": 1, "U8": 1}


@dataclass(frozen=True)
class Sizes:
    num_hidden_layers: int = 4
    first_k_dense_replace: int = 1
    n_routed_experts: int = 4
    hidden_size: int = 64
    intermediate_size: int = 128
    moe_intermediate_size: int = 32
    num_attention_heads: int = 2
    q_lora_rank: int = 32
    kv_lora_rank: int = 16
    qk_nope_head_dim: int = 16
    qk_rope_head_dim: int = 8
    v_head_dim: int = 16
    index_n_heads: int = 2
    index_head_dim: int = 16
    vocab_size: int = 256


def config_json(s: Sizes, *, model_type: str, mtp: bool) -> dict:
    """GLM-5.1's config.json keys (GlmMoeDsaForCausalLM), with tiny sizes."""
    return {
        "architectures": ["GlmMoeDsaForCausalLM"],
        "model_type": model_type,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "eos_token_id": [1, 2],
        "pad_token_id": 3,
        "first_k_dense_replace": s.first_k_dense_replace,
        "hidden_act": "silu",
        "hidden_size": s.hidden_size,
        "index_head_dim": s.index_head_dim,
        "index_n_heads": s.index_n_heads,
        "index_topk": 8,
        "initializer_range": 0.02,
        "intermediate_size": s.intermediate_size,
        "kv_lora_rank": s.kv_lora_rank,
        "max_position_embeddings": 4096,
        "moe_intermediate_size": s.moe_intermediate_size,
        "moe_layer_freq": 1,
        "n_group": 1,
        "n_routed_experts": s.n_routed_experts,
        "n_shared_experts": 1,
        "norm_topk_prob": True,
        "num_attention_heads": s.num_attention_heads,
        "num_experts_per_tok": 2,
        "num_hidden_layers": s.num_hidden_layers,
        "num_key_value_heads": s.num_attention_heads,
        "num_nextn_predict_layers": 1 if mtp else 0,
        "q_lora_rank": s.q_lora_rank,
        "qk_head_dim": s.qk_nope_head_dim + s.qk_rope_head_dim,
        "qk_nope_head_dim": s.qk_nope_head_dim,
        "qk_rope_head_dim": s.qk_rope_head_dim,
        "rms_norm_eps": 1e-05,
        "rope_theta": 1000000,
        "routed_scaling_factor": 2.5,
        "scoring_func": "sigmoid",
        "tie_word_embeddings": False,
        "topk_group": 1,
        "topk_method": "noaux_tc",
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "v_head_dim": s.v_head_dim,
        "vocab_size": s.vocab_size,
    }


def _nvfp4(prefix: str, out_dim: int, in_dim: int) -> dict[str, tuple[str, tuple[int, ...]]]:
    return {
        f"{prefix}.weight": ("U8", (out_dim, in_dim // 2)),
        f"{prefix}.weight_scale": ("F8_E4M3", (out_dim, in_dim // 16)),
        f"{prefix}.weight_scale_2": ("F32", ()),
        f"{prefix}.input_scale": ("F32", ()),
    }


def _bf16(prefix: str, *shape: int) -> dict[str, tuple[str, tuple[int, ...]]]:
    return {f"{prefix}.weight": ("BF16", tuple(shape))}


def _mlp(prefix: str, inter: int, hidden: int, *, nvfp4: bool):
    make = (lambda p, o, i: _nvfp4(p, o, i)) if nvfp4 else (lambda p, o, i: _bf16(p, o, i))
    return {
        **make(f"{prefix}.gate_proj", inter, hidden),
        **make(f"{prefix}.up_proj", inter, hidden),
        **make(f"{prefix}.down_proj", hidden, inter),
    }


def tensors(s: Sizes, *, mtp: bool, shared_nvfp4: bool) -> dict[str, tuple[str, tuple]]:
    """name -> (dtype, shape), in the real checkpoint's naming."""
    h, qk = s.hidden_size, s.qk_nope_head_dim + s.qk_rope_head_dim
    out: dict[str, tuple[str, tuple]] = {
        **_bf16("model.embed_tokens", s.vocab_size, h),
        **_bf16("model.norm", h),
        **_bf16("lm_head", s.vocab_size, h),
    }
    layers = s.num_hidden_layers + (1 if mtp else 0)
    for n in range(layers):
        p = f"model.layers.{n}"
        is_mtp = n == s.num_hidden_layers
        attn = f"{p}.self_attn"
        out |= {
            **_bf16(f"{p}.input_layernorm", h),
            **_bf16(f"{p}.post_attention_layernorm", h),
            **_bf16(f"{attn}.q_a_proj", s.q_lora_rank, h),
            **_bf16(f"{attn}.q_a_layernorm", s.q_lora_rank),
            **_bf16(f"{attn}.q_b_proj", s.num_attention_heads * qk, s.q_lora_rank),
            **_bf16(f"{attn}.kv_a_proj_with_mqa", s.kv_lora_rank + s.qk_rope_head_dim, h),
            **_bf16(f"{attn}.kv_a_layernorm", s.kv_lora_rank),
            **_bf16(
                f"{attn}.kv_b_proj",
                s.num_attention_heads * (s.qk_nope_head_dim + s.v_head_dim),
                s.kv_lora_rank,
            ),
            **_bf16(f"{attn}.o_proj", h, s.num_attention_heads * s.v_head_dim),
            # The DSA indexer.
            **_bf16(f"{attn}.indexer.wq_b", s.index_n_heads * s.index_head_dim, s.q_lora_rank),
            **_bf16(f"{attn}.indexer.wk", s.index_head_dim, h),
            **_bf16(f"{attn}.indexer.k_norm", s.index_head_dim),
            f"{attn}.indexer.k_norm.bias": ("BF16", (s.index_head_dim,)),
            **_bf16(f"{attn}.indexer.weights_proj", s.index_n_heads, h),
        }
        if n < s.first_k_dense_replace:
            out |= _mlp(f"{p}.mlp", s.intermediate_size, h, nvfp4=False)
            continue
        m = s.moe_intermediate_size
        out |= {
            f"{p}.mlp.gate.weight": ("F32", (s.n_routed_experts, h)),
            f"{p}.mlp.gate.e_score_correction_bias": ("F32", (s.n_routed_experts,)),
            **_mlp(f"{p}.mlp.shared_experts", m, h, nvfp4=shared_nvfp4 and not is_mtp),
        }
        for e in range(s.n_routed_experts):
            out |= _mlp(f"{p}.mlp.experts.{e}", m, h, nvfp4=not is_mtp)
        if is_mtp:
            out |= {
                **_bf16(f"{p}.embed_tokens", s.vocab_size, h),
                **_bf16(f"{p}.enorm", h),
                **_bf16(f"{p}.hnorm", h),
                **_bf16(f"{p}.eh_proj", h, 2 * h),
                **_bf16(f"{p}.shared_head.norm", h),
                **_bf16(f"{p}.shared_head.head", s.vocab_size, h),
            }
    return out


def exclude_modules(s: Sizes, *, exclude_shared: bool) -> list[str]:
    """What stays BF16, as glob patterns over module names (the recipe's keep_bf16 + derived)."""
    patterns = ["*self_attn*", "*mlp.gate*", "*embed_tokens*", "*lm_head*"]
    if exclude_shared:
        patterns.insert(2, "*shared_experts*")
    patterns += [f"model.layers.{n}.mlp*" for n in range(s.first_k_dense_replace)]
    patterns.append(f"model.layers.{s.num_hidden_layers}*")  # the MTP layer
    return patterns


def write_safetensors(path: Path, entries: dict[str, tuple[str, tuple]]) -> None:
    """The format by hand: u64 little-endian header length, JSON header, then the data."""
    header: dict[str, dict] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name in sorted(entries):
        dtype, shape = entries[name]
        count = 1
        for dim in shape:
            count *= dim
        size = count * BYTES[dtype]
        header[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format pads the header to 8 bytes
    data = bytearray(offset)
    for name in sorted(entries):  # scales of 1.0 (valid, as `glm51 verify` checks), weights 0
        begin, end = header[name]["data_offsets"]
        if name.endswith(("weight_scale_2", "input_scale")) and entries[name][0] == "F32":
            data[begin:end] = struct.pack("<f", 1.0) * ((end - begin) // 4)
        elif name.endswith("weight_scale") and entries[name][0] == "F8_E4M3":
            data[begin:end] = b"\x38" * (end - begin)  # E4M3 1.0
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        fh.write(data)


def build(
    out: Path,
    *,
    sizes: Sizes = Sizes(),
    shards: int = 4,
    model_type: str = "glm_moe_dsa",
    quant_algo: str = "NVFP4",
    group_size: int = 16,
    mtp: bool = True,
    exclude_shared: bool = True,
    quant_config_in: tuple[str, ...] = ("config.json", "hf_quant_config.json"),
) -> Path:
    """Write the checkpoint into ``out`` (created) and return it."""
    out.mkdir(parents=True, exist_ok=True)
    excluded = exclude_modules(sizes, exclude_shared=exclude_shared)
    config = config_json(sizes, model_type=model_type, mtp=mtp)
    producer = {"name": "modelopt", "version": "0.47.0"}
    if "config.json" in quant_config_in:
        # What ModelOpt's convert_hf_quant_config_format writes into config.json.
        fp4 = {"dynamic": False, "num_bits": 4, "type": "float", "group_size": group_size}
        config["quantization_config"] = {
            "config_groups": {
                "group_0": {"input_activations": fp4, "weights": fp4, "targets": ["Linear"]}
            },
            "ignore": excluded,
            "quant_algo": quant_algo,
            "producer": producer,
            "quant_method": "modelopt",
        }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    if "hf_quant_config.json" in quant_config_in:
        hf_quant = {
            "producer": producer,
            "quantization": {
                "quant_algo": quant_algo,
                "kv_cache_quant_algo": None,
                "group_size": group_size,
                "exclude_modules": excluded,
            },
        }
        (out / "hf_quant_config.json").write_text(json.dumps(hf_quant, indent=2) + "\n")

    entries = tensors(sizes, mtp=mtp, shared_nvfp4=not exclude_shared)
    names = sorted(entries, key=_layer_order)
    per_shard = -(-len(names) // shards)
    weight_map = {}
    for i in range(shards):
        shard = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        chunk = names[i * per_shard : (i + 1) * per_shard]
        write_safetensors(out / shard, {n: entries[n] for n in chunk})
        weight_map |= dict.fromkeys(chunk, shard)
    total = sum((out / s).stat().st_size for s in set(weight_map.values()))
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return out


def _layer_order(name: str) -> tuple[int, str]:
    # Shards follow the layers, like the real export (the MTP layer lands in the last one).
    parts = name.split(".")
    if parts[:2] == ["model", "layers"]:
        return int(parts[2]), name
    return (-1 if "embed" in name else 10**6), name


def shard_names(path: Path) -> list[str]:
    index = json.loads((path / "model.safetensors.index.json").read_text())
    return sorted(set(index["weight_map"].values()))


def drop_shard(path: Path, number: int = 1) -> str:
    """Delete the ``number``-th shard (1-based); returns its name."""
    name = shard_names(path)[number - 1]
    (path / name).unlink()
    return name


def truncate_shard(path: Path, number: int = 1, *, part: str = "data", short_by: int = 7) -> str:
    """Cut the shard short: inside its header (``part='header'``) or by ``short_by`` bytes of
    its data."""
    name = shard_names(path)[number - 1]
    file = path / name
    (header_len,) = struct.unpack("<Q", file.read_bytes()[:8])
    size = 8 + header_len // 2 if part == "header" else file.stat().st_size - short_by
    with file.open("r+b") as fh:
        fh.truncate(size)
    return name


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.checkpoint",
        description="Write a tiny GLM-5.1-NVFP4-shaped checkpoint (test scaffolding).",
    )
    parser.add_argument("out", type=Path, help="folder to write (created)")
    parser.add_argument("--layers", type=int, default=4, help="num_hidden_layers (default 4)")
    parser.add_argument("--experts", type=int, default=4, help="routed experts (default 4)")
    parser.add_argument("--shards", type=int, default=4, help="safetensors shards (default 4)")
    parser.add_argument("--no-mtp", action="store_true", help="leave out the MTP layer")
    args = parser.parse_args(argv)
    sizes = Sizes(num_hidden_layers=args.layers, n_routed_experts=args.experts)
    out = build(args.out, sizes=sizes, shards=args.shards, mtp=not args.no_mtp)
    print(out)


if __name__ == "__main__":
    main()


# ---------------------------------------------------------------- editing a built checkpoint
EXPERT = "model.layers.1.mlp.experts.0.gate_proj"  # a routed expert's NVFP4 projection


def shard_of(folder: Path, tensor: str) -> str:
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    return index["weight_map"][tensor]


def tensor_offset(folder: Path, tensor: str) -> tuple[Path, int, int]:
    path = folder / shard_of(folder, tensor)
    header = read_header(path)
    info = header.tensors[tensor]
    base = 8 + header.header_len
    return path, base + info.begin, base + info.end


def drop_tensor(folder: Path, tensor: str) -> None:
    """Rewrite the tensor's shard without it, and the index without its entry."""
    path = folder / shard_of(folder, tensor)
    header = read_header(path)
    raw = path.read_bytes()
    base = 8 + header.header_len
    entries = {n: (i.dtype, i.shape) for n, i in header.tensors.items() if n != tensor}
    data = {n: raw[base + i.begin : base + i.end] for n, i in header.tensors.items()}
    write_safetensors(path, entries)
    # write_safetensors lays tensors out sorted by name: put the original bytes back.
    new = read_header(path)
    nbase = 8 + new.header_len
    with path.open("r+b") as fh:
        for name, info in new.tensors.items():
            fh.seek(nbase + info.begin)
            fh.write(data[name])
    index_file = folder / "model.safetensors.index.json"
    index = json.loads(index_file.read_text())
    del index["weight_map"][tensor]
    index_file.write_text(json.dumps(index))
