"""ModelOpt NVFP4 experts -> b12x's prepared experts, plans per token bucket, shared scratch.

Pure torch + b12x (no SGLang import), so every function here runs on the CPU in the tests.
The tensors come as SGLang's NVFP4 MoE method holds them after loading, with gate/up already
in b12x's kernel order ([up; gate] rows, see `load_up_proj_weight_first`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import torch

from . import PluginLoadError
from .constants import QUANT_MODE, SOURCE_FORMAT, W13_LAYOUT

SCRATCH_ALIGN = 256


@dataclass(frozen=True)
class ModelOptExperts:
    """One MoE layer's local experts, as SGLang loaded them (rows of w13: [up; gate])."""

    w13: torch.Tensor  # uint8 [E, 2I, H/2], two E2M1 per byte
    w13_scale: torch.Tensor  # float8_e4m3fn [E, 2I, H/16], linear (unswizzled)
    w13_scale_2: torch.Tensor  # float32 [E, 2] (gate, up) or [E]
    w13_input_scale: torch.Tensor  # float32 [E_global, 2] or [E_global]
    w2: torch.Tensor  # uint8 [E, H, I/2]
    w2_scale: torch.Tensor  # float8_e4m3fn [E, H, I/16]
    w2_scale_2: torch.Tensor  # float32 [E]
    w2_input_scale: torch.Tensor  # float32 [E_global]

    @property
    def num_experts(self) -> int:
        return int(self.w13.shape[0])

    @property
    def hidden_size(self) -> int:
        return int(self.w2.shape[1])

    @property
    def intermediate_size(self) -> int:
        return int(self.w13.shape[1]) // 2


@dataclass(frozen=True)
class B12xInputs:
    """The tensors b12x's `prepare_weights` takes for the `nvfp4` recipe."""

    w1_fp4: torch.Tensor
    w1_blockscale: torch.Tensor  # b12x-swizzled
    w1_global_scale: torch.Tensor  # [E] shared gate/up weight_scale_2
    a1_gscale: torch.Tensor  # [E] 1 / input_scale
    w2_fp4: torch.Tensor
    w2_blockscale: torch.Tensor
    w2_global_scale: torch.Tensor
    a2_gscale: torch.Tensor

    def as_kwargs(self) -> dict[str, torch.Tensor]:
        return dict(self.__dict__)


def shared_weight_scale_2(w13_scale_2: torch.Tensor) -> torch.Tensor:
    """Gate and up of one expert share `weight_scale_2` (ModelOpt fuses them); refuse otherwise."""
    if w13_scale_2.dim() == 1:
        return w13_scale_2.float().contiguous()
    gate, up = w13_scale_2[:, 0], w13_scale_2[:, 1]
    if not torch.equal(gate, up):
        bad = int((gate != up).nonzero()[0].item())
        raise PluginLoadError(
            f"expert {bad}: gate weight_scale_2 {gate[bad].item()!r} != up {up[bad].item()!r}; "
            "b12x needs one weight_scale_2 per expert for the fused gate/up GEMM"
        )
    return gate.float().contiguous()


def layer_input_scale(input_scale: torch.Tensor) -> torch.Tensor:
    """One activation scale for the layer: the max over experts (and gate/up), as SGLang's
    FlashInfer paths do; a ModelOpt export of fused experts stores the same value for all."""
    return input_scale.float().max().reshape(())


def b12x_inputs(experts: ModelOptExperts) -> B12xInputs:
    from b12x._lib.intrinsics import swizzle_block_scale

    e = experts.num_experts
    in1 = layer_input_scale(experts.w13_input_scale)
    in2 = layer_input_scale(experts.w2_input_scale)
    return B12xInputs(
        w1_fp4=experts.w13,
        w1_blockscale=swizzle_block_scale(experts.w13_scale),
        w1_global_scale=shared_weight_scale_2(experts.w13_scale_2),
        a1_gscale=(1.0 / in1).expand(e).contiguous(),
        w2_fp4=experts.w2,
        w2_blockscale=swizzle_block_scale(experts.w2_scale),
        w2_global_scale=experts.w2_scale_2.float().reshape(e).contiguous(),
        a2_gscale=(1.0 / in2).expand(e).contiguous(),
    )


def weight_plan(
    *, num_experts: int, hidden_size: int, intermediate_size: int, params_dtype: torch.dtype
):
    from b12x.moe import fused_moe

    return fused_moe.plan_weights(
        quant_modes=QUANT_MODE,
        source_format=SOURCE_FORMAT,
        activation="silu",
        params_dtype=params_dtype,
        num_experts=num_experts,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        w13_layout=W13_LAYOUT,
    )


def prepare_experts(plan, inputs: B12xInputs, params_dtype: torch.dtype):
    """b12x's own preparation (alphas = weight_scale_2 * input_scale are computed there)."""
    from b12x.moe import fused_moe

    return fused_moe.prepare_weights(
        plan=plan, params_dtype=params_dtype, immutable_input_scales=True, **inputs.as_kwargs()
    )


def token_buckets(
    cuda_graph_bs: Iterable[int], chunked_prefill_size: int | None
) -> tuple[int, ...]:
    """One plan per CUDA-graph batch size, plus the chunked-prefill size (the largest M)."""
    sizes = {int(b) for b in cuda_graph_bs if int(b) > 0}
    if chunked_prefill_size and chunked_prefill_size > 0:
        sizes.add(int(chunked_prefill_size))
    if not sizes:
        raise PluginLoadError("no token bucket: no CUDA-graph batch size, no chunked-prefill size")
    return tuple(sorted(sizes))


def scratch_plan(plan, *, max_tokens: int, top_k: int, device, prewarm: bool = True):
    from b12x.moe import fused_moe

    caps = fused_moe.Caps(
        max_tokens=max_tokens,
        num_topk=top_k,
        device=device,
        weight_plan=plan,
        quant_mode=QUANT_MODE,
    )
    return fused_moe.plan(caps, prewarm_launches=prewarm)


def spec_bytes(shape: Iterable[int], dtype: torch.dtype) -> int:
    return math.prod(int(d) for d in shape) * torch.empty((), dtype=dtype).element_size()


def _align(n: int) -> int:
    return (n + SCRATCH_ALIGN - 1) // SCRATCH_ALIGN * SCRATCH_ALIGN


def plan_scratch_bytes(plan) -> int:
    """Bytes of one scratch plan, each buffer aligned to SCRATCH_ALIGN."""
    return sum(_align(spec_bytes(shape, dtype)) for shape, dtype in plan.shapes_and_dtypes())


def carve(scratch: torch.Tensor, plan) -> tuple[torch.Tensor, ...]:
    """Views of the one shared uint8 scratch buffer in the shapes and dtypes `plan` asks for."""
    views, offset = [], 0
    for shape, dtype in plan.shapes_and_dtypes():
        n = spec_bytes(shape, dtype)
        views.append(scratch[offset : offset + n].view(dtype).view(tuple(shape)))
        offset += _align(n)
    if offset > scratch.numel():
        raise PluginLoadError(f"shared scratch {scratch.numel()} B < {offset} B this plan needs")
    return tuple(views)


# One scratch per (device, geometry) for the whole process: every MoE layer runs one at a time.
_SHARED_SCRATCH: dict[tuple, torch.Tensor] = {}


def shared_scratch(key: tuple, nbytes: int, device) -> torch.Tensor:
    buf = _SHARED_SCRATCH.get(key)
    if buf is None or buf.numel() < nbytes:
        buf = torch.empty(nbytes, dtype=torch.uint8, device=device)
        _SHARED_SCRATCH[key] = buf
    return buf


Kernel = Callable[..., torch.Tensor]


def b12x_kernel(*, plan, scratch, experts, x, topk_weights, topk_ids) -> torch.Tensor:
    """The real kernel: b12x's bind then run (SM120/SM121 only)."""
    from b12x.moe import fused_moe

    binding = fused_moe.bind(
        plan,
        scratch=scratch,
        a=x,
        experts=experts,
        topk_weights=topk_weights,
        topk_ids=topk_ids,
        input_scales_static=True,
    )
    return fused_moe.run(binding=binding)


@dataclass
class B12xMoE:
    """A layer's prepared experts, its plans (one per token bucket) and the shared scratch."""

    experts: object
    plans: Mapping[int, object]
    scratch: torch.Tensor
    top_k: int
    kernel: Kernel = b12x_kernel
    _views: dict[int, tuple[torch.Tensor, ...]] = field(default_factory=dict, repr=False)

    @property
    def buckets(self) -> tuple[int, ...]:
        return tuple(sorted(self.plans))

    def bucket_for(self, m: int) -> int:
        for b in self.buckets:
            if m <= b:
                return b
        return self.buckets[-1]

    def _scratch_for(self, bucket: int) -> tuple[torch.Tensor, ...]:
        if bucket not in self._views:
            self._views[bucket] = carve(self.scratch, self.plans[bucket])
        return self._views[bucket]

    def forward(
        self, x: torch.Tensor, topk_weights: torch.Tensor, topk_ids: torch.Tensor
    ) -> torch.Tensor:
        m = int(x.shape[0])
        largest = self.buckets[-1]
        if m > largest:  # beyond the chunked-prefill size: run in chunks of the largest plan
            return torch.cat(
                [
                    self.forward(
                        x[i : i + largest], topk_weights[i : i + largest], topk_ids[i : i + largest]
                    )
                    for i in range(0, m, largest)
                ]
            )
        bucket = self.bucket_for(m)
        return self.kernel(
            plan=self.plans[bucket],
            scratch=self._scratch_for(bucket),
            experts=self.experts,
            x=x,
            topk_weights=topk_weights.float(),
            topk_ids=topk_ids.to(torch.int32),
        )


def build_moe(
    experts: ModelOptExperts,
    *,
    params_dtype: torch.dtype,
    top_k: int,
    buckets: Iterable[int],
    device,
    kernel: Kernel = b12x_kernel,
    prewarm: bool = True,
) -> B12xMoE:
    """Everything at load time: prepared weights, one plan per bucket, the scratch allocated."""
    plan = weight_plan(
        num_experts=experts.num_experts,
        hidden_size=experts.hidden_size,
        intermediate_size=experts.intermediate_size,
        params_dtype=params_dtype,
    )
    prepared = prepare_experts(plan, b12x_inputs(experts), params_dtype)
    plans = {
        m: scratch_plan(plan, max_tokens=m, top_k=top_k, device=device, prewarm=prewarm)
        for m in buckets
    }
    need = max(plan_scratch_bytes(p) for p in plans.values())
    key = (str(device), experts.num_experts, experts.hidden_size, experts.intermediate_size, top_k)
    return B12xMoE(
        experts=prepared,
        plans=plans,
        scratch=shared_scratch(key, need, device),
        top_k=top_k,
        kernel=kernel,
    )
