"""Checkpoint checks: config, quantization config, shards and the MTP layer (pure, no torch).

The quantization config is read the way SGLang 0.5.23 reads it (model_config.py,
weight_utils.get_quant_config, ModelOptFp4Config.from_config): `quantization_config` in
config.json first (flat: quant_algo, group_size or config_groups.*.weights.group_size,
ignore / modules_to_not_convert / exclude_modules), else hf_quant_config.json (nested under
"quantization", exclude_modules).
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glm51.preflight.findings import Finding, Severity
from glm51.checkpoint.safetensors import ShardError, read_header
from glm51.recipe import Recipe
from glm51.recipe.serving import Profile

INDEX = "model.safetensors.index.json"
HF_QUANT = "hf_quant_config.json"
# Routed expert weights of the quantized layers: packed E2M1 pairs in uint8.
_EXPERT_WEIGHT = re.compile(
    r"model\.layers\.(\d+)\.mlp\.experts\.\d+\.(gate|up|down)_proj\.weight$"
)
_SHOWN = 5  # names listed in one finding before "and N more"


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


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def _load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


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
        data = _load_json(hf_quant)
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


def _check_quant(quant: QuantConfig | None, recipe: Recipe) -> list[Finding]:
    want = recipe.quantize
    if quant is None:
        return [Finding(
            "checkpoint.quant-config", Severity.ERROR,
            f"no quantization config: neither config.json quantization_config nor {HF_QUANT} "
            "(SGLang would quantize the BF16 experts on load instead of serving NVFP4 weights)",
            "serve the NVFP4 export (glm51 quantize writes both files)",
        )]  # fmt: skip
    found = []
    if quant.method not in (None, "modelopt"):
        found.append(Finding(
            "checkpoint.quant-method", Severity.ERROR,
            f"{quant.source}: quant_method is {quant.method!r}, not 'modelopt'",
            "serve a ModelOpt NVFP4 export",
        ))  # fmt: skip
    if quant.algo != want.algorithm:
        found.append(Finding(
            "checkpoint.quant-algo", Severity.ERROR,
            f"{quant.source}: quant_algo is {quant.algo!r}, not {want.algorithm!r}",
            f"serve a ModelOpt {want.algorithm} checkpoint (this profile renders "
            "--quantization modelopt_fp4)",
        ))  # fmt: skip
    elif quant.group_size != want.group_size:
        found.append(Finding(
            "checkpoint.group-size", Severity.ERROR,
            f"{quant.source}: group_size is {quant.group_size!r}, NVFP4 needs {want.group_size}",
            "re-export the checkpoint with group_size 16",
        ))  # fmt: skip
    return found


def _check_quant_agree(
    path: Path, config: dict[str, Any], quant: QuantConfig | None
) -> list[Finding]:
    # SGLang reads config.json's copy and ignores hf_quant_config.json: say so if they differ.
    if quant is None or quant.source == HF_QUANT or not (path / HF_QUANT).is_file():
        return []
    try:
        other = read_quant_config(
            path, {k: v for k, v in config.items() if k != "quantization_config"}
        )
    except (OSError, ValueError):
        return []
    if other is None or (other.algo, other.group_size, set(other.exclude)) == (
        quant.algo,
        quant.group_size,
        set(quant.exclude),
    ):
        return []
    return [Finding(
        "checkpoint.quant-config-differs", Severity.WARNING,
        f"{HF_QUANT} (quant_algo {other.algo}, group_size {other.group_size}, "
        f"{len(other.exclude)} exclusions) differs from config.json quantization_config "
        f"(quant_algo {quant.algo}, group_size {quant.group_size}, {len(quant.exclude)} "
        "exclusions); SGLang uses config.json's",
        "re-export the checkpoint so both files agree",
    )]  # fmt: skip


def _check_shards(path: Path, weight_map: dict[str, str]) -> tuple[list[Finding], dict]:
    found: list[Finding] = []
    headers = {}
    by_shard: dict[str, list[str]] = {}
    for name, shard in weight_map.items():
        by_shard.setdefault(shard, []).append(name)
    missing = sorted(s for s in by_shard if not (path / s).is_file())
    if missing:
        found.append(Finding(
            "checkpoint.shard-missing", Severity.ERROR,
            f"{len(missing)} shard(s) named in {INDEX} are missing: {_listed(missing)}",
            "finish the download (hf download ... resumes) or copy the missing files",
        ))  # fmt: skip
    for shard in sorted(set(by_shard) - set(missing)):
        try:
            header = read_header(path / shard)
        except ShardError as exc:
            check = "checkpoint.shard-header" if exc.kind == "header" else "checkpoint.shard-data"
            what = "header" if exc.kind == "header" else "data"
            found.append(Finding(
                check, Severity.ERROR, f"{shard}: truncated or corrupt {what}: {exc}",
                f"re-download {shard} (delete it first; the copy is incomplete)",
            ))  # fmt: skip
            continue
        headers[shard] = header
        absent = sorted(n for n in by_shard[shard] if n not in header.tensors)
        if absent:
            found.append(Finding(
                "checkpoint.tensor-missing", Severity.ERROR,
                f"{shard} lacks {len(absent)} tensor(s) that {INDEX} maps to it: "
                f"{_listed(absent)}",
                "the index and the shards come from different exports: re-download both",
            ))  # fmt: skip
    return found, headers


def _check_expert_dtypes(headers: dict, num_layers: int) -> list[Finding]:
    # The decoder's routed experts must be packed NVFP4 (U8); the MTP layer may stay BF16.
    wrong = sorted(
        name
        for header in headers.values()
        for name, info in header.tensors.items()
        if (m := _EXPERT_WEIGHT.match(name)) and int(m[1]) < num_layers and info.dtype != "U8"
    )
    if not wrong:
        return []
    dtype = next(h.tensors[wrong[0]].dtype for h in headers.values() if wrong[0] in h.tensors)
    return [Finding(
        "checkpoint.expert-dtype", Severity.ERROR,
        f"{len(wrong)} routed expert weight(s) are {dtype}, not packed NVFP4 (U8): "
        f"{_listed(wrong)}",
        "serve the NVFP4 export, not the BF16 source checkpoint",
    )]  # fmt: skip


def check(path: Path, recipe: Recipe, profile: Profile) -> tuple[list[Finding], CheckpointFacts]:
    """Every checkpoint check; also returns what the flag checks need."""
    config_file = path / "config.json"
    try:
        config = _load_json(config_file)
    except (OSError, ValueError) as exc:
        return [Finding(
            "checkpoint.config", Severity.ERROR, f"{config_file}: cannot read it ({exc})",
            "point --model at the checkpoint folder (it holds config.json)",
        )], CheckpointFacts()  # fmt: skip
    found: list[Finding] = []
    if config.get("model_type") != recipe.model.model_type:
        found.append(Finding(
            "checkpoint.model-type", Severity.ERROR,
            f"{config_file}: model_type is {config.get('model_type')!r}, "
            f"not {recipe.model.model_type!r}",
            f"serve a GLM-5.1 checkpoint ({recipe.model.published})",
        ))  # fmt: skip
    try:
        quant = read_quant_config(path, config)
    except (OSError, ValueError) as exc:
        quant = None
        found.append(Finding(
            "checkpoint.quant-config", Severity.ERROR, f"{path / HF_QUANT}: unreadable ({exc})",
            "re-download hf_quant_config.json",
        ))  # fmt: skip
    else:
        found += _check_quant(quant, recipe)
        found += _check_quant_agree(path, config, quant)
    facts = CheckpointFacts(config, quant)

    index_file = path / INDEX
    try:
        weight_map = _load_json(index_file)["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        found.append(Finding(
            "checkpoint.index", Severity.ERROR, f"{index_file}: cannot read its weight_map ({exc})",
            "re-download model.safetensors.index.json",
        ))  # fmt: skip
        return found, facts
    shard_findings, headers = _check_shards(path, weight_map)
    found += shard_findings

    num_layers = int(config.get("num_hidden_layers", 0))
    found += _check_expert_dtypes(headers, num_layers)
    spec = profile.server.speculative
    mtp = f"model.layers.{num_layers}."
    if (
        spec is not None
        and spec.algorithm == "NEXTN"
        and not any(name.startswith(mtp) for name in weight_map)
    ):
        found.append(Finding(
            "checkpoint.mtp-missing", Severity.ERROR,
            f"the profile uses NEXTN speculative decoding but {INDEX} has no MTP layer "
            f"({mtp}*, num_hidden_layers {num_layers})",
            "serve a checkpoint that keeps the MTP layer, or a profile without speculative "
            "decoding",
        ))  # fmt: skip
    return found, facts
