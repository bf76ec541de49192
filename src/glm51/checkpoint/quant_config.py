"""The quantization config of a checkpoint, read the way SGLang 0.5.23 reads it.

model_config.py, weight_utils.get_quant_config, ModelOptFp4Config.from_config:
`quantization_config` in config.json first (flat: quant_algo, group_size or
config_groups.*.weights.group_size, ignore / modules_to_not_convert / exclude_modules), else
hf_quant_config.json (nested under "quantization", exclude_modules).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glm51.checkpoint.folder import HF_QUANT, read_json


@dataclass(frozen=True)
class QuantConfig:
    source: str  # the file (and key) SGLang reads it from
    method: str | None
    algo: str | None
    group_size: int | None
    exclude: tuple[str, ...]


@dataclass(frozen=True)
class CheckpointFacts:
    """What the flag checks need to know about the checkpoint."""

    config: dict[str, Any] = field(default_factory=dict)
    quant: QuantConfig | None = None

    def shared_experts_excluded(self) -> bool:
        """Whether the shared experts stay BF16 (so SGLang cannot fuse them into the FP4 MoE)."""
        if self.quant is None:
            return False
        first_moe = int(self.config.get("first_k_dense_replace", 0))
        module = f"model.layers.{first_moe}.mlp.shared_experts.gate_proj"
        return any(
            # SGLang's own rule (ModelOptFp4Config.can_fuse_shared_expert), then the glob.
            ("shared_expert" in p and "shared_expert_gate" not in p) or fnmatch.fnmatch(module, p)
            for p in self.quant.exclude
        )


def _flat_group_size(cfg: dict[str, Any]) -> int | None:
    size = cfg.get("group_size")
    if size is None:
        groups = cfg.get("config_groups") or {}
        first = next(iter(groups.values()), {}) if isinstance(groups, dict) else {}
        size = (first.get("weights") or {}).get("group_size") if isinstance(first, dict) else None
    if size is None and "NVFP4" in str(cfg.get("quant_algo") or ""):
        size = 16  # SGLang's default for NVFP4
    return size


def read_quant_config(path: Path, config: dict[str, Any]) -> QuantConfig | None:
    """The quantization config SGLang would use, or None when the checkpoint has none."""
    qc = config.get("quantization_config")
    if isinstance(qc, dict):
        nested = qc.get("quantization")
        flat = nested if "quant_algo" not in qc and isinstance(nested, dict) else qc
        return QuantConfig(
            source="config.json quantization_config",
            method=qc.get("quant_method"),
            algo=flat.get("quant_algo"),
            group_size=_flat_group_size(flat),
            exclude=tuple(
                flat.get("ignore", flat.get("modules_to_not_convert", flat.get("exclude_modules")))
                or ()
            ),
        )
    hf_quant = path / HF_QUANT
    if hf_quant.is_file():
        data = read_json(hf_quant)
        section = data.get("quantization") or {}
        sizes = {
            v for v in (data.get("group_size"), section.get("group_size")) if isinstance(v, int)
        }
        return QuantConfig(
            source=HF_QUANT,
            method=(data.get("producer") or {}).get("name", "modelopt"),
            algo=section.get("quant_algo"),
            group_size=next(iter(sizes)) if len(sizes) == 1 else None,
            exclude=tuple(section.get("exclude_modules") or ()),
        )
    return None
