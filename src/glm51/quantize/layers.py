"""Build decoder layers from a BF16 checkpoint read a few tensors at a time.

The bounded-memory mode never holds the whole model: the model is a skeleton on the meta
device and each decoder layer is materialized from the safetensors shards when its turn
comes. Expert weights are stored per expert (as upstream) and fused here into the 3-D
parameters transformers' `glm_moe_dsa` uses (gate and up concatenated along the output).
"""

from __future__ import annotations

import re

from glm51.checkpoint.folder import Checkpoint
from glm51.errors import InputError

_EXPERT = re.compile(r"^(?P<pre>.*\.mlp\.experts)\.(?P<e>\d+)\.(?P<proj>\w+)\.weight$")


def fuse_experts(tensors: dict) -> dict:
    """Per-expert `experts.{e}.{gate,up,down}_proj.weight` -> `experts.gate_up_proj` [E,2I,H]
    and `experts.down_proj` [E,H,I], the in-memory layout of transformers 5.x."""
    import torch

    out, groups = {}, {}
    for name, value in tensors.items():
        m = _EXPERT.match(name)
        if not m:
            out[name] = value
            continue
        groups.setdefault(m["pre"], {}).setdefault(int(m["e"]), {})[m["proj"]] = value
    for pre, experts in groups.items():
        ids = sorted(experts)
        if ids != list(range(len(ids))):
            raise InputError(f"{pre}: expert ids are not 0..{len(ids) - 1}")
        try:
            out[f"{pre}.gate_up_proj"] = torch.stack(
                [torch.cat([experts[e]["gate_proj"], experts[e]["up_proj"]]) for e in ids]
            )
            out[f"{pre}.down_proj"] = torch.stack([experts[e]["down_proj"] for e in ids])
        except KeyError as exc:
            raise InputError(f"{pre}: an expert lacks {exc.args[0]}.weight") from None
    return out


def load_into(module, ckpt: Checkpoint, prefix: str, device: str) -> None:
    """Materialize a meta-device `module` from the checkpoint tensors under `prefix`."""
    tensors = fuse_experts(ckpt.read(ckpt.keys(prefix)))
    state = {k.removeprefix(prefix): v for k, v in tensors.items()}
    module.to_empty(device=device)
    # Non-persistent buffers (none in a decoder layer) would stay uninitialized: refuse them.
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise InputError(
            f"{ckpt.dir}: {prefix}* does not fit the model class "
            f"(missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})"
        )


def release() -> None:
    """Give a dropped layer's memory back: collect module reference cycles (ModelOpt's
    wrappers hold some), then return freed heap pages to the OS (glibc keeps them)."""
    import contextlib
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def decoder_inputs(config, rotary, h, device):  # type: ignore[no-untyped-def]
    """What a decoder layer takes for one sample's hidden state ``h`` (batch 1): the state on
    ``device``, the causal mask, the positions and the rotary embeddings."""
    import torch
    from transformers.masking_utils import create_causal_mask

    h = h.to(device)
    pos = torch.arange(h.shape[1], device=device).unsqueeze(0)
    mask = create_causal_mask(
        config=config,
        inputs_embeds=h,
        attention_mask=None,
        past_key_values=None,
        position_ids=pos,
        allow_is_causal_skip=False,  # the DSA indexer needs the mask, as in the model
    )
    return h, mask, pos, rotary(h, position_ids=pos)
