"""Two hidden-state streams through the model, one decoder layer at a time (as bounded
quantize walks it): the BF16 reference, and the candidate whose routed experts compute from
the NVFP4 checkpoint (candidate.py). Only one layer is materialized at a time; every sample's
two hidden states wait on the host between layers. At the end the final norm and lm_head run
on both streams and every position gets KL(BF16 || NVFP4) and top-1 agreement.

Per layer, besides the two streams, the candidate layer also runs on the reference's input:
the error that layer adds on its own (its "local" error), which is what finds a bad layer;
the streams' difference accumulates over the layers before it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from glm51.checkpoint.folder import Checkpoint
from glm51.checkpoint.layout import moe_layers
from glm51.errors import InputError
from glm51.fidelity.candidate import candidate_experts, nvfp4_experts_of
from glm51.fidelity.numerics import ErrorSum, position_kl
from glm51.quantize.calibrate import skeleton
from glm51.quantize.layers import decoder_inputs, load_into, release

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class LayerResult:
    layer: int
    moe: bool
    relative_error: float  # candidate stream vs reference stream, after this layer
    cosine: float
    local_relative_error: float  # this layer alone: candidate layer vs BF16 on the same input


@dataclass(frozen=True)
class Measurement:
    kl: object  # float64 [positions], every sequence's positions in order
    agree: object  # bool [positions]
    layers: tuple[LayerResult, ...]
    expert_errors: dict[int, list[float]]  # MoE layer -> per expert relative weight error
    positions_per_sequence: tuple[int, ...]


def _quiet(_what: str, _done: int, _total: int) -> None:
    pass


def _same_tensors(source: Checkpoint, candidate: Checkpoint, names: Sequence[str]) -> None:
    """The tensors both stream share must be the checkpoint's own, byte for byte."""
    import torch

    ours, theirs = source.read(names), candidate.read(names)
    for name in names:
        a, b = ours[name], theirs[name]
        if a.dtype != b.dtype and a.is_floating_point() and b.is_floating_point():
            a, b = a.double(), b.double()  # a BF16 buffer written as F32: the same values
        same = a.dtype == b.dtype and a.shape == b.shape
        if not same or not torch.equal(
            a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8)
        ):
            raise InputError(
                f"{candidate.dir}: {name} differs from the source's: not the source's quantization"
            )


def _bf16_names(ckpt: Checkpoint, prefix: str) -> list[str]:
    """Tensors under ``prefix`` that are not parts of an NVFP4 projection."""
    quantized = {
        k.removesuffix(".weight_scale") for k in ckpt.keys(prefix) if k.endswith(".weight_scale")
    }
    return [k for k in ckpt.keys(prefix) if k.rsplit(".", 1)[0] not in quantized]


def measure(
    source: Checkpoint,
    candidate: Checkpoint,
    samples: Sequence[Sequence[int]],
    *,
    device: str = "cpu",
    progress: Progress = _quiet,
) -> Measurement:
    import torch

    # oneDNN (torch's CPU BF16 matmul) caches a JIT-compiled primitive per GEMM shape, and
    # each MoE layer routes a new token count to every expert: new shapes, new primitives,
    # kept. Measured: 3-4 MiB of native heap more per layer, the whole depth creep of the
    # host peak (docs/fidelity.md). Off for the walk only; on a GPU it is not used.
    with warnings.catch_warnings():
        # flags() also sets oneDNN's TF32 switch, which warns on every CPU build ("available
        # for Intel GPUs"): noise to a user, nothing the walk uses.
        warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")
        with torch.backends.mkldnn.flags(enabled=False):
            return _measure(source, candidate, samples, device=device, progress=progress)


def _measure(
    source: Checkpoint,
    candidate: Checkpoint,
    samples: Sequence[Sequence[int]],
    *,
    device: str,
    progress: Progress,
) -> Measurement:
    import torch
    from torch import nn

    model = skeleton(source)
    config = model.config
    sparse = set(moe_layers(config.to_dict()))
    n_layers = int(config.num_hidden_layers)

    embed = model.model.embed_tokens
    _same_tensors(source, candidate, source.keys("model.embed_tokens."))
    load_into(embed, source, "model.embed_tokens.", device)
    rotary = type(model.model.rotary_emb)(config=config).to(device)
    with torch.no_grad():
        ref = [embed(torch.tensor([list(s)], device=device)).cpu() for s in samples]
    embed.to(device="meta")
    cand = list(ref)  # the same tensors until a layer changes them
    ref_topk: list = [None] * len(samples)
    cand_topk: list = [None] * len(samples)

    def inputs(h):
        h, mask, pos, rope = decoder_inputs(config, rotary, h, device)
        return {
            "hidden_states": h,
            "attention_mask": mask,
            "position_ids": pos,
            "position_embeddings": rope,
            "past_key_values": None,
            "use_cache": False,
        }

    layers: list[LayerResult] = []
    expert_errors: dict[int, list[float]] = {}
    for i in range(n_layers):
        prefix = f"model.layers.{i}."
        layer = model.model.layers[i]
        load_into(layer, source, prefix, device)
        _same_tensors(source, candidate, _bf16_names(candidate, prefix))
        bf16_experts = nvfp4 = None
        # A layer whose experts the checkpoint stores in BF16 (the source against itself)
        # runs the same module in both streams: its tensors were compared above.
        if i in sparse and nvfp4_experts_of(candidate, i):
            bf16_experts = layer.mlp.experts
            nvfp4, expert_errors[i] = candidate_experts(candidate, i, bf16_experts, device)
        stream, local = ErrorSum(), ErrorSum()
        with torch.no_grad():
            for s in range(len(samples)):
                if nvfp4 is not None:
                    layer.mlp.experts = bf16_experts
                ref_out, ref_next = layer(**inputs(ref[s]), prev_topk_indices=ref_topk[s])
                if nvfp4 is not None:
                    layer.mlp.experts = nvfp4
                    alone, _ = layer(**inputs(ref[s]), prev_topk_indices=ref_topk[s])
                    local.add(ref_out, alone)
                if nvfp4 is None and cand[s] is ref[s]:
                    cand_out, cand_next = ref_out, ref_next  # nothing differs yet
                else:
                    cand_out, cand_next = layer(**inputs(cand[s]), prev_topk_indices=cand_topk[s])
                stream.add(ref_out, cand_out)
                ref[s], ref_topk[s] = ref_out.cpu(), ref_next
                cand[s] = ref[s] if cand_out is ref_out else cand_out.cpu()
                cand_topk[s] = cand_next
        layers.append(LayerResult(i, i in sparse, stream.relative, stream.cosine, local.relative))
        model.model.layers[i] = nn.Identity()  # drop the materialized weights
        del layer, bf16_experts, nvfp4
        release()
        progress("fidelity", i + 1, n_layers + 1)

    # The head on both streams: the checkpoint's own copy must be the source's.
    head = [k for k in source.weight_map if k.startswith(("model.norm.", "lm_head."))]
    _same_tensors(source, candidate, head)
    load_into(model.model.norm, source, "model.norm.", device)
    load_into(model.lm_head, source, "lm_head.", device)
    kls, agrees, lengths = [], [], []
    with torch.no_grad():
        for s in range(len(samples)):
            r = model.lm_head(model.model.norm(ref[s].to(device)))
            c = model.lm_head(model.model.norm(cand[s].to(device)))  # always its own logits
            kl, agree = position_kl(r[0], c[0])
            kls.append(kl)
            agrees.append(agree)
            lengths.append(int(kl.shape[0]))
    progress("fidelity", n_layers + 1, n_layers + 1)
    return Measurement(
        torch.cat(kls), torch.cat(agrees), tuple(layers), expert_errors, tuple(lengths)
    )
