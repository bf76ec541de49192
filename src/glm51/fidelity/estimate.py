"""The memory `glm51 fidelity` will need, printed before it starts (as quantize does):
one decoder layer twice over its routed experts (the BF16 experts and the candidate's
unit-scaled NVFP4 copy, the same size), one layer's activations, and the two hidden-state
streams of every measured position on the host."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from glm51.quantize import estimate as quantize_estimate
from glm51.quantize.estimate import BF16, gb

LOGIT_CHUNK = 256  # positions whose float64 log-softmax is held at once (numerics.position_kl)


@dataclass(frozen=True)
class Estimate:
    positions: int
    layer_bytes: int  # the largest decoder layer in BF16
    candidate_bytes: int  # its routed experts as the candidate holds them
    activation_bytes: int
    streams_bytes: int  # both streams' hidden states, every position
    logits_bytes: int
    device_bytes: int
    host_bytes: int

    def render(self) -> str:
        return "\n".join(
            [
                f"fidelity          {self.positions:,} positions",
                f"largest layer     {gb(self.layer_bytes)} BF16 + "
                f"{gb(self.candidate_bytes)} NVFP4 experts (unit-scaled BF16); activations "
                f"{gb(self.activation_bytes)}; logits {gb(self.logits_bytes)}",
                f"streams           {gb(self.streams_bytes)} (BF16 and NVFP4 hidden states)",
                f"bounded memory    device {gb(self.device_bytes)}, host "
                f"{gb(self.host_bytes)} (one decoder layer at a time)",
            ]
        )


def estimate(config: Mapping[str, Any], lengths: Sequence[int], device: str = "cpu") -> Estimate:
    longest = max(lengths, default=0)
    shape = quantize_estimate.CalibShape("fidelity", len(lengths), sum(lengths), longest)
    q = quantize_estimate.estimate(config, [shape])
    layers = quantize_estimate.layer_params(config)
    routed = max(x.mlp_routed for x in layers) * BF16
    hidden, vocab = int(config["hidden_size"]), int(config["vocab_size"])
    streams = 2 * sum(lengths) * hidden * BF16
    logits = 2 * min(longest, LOGIT_CHUNK) * vocab * 8 * 3 + 2 * longest * vocab * BF16
    on_device = q.largest_layer_bytes + routed + q.activation_bytes + logits
    # A layer passes through the host on its way: the shards' per-expert tensors and their
    # fused copy while it loads (quantize's load_into), besides what the device holds.
    read = q.largest_layer_bytes + routed
    host = streams + (on_device + routed if device == "cpu" else read)
    return Estimate(
        positions=sum(lengths),
        layer_bytes=q.largest_layer_bytes,
        candidate_bytes=routed,
        activation_bytes=q.activation_bytes,
        streams_bytes=streams,
        logits_bytes=logits,
        device_bytes=on_device,
        host_bytes=host,
    )
