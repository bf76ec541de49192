"""A tiny random `glm_moe_dsa` checkpoint (a few hundred KB) for tests and the rehearsal.

Same class, same tensor names and the same on-disk layout as GLM-5.1: per-expert keys, the
MTP/NextN layer inlined as ``model.layers.{num_hidden_layers}.*`` (transformers drops it on
load, so it is written here by hand), a tokenizer with a GLM-style chat template. Seeded:
two builds are byte-identical.
"""

from __future__ import annotations

import json
import shutil
import string
from pathlib import Path

from glm51.outputs import (
    check_output_folder,
    os_errors,
    publish_folder,
    save_tensors,
    staging_folder,
    write_text,
)

SPECIAL_TOKENS = (
    "<|endoftext|>",
    "[gMASK]",
    "<sop>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|observation|>",
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<arg_key>",
    "</arg_key>",
    "<arg_value>",
    "</arg_value>",
    "<tool_response>",
    "</tool_response>",
    "[UNK]",
)

# GLM-4.5/5 layout: [gMASK]<sop>, role tags, tools listed in a system turn, tool calls as
# <tool_call>name<arg_key>k</arg_key><arg_value>v</arg_value></tool_call>, tool results as
# observations.
CHAT_TEMPLATE = (
    "[gMASK]<sop>"
    "{%- if tools -%}<|system|>\n# Tools\n"
    "{%- for tool in tools %}\n{{ tool | tojson }}{% endfor -%}{%- endif -%}"
    "{%- for m in messages -%}"
    "{%- if m.role == 'system' -%}<|system|>\n{{ m.content }}"
    "{%- elif m.role == 'user' -%}<|user|>\n{{ m.content }}"
    "{%- elif m.role == 'assistant' -%}<|assistant|>\n{{ m.content or '' }}"
    "{%- for tc in m.tool_calls or [] -%}<tool_call>{{ tc.function.name }}"
    "{%- if tc.function.arguments is mapping -%}"
    "{%- for k, v in tc.function.arguments.items() -%}"
    "<arg_key>{{ k }}</arg_key><arg_value>{{ v | tojson }}</arg_value>"
    "{%- endfor -%}{%- else -%}{{ tc.function.arguments }}{%- endif -%}</tool_call>"
    "{%- endfor -%}"
    "{%- elif m.role == 'tool' -%}<|observation|>\n<tool_response>{{ m.content }}</tool_response>"
    "{%- endif -%}{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>\n{%- endif -%}"
)


def tiny_config_dict(num_layers: int = 3, *, hidden: int = 64, experts: int = 8) -> dict:
    """GLM-5.1's shape, shrunk: first layer dense, top-2 of `experts`, one shared expert."""
    if hidden % 16:
        raise ValueError("hidden must be a multiple of 16 (the NVFP4 block)")
    return dict(
        vocab_size=128,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        moe_intermediate_size=hidden // 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        n_routed_experts=experts,
        num_experts_per_tok=2,
        n_shared_experts=1,
        n_group=1,
        topk_group=1,
        kv_lora_rank=32,
        q_lora_rank=48,
        qk_rope_head_dim=16,
        qk_nope_head_dim=16,
        v_head_dim=16,
        index_topk=8,  # below the calibration length: the DSA sparse path runs
        index_head_dim=32,
        index_n_heads=2,
        first_k_dense_replace=1,
        num_nextn_predict_layers=1,
        max_position_embeddings=1024,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        bos_token_id=None,
        eos_token_id=0,
        pad_token_id=0,
        torch_dtype="bfloat16",
    )


def build_tokenizer():
    """A character-level BPE (no merges) over printable ASCII plus GLM's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = sorted(set(string.printable) - set("\x0b\x0c"))
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in chars:
        vocab[ch] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    core.decoder = decoders.Fuse()
    core.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        unk_token="[UNK]",
        chat_template=CHAT_TEMPLATE,
        model_max_length=1024,
    )


def _mtp_extras(hidden: int, generator, dtype) -> dict:
    import torch

    # DeepSeek-V3-style NextN head: combine normed embedding and hidden state, then a layer.
    return {
        "eh_proj.weight": (torch.randn(hidden, 2 * hidden, generator=generator) * 0.02).to(dtype),
        "enorm.weight": torch.ones(hidden, dtype=dtype),
        "hnorm.weight": torch.ones(hidden, dtype=dtype),
        "shared_head.norm.weight": torch.ones(hidden, dtype=dtype),
    }


def build_tiny_model(
    out: Path,
    *,
    num_layers: int = 3,
    hidden: int = 64,
    experts: int = 8,
    seed: int = 0,
    overwrite: bool = False,
    overrides: dict | None = None,
    init_dtype: str = "float32",
) -> Path:
    """Write the tiny checkpoint to `out` (a new folder, or one glm51 wrote with ``overwrite``);
    it appears whole or not at all. Returns `out`.

    overrides: config keys to replace (the benchmark's real GLM-5.1 layer geometry);
    init_dtype "bfloat16" builds the random weights in BF16 directly (half the memory of a
    multi-GB model; other bytes than the default FP32 build)."""
    out = Path(out)
    check_output_folder(out, overwrite=overwrite, option="OUT", command="tiny-model")
    tmp = staging_folder(out, "tiny-model")
    try:
        with os_errors(tmp):
            _write_tiny_model(tmp, num_layers, hidden, experts, seed, overrides, init_dtype)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return publish_folder(tmp, out)


def _write_tiny_model(
    out: Path,
    num_layers: int,
    hidden: int,
    experts: int,
    seed: int,
    overrides: dict | None,
    init_dtype: str,
) -> None:
    import tempfile

    import torch
    from safetensors.torch import load_file
    from transformers import GenerationConfig, GlmMoeDsaConfig, GlmMoeDsaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a few kB: no "Writing model shards" bar

    cfg_dict = {**tiny_config_dict(num_layers, hidden=hidden, experts=experts), **(overrides or {})}
    hidden = int(cfg_dict["hidden_size"])
    # One extra decoder layer: its weights become the MTP layer (a full MoE layer, as upstream).
    with_mtp = GlmMoeDsaConfig(**{**cfg_dict, "num_hidden_layers": num_layers + 1})
    torch.manual_seed(seed)
    default = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, init_dtype))
    try:
        model = GlmMoeDsaForCausalLM(with_mtp).to(torch.bfloat16)
    finally:
        torch.set_default_dtype(default)
    gen = torch.Generator().manual_seed(seed + 1)
    for layer in model.model.layers:
        if hasattr(layer.mlp, "gate"):  # a non-zero correction bias exercises the router path
            bias = layer.mlp.gate.e_score_correction_bias
            bias.copy_(torch.randn(bias.shape, generator=gen) * 0.01)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)  # per-expert keys, as the real checkpoint stores them
        tensors = {}
        for shard in sorted(Path(tmp).glob("*.safetensors")):  # big geometries: several
            tensors.update(load_file(str(shard)))
    mtp = f"model.layers.{num_layers}."
    for name, tensor in _mtp_extras(hidden, gen, torch.bfloat16).items():
        tensors[mtp + name] = tensor
    tensors = {k: v.to(torch.bfloat16).contiguous() for k, v in sorted(tensors.items())}
    save_tensors(tensors, out / "model.safetensors", {"format": "pt"})

    config = GlmMoeDsaConfig(**cfg_dict)
    config.architectures = ["GlmMoeDsaForCausalLM"]
    config.dtype = torch.bfloat16
    write_text(out / "config.json", config.to_json_string(use_diff=False))
    GenerationConfig(eos_token_id=[0], pad_token_id=0, do_sample=False).save_pretrained(out)
    build_tokenizer().save_pretrained(out)
    _strip_volatile(out)


def _strip_volatile(out: Path) -> None:
    """Drop fields that differ between otherwise identical builds (none expected, but cheap)."""
    for name in ("config.json", "generation_config.json"):
        path = out / name
        data = json.loads(path.read_text())
        data.pop("transformers_version", None)
        write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
