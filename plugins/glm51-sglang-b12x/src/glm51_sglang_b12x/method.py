"""`ModelOptNvFp4FusedMoEMethod` for b12x: TP only, [up; gate] loading, b12x weights and plans."""

from __future__ import annotations

import torch
from sglang.srt.layers.moe.moe_runner import MoeRunner
from sglang.srt.layers.moe.utils import resolve_moe_runner_backend
from sglang.srt.layers.quantization.modelopt_quant import ModelOptNvFp4FusedMoEMethod

from .constants import BACKEND
from .prep import ModelOptExperts, build_moe, token_buckets
from .runner_core import B12xMoeQuantInfo


def refuse_non_tp(*, moe_ep_size: int, dp_attention: bool, a2a_backend: str = "none") -> None:
    if moe_ep_size > 1 or a2a_backend != "none":
        raise ValueError(
            "--moe-runner-backend b12x is tensor-parallel only: expert parallelism "
            f"(ep size {moe_ep_size}, --moe-a2a-backend {a2a_backend}) is not supported; "
            "use --ep-size 1 and --moe-a2a-backend none"
        )
    if dp_attention:
        raise ValueError(
            "--moe-runner-backend b12x is tensor-parallel only: DP attention is not supported; "
            "drop --enable-dp-attention / --dp-size"
        )


def _a2a_backend() -> str:
    from sglang.srt.layers.moe.utils import get_moe_a2a_backend

    backend = get_moe_a2a_backend()
    return str(getattr(backend, "value", backend))


def _dp_attention_enabled() -> bool:
    from sglang.srt.layers.dp_attention import is_dp_attention_enabled

    return bool(is_dp_attention_enabled())


def serving_buckets() -> tuple[int, ...]:
    from sglang.srt.runtime_context import get_exec, get_schedule

    graph_bs = get_exec().graph.cuda_graph_bs_decode or ()
    return token_buckets(graph_bs, get_schedule().chunked_prefill_size)


class B12xNvFp4FusedMoEMethod(ModelOptNvFp4FusedMoEMethod):
    # SGLang's FusedMoE loader reads this: up_proj into the first half of w13, so the rows are
    # b12x's kernel-native [up; gate] and b12x never flips the storage in place.
    load_up_proj_weight_first = True

    def __init__(self, quant_config) -> None:
        # Not ModelOptNvFp4FusedMoEMethod.__init__: it picks layouts for the built-in runners.
        self.quant_config = quant_config
        self._lora_marlin = False
        self.enable_flashinfer_trtllm_moe = False
        self.use_flashinfer_trtllm_weight_layout = False
        self._cache_permute_indices = {}

    def create_weights(
        self,
        layer,
        num_experts,
        hidden_size,
        intermediate_size_per_partition,
        params_dtype,
        **extra,
    ):
        refuse_non_tp(
            moe_ep_size=int(getattr(layer, "moe_ep_size", 1)),
            dp_attention=_dp_attention_enabled(),
            a2a_backend=_a2a_backend(),
        )
        super().create_weights(
            layer, num_experts, hidden_size, intermediate_size_per_partition, params_dtype, **extra
        )
        # The parent keeps CUTLASS-swizzled copies of the scales; b12x swizzles its own.
        layer.w13_blockscale_swizzled = None
        layer.w2_blockscale_swizzled = None

    def create_moe_runner(self, layer, moe_runner_config) -> None:
        self.moe_runner_config = moe_runner_config
        if not moe_runner_config.is_gated:
            raise ValueError("--moe-runner-backend b12x supports gated (SwiGLU) experts only")
        self._moe_runner_backend = resolve_moe_runner_backend(BACKEND)
        self.runner = MoeRunner(self._moe_runner_backend, moe_runner_config)

    def process_weights_after_loading(self, layer) -> None:
        from .platform import require_sm12x

        require_sm12x("--moe-runner-backend b12x")
        experts = ModelOptExperts(
            w13=layer.w13_weight.data,
            w13_scale=layer.w13_weight_scale.data,
            w13_scale_2=layer.w13_weight_scale_2.data,
            w13_input_scale=layer.w13_input_scale.data,
            w2=layer.w2_weight.data,
            w2_scale=layer.w2_weight_scale.data,
            w2_scale_2=layer.w2_weight_scale_2.data,
            w2_input_scale=layer.w2_input_scale.data,
        )
        # Load time, before SGLang sizes the KV cache: plans for every bucket and the scratch.
        layer._b12x_moe = build_moe(
            experts,
            params_dtype=layer.params_dtype,
            top_k=int(self.moe_runner_config.top_k),
            buckets=serving_buckets(),
            device=layer.w13_weight.device,
        )
        # b12x keeps the packed weights; the linear scales were swizzled into new tensors.
        for name in ("w13_weight_scale", "w2_weight_scale"):
            getattr(layer, name).data = torch.empty(
                0, dtype=torch.float8_e4m3fn, device=layer.w13_weight.device
            )

    def apply(self, layer, dispatch_output):
        quant_info = B12xMoeQuantInfo(
            moe=layer._b12x_moe,
            apply_routed_scaling_factor=not getattr(
                layer, "should_fuse_routed_scaling_factor_in_topk", False
            ),
        )
        return self.runner.run(dispatch_output, quant_info)
