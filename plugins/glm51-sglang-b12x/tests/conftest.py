from __future__ import annotations

import pytest
import torch
from glm51_sglang_b12x.prep import ModelOptExperts


def _fp8_scales(g: torch.Generator, *shape: int) -> torch.Tensor:
    # Block scales as ModelOpt writes them: positive E4M3 values well inside the range.
    return (torch.rand(*shape, generator=g) * 2.0 + 0.25).to(torch.float8_e4m3fn)


def make_checkpoint_expert_tensors(*, e: int, h: int, i: int, seed: int = 0) -> dict:
    """Random tiny experts in ModelOpt's per-expert checkpoint form (gate and up separate)."""
    g = torch.Generator().manual_seed(seed)
    ws2 = torch.rand(e, generator=g) * 1e-3 + 5e-4
    return {
        "gate": torch.randint(0, 256, (e, i, h // 2), dtype=torch.uint8, generator=g),
        "up": torch.randint(0, 256, (e, i, h // 2), dtype=torch.uint8, generator=g),
        "gate_scale": _fp8_scales(g, e, i, h // 16),
        "up_scale": _fp8_scales(g, e, i, h // 16),
        "gate_up_scale_2": ws2,  # shared by gate and up (ModelOpt)
        "gate_up_input_scale": torch.full((e,), 0.02),  # one per layer with fused experts
        "down": torch.randint(0, 256, (e, h, i // 2), dtype=torch.uint8, generator=g),
        "down_scale": _fp8_scales(g, e, h, i // 16),
        "down_scale_2": torch.rand(e, generator=g) * 1e-3 + 5e-4,
        "down_input_scale": torch.full((e,), 0.05),
    }


def sglang_loaded(ckpt: dict, *, up_first: bool) -> ModelOptExperts:
    """What SGLang's FusedMoE weight loader builds: w13 rows gate then up, or up then gate when
    the quant method's `load_up_proj_weight_first` is true; per-tensor scales stay [gate, up]."""
    first, second = ("up", "gate") if up_first else ("gate", "up")
    ws2 = ckpt["gate_up_scale_2"]
    return ModelOptExperts(
        w13=torch.cat([ckpt[first], ckpt[second]], dim=1),
        w13_scale=torch.cat([ckpt[f"{first}_scale"], ckpt[f"{second}_scale"]], dim=1),
        w13_scale_2=torch.stack([ws2, ws2], dim=1),
        w13_input_scale=torch.stack([ckpt["gate_up_input_scale"]] * 2, dim=1),
        w2=ckpt["down"],
        w2_scale=ckpt["down_scale"],
        w2_scale_2=ckpt["down_scale_2"],
        w2_input_scale=ckpt["down_input_scale"],
    )


@pytest.fixture
def tiny():
    return make_checkpoint_expert_tensors(e=8, h=256, i=128)
