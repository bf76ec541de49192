"""The candidate stream's routed experts: what a W4A4 serving kernel computes from the
checkpoint's own bytes.

Each expert's projections are held as ``q * s`` (E2M1 code times its E4M3 block scale, exact
in BF16: same memory as the BF16 experts) plus the FP32 ``weight_scale_2``; activations are
quantized to NVFP4 with the stored ``input_scale`` (numerics.py); the FP32 product of the two
unit tensors is scaled by ``input_scale * weight_scale_2``, as a kernel's epilogue does.
gate and up share one input (the larger of their two input scales, as SGLang's fused w13
does). Between the two GEMMs, and after the second, the stream is BF16, as in the BF16 layer.
Everything else in the layer stays the BF16 module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from glm51.checkpoint.dequant import dequantize
from glm51.checkpoint.folder import Checkpoint
from glm51.errors import InputError
from glm51.fidelity.numerics import ErrorSum, unit_fake_quantize

PROJECTIONS = ("gate_proj", "up_proj", "down_proj")
PARTS = ("weight", "weight_scale", "weight_scale_2", "input_scale")
EXPERT_KEY = re.compile(r"^model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(\w+_proj)\.(\w+)$")


def nvfp4_experts_of(ckpt: Checkpoint, layer: int) -> list[int]:
    """The routed experts of ``layer`` stored in NVFP4 (a ``weight_scale`` each)."""
    out = set()
    for key in ckpt.keys(f"model.layers.{layer}.mlp.experts."):
        m = EXPERT_KEY.match(key)
        if m and m[4] == "weight_scale":
            out.add(int(m[2]))
    return sorted(out)


@dataclass(frozen=True)
class Projection:
    unit: object  # [out, in] BF16: e2m1 * E4M3 block scale, exact
    weight_scale_2: object  # FP32 scalar
    input_scale: object  # FP32 scalar


def load_projection(ckpt: Checkpoint, tensors: dict, prefix: str, device: str) -> Projection:
    """One projection from the layer's tensors (``tensors``, read once per layer), its unit
    weight made on ``device``."""
    import torch

    names = [f"{prefix}.{part}" for part in PARTS]
    missing = [n for n in names if n not in tensors]
    if missing:
        raise InputError(f"{ckpt.dir}: {missing[0]} is missing (an NVFP4 projection needs {PARTS})")
    packed, block_scale = tensors[names[0]], tensors[names[1]]
    if packed.dtype != torch.uint8 or block_scale.dtype != torch.float8_e4m3fn:
        raise InputError(
            f"{ckpt.dir}: {prefix}: expected uint8 weight and float8_e4m3fn weight_scale, got "
            f"{packed.dtype} and {block_scale.dtype}"
        )
    if packed.shape[0] != block_scale.shape[0] or (packed.shape[1] * 2) % block_scale.shape[1]:
        raise InputError(
            f"{ckpt.dir}: {prefix}: weight {tuple(packed.shape)} and weight_scale "
            f"{tuple(block_scale.shape)} do not fit together"
        )
    group = packed.shape[1] * 2 // block_scale.shape[1]
    one = torch.ones((), dtype=torch.float32)
    unit = dequantize(packed.to(device), block_scale.to(device), one, group)
    return Projection(
        unit.to(torch.bfloat16),  # exact: e2m1 * E4M3 has 6 significant bits
        tensors[names[2]].float().reshape(()).to(device),
        tensors[names[3]].float().reshape(()).to(device),
    )


def _module_class():
    """An ``nn.Module`` with the forward of transformers' GlmMoeDsaExperts (same routing, same
    accumulation order), NVFP4 inside (torch is imported lazily, hence a factory)."""
    import torch
    from torch import nn

    class _Experts(nn.Module):
        def __init__(self, gate_up, gate_up_scale, down, down_scale, act_fn) -> None:
            super().__init__()
            self.num_experts = gate_up.shape[0]
            self.gate_up_unit = nn.Parameter(gate_up, requires_grad=False)  # [E, 2I, H]
            self.down_unit = nn.Parameter(down, requires_grad=False)  # [E, H, I]
            # [E, 3]: gate and up weight_scale_2, their shared input_scale; [E, 2] for down.
            self.register_buffer("gate_up_scale", gate_up_scale)
            self.register_buffer("down_scale", down_scale)
            self.act_fn = act_fn

        def _gate_up(self, x, e):
            ws_gate, ws_up, inp = self.gate_up_scale[e]
            y = nn.functional.linear(unit_fake_quantize(x, inp), self.gate_up_unit[e].float())
            inter = y.shape[-1] // 2
            alpha = torch.stack((inp * ws_gate, inp * ws_up)).repeat_interleave(inter)
            return (y * alpha).to(x.dtype).chunk(2, dim=-1)

        def _down(self, h, e):
            ws, inp = self.down_scale[e]
            y = nn.functional.linear(unit_fake_quantize(h, inp), self.down_unit[e].float())
            return (y * (inp * ws)).to(h.dtype)

        def forward(self, hidden_states, top_k_index, top_k_weights):
            final = torch.zeros_like(hidden_states)
            with torch.no_grad():
                mask = nn.functional.one_hot(top_k_index, num_classes=self.num_experts + 1)
                mask = mask.permute(2, 1, 0)
                hit = torch.greater(mask.sum(dim=(-1, -2)), 0).nonzero()
            for e in hit:
                e = e[0]
                if e == self.num_experts:
                    continue
                top_k_pos, token_idx = torch.where(mask[e])
                gate, up = self._gate_up(hidden_states[token_idx], e)
                out = self._down(self.act_fn(gate) * up, e)
                out = out * top_k_weights[token_idx, top_k_pos, None]
                final.index_add_(0, token_idx, out.to(final.dtype))
            return final

    return _Experts


def candidate_experts(ckpt: Checkpoint, layer: int, reference, device: str):
    """The NVFP4 experts of ``layer`` (a module to put in place of ``reference``, the BF16
    GlmMoeDsaExperts), and each expert's relative weight error against ``reference``."""
    import torch

    experts = int(reference.num_experts)
    stored = nvfp4_experts_of(ckpt, layer)
    if stored != list(range(experts)):
        raise InputError(
            f"{ckpt.dir}: layer {layer} stores {len(stored)} NVFP4 routed experts, the source "
            f"has {experts}: not the source's quantization"
        )
    inter = reference.down_proj.shape[-1]
    prefix = f"model.layers.{layer}.mlp.experts."
    tensors = ckpt.read(ckpt.keys(prefix))  # each shard opened once for the layer
    # Filled in place: a list stacked at the end would hold the layer's experts twice.
    gate_up = torch.empty(reference.gate_up_proj.shape, dtype=torch.bfloat16, device=device)
    down = torch.empty(reference.down_proj.shape, dtype=torch.bfloat16, device=device)
    gu_scale, d_scale, errors = [], [], []
    for e in range(experts):
        p = {n: load_projection(ckpt, tensors, f"{prefix}{e}.{n}", device) for n in PROJECTIONS}
        ref_gu = reference.gate_up_proj[e].detach()
        ref_down = reference.down_proj[e].detach()
        shapes = {
            "gate_proj": ref_gu[:inter].shape,
            "up_proj": ref_gu[inter:].shape,
            "down_proj": ref_down.shape,
        }
        for name, proj in p.items():
            if tuple(proj.unit.shape) != tuple(shapes[name]):
                raise InputError(
                    f"{ckpt.dir}: model.layers.{layer}.mlp.experts.{e}.{name} is "
                    f"{tuple(proj.unit.shape)} dequantized, the source's is "
                    f"{tuple(shapes[name])}: not the source's quantization"
                )
        err = ErrorSum()
        for name, ref in (
            ("gate_proj", ref_gu[:inter]),
            ("up_proj", ref_gu[inter:]),
            ("down_proj", ref_down),
        ):
            err.add(ref, p[name].unit.float() * p[name].weight_scale_2)
        errors.append(err.relative)
        gate_up[e, :inter] = p["gate_proj"].unit
        gate_up[e, inter:] = p["up_proj"].unit
        down[e] = p["down_proj"].unit
        shared_input = torch.maximum(p["gate_proj"].input_scale, p["up_proj"].input_scale)
        gu_scale.append(
            torch.stack([p["gate_proj"].weight_scale_2, p["up_proj"].weight_scale_2, shared_input])
        )
        d_scale.append(torch.stack([p["down_proj"].weight_scale_2, p["down_proj"].input_scale]))
    del tensors
    module = _module_class()(
        gate_up,
        torch.stack(gu_scale),
        down,
        torch.stack(d_scale),
        reference.act_fn,
    )
    return module.to(device), errors
