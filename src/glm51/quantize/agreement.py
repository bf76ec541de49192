"""What two quantizations of one model on two devices must agree on (docs/quantize.md).

The weight side (weight, weight_scale, weight_scale_2) depends only on the BF16 weights and
is bit-identical on every device. The `input_scale` is `amax / (6 * 448)` of activations,
and another device runs other kernels (BF16 GEMMs accumulated in another order); near-ties
in the router's top-k or the DSA indexer's top-k then send a token elsewhere, and a max
over tokens follows the token that moved. So input scales agree within a tolerance, and
only where calibration saw enough: an expert counts as covered when both runs routed at
least `warn_below` tokens to it (the recipe's coverage threshold). Covered experts' input
scales agree within `tolerance` (relative to the larger of the two); the others are
listed, not held to it. An input scale outside the routed experts is always compared.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from glm51.calib.coverage import ExpertCounts

# The stated tolerance. Evidence: on an H200 (torch 2.11.0+cu130) the tiny model's input
# scales were up to 14.3% from the CPU's (hidden 96, 5 layers, 12 experts, 48 conversations);
# on the CPU, up to one BF16 ulp of noise on every nn.Linear output of the tiny model (3
# layers, 8 conversations) changed the routing and moved them by up to 7.8% (down_proj;
# gate_up 1.5%). 0.25 holds both with a margin; the GPU test prints the measured maximum,
# so the figure can be tightened from measurements.
TOLERANCE = 0.25
_EXPERT = re.compile(r"^model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.\w+\.input_scale$")


@dataclass(frozen=True)
class Mismatch:
    name: str
    a: float
    b: float
    relative: float  # |a - b| / max(|a|, |b|)


@dataclass(frozen=True)
class InputScaleAgreement:
    tolerance: float
    warn_below: int
    compared: int  # input scales held to the tolerance
    max_relative: float  # the largest relative difference among them
    outside: tuple[Mismatch, ...]  # compared, and further apart than the tolerance
    uncovered: tuple[str, ...]  # experts' input scales not held to it (under warn_below)
    missing: tuple[str, ...]  # input scales in one export only

    @property
    def ok(self) -> bool:
        return not self.outside and not self.missing and self.compared > 0

    def render(self) -> str:
        lines = [
            f"input scales: {self.compared} compared (experts with >= {self.warn_below} "
            f"tokens in both runs, and non-expert ones), max relative difference "
            f"{self.max_relative:.4f}, tolerance {self.tolerance}",
            f"  {len(self.uncovered)} not held to it (experts under {self.warn_below} tokens)",
        ]
        lines += [
            f"  outside: {m.name}: {m.a:.6e} vs {m.b:.6e} ({m.relative:.4f})" for m in self.outside
        ]
        lines += [f"  missing in one export: {name}" for name in self.missing]
        return "\n".join(lines)


def _tokens(counts: ExpertCounts, layer: int, expert: int) -> int:
    if layer not in counts.layers or expert >= counts.counts.shape[1]:
        return 0
    return int(counts.counts[counts.layers.index(layer), expert])


def compare_input_scales(
    a: Mapping[str, object],
    b: Mapping[str, object],
    counts_a: ExpertCounts,
    counts_b: ExpertCounts,
    *,
    warn_below: int,
    tolerance: float = TOLERANCE,
) -> InputScaleAgreement:
    """Compare the `*.input_scale` tensors of two exports (name -> scalar tensor or float),
    given each run's expert token counts (the merged calibration's)."""
    names_a = {k for k in a if k.endswith("input_scale")}
    names_b = {k for k in b if k.endswith("input_scale")}
    compared, worst = 0, 0.0
    outside, uncovered = [], []
    for name in sorted(names_a & names_b):
        m = _EXPERT.match(name)
        if m:
            layer, expert = int(m[1]), int(m[2])
            if min(_tokens(counts_a, layer, expert), _tokens(counts_b, layer, expert)) < warn_below:
                uncovered.append(name)
                continue
        x, y = float(a[name]), float(b[name])
        rel = abs(x - y) / max(abs(x), abs(y)) if max(abs(x), abs(y)) > 0 else 0.0
        if not rel <= tolerance:  # NaN counts as outside
            outside.append(Mismatch(name, x, y, rel))
        compared += 1
        worst = max(worst, rel) if rel == rel else float("inf")
    return InputScaleAgreement(
        tolerance=tolerance,
        warn_below=warn_below,
        compared=compared,
        max_relative=worst,
        outside=tuple(outside),
        uncovered=tuple(uncovered),
        missing=tuple(sorted(names_a ^ names_b)),
    )
