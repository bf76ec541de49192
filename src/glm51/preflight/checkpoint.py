"""Checkpoint checks for serving: config, quantization config, shards and the MTP layer
(pure, no torch). What a checkpoint is comes from the shared `glm51.checkpoint` layer; this
module turns its facts into findings against the profile."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from glm51.checkpoint.folder import CONFIG, HF_QUANT, INDEX, read_config, read_weight_map
from glm51.checkpoint.integrity import check_shards, listed
from glm51.checkpoint.quant_config import CheckpointFacts, QuantConfig, read_quant_config
from glm51.errors import InputError
from glm51.preflight.findings import Finding, Severity
from glm51.recipe.schema import Recipe
from glm51.recipe.serving import Profile

# Routed expert weights of the quantized layers: packed E2M1 pairs in uint8.
_EXPERT_WEIGHT = re.compile(
    r"model\.layers\.(\d+)\.mlp\.experts\.\d+\.(gate|up|down)_proj\.weight$"
)


def _check_quant(quant: QuantConfig | None, recipe: Recipe) -> list[Finding]:
    want = recipe.quantize
    if quant is None:
        return [
            Finding(
                "checkpoint.quant-config",
                Severity.ERROR,
                f"no quantization config: neither config.json quantization_config nor {HF_QUANT} "
                "(SGLang would quantize the BF16 experts on load instead of serving NVFP4 weights)",
                "serve the NVFP4 export (glm51 quantize writes both files)",
            )
        ]
    found = []
    if quant.method not in (None, "modelopt"):
        found.append(
            Finding(
                "checkpoint.quant-method",
                Severity.ERROR,
                f"{quant.source}: quant_method is {quant.method!r}, not 'modelopt'",
                "serve a ModelOpt NVFP4 export",
            )
        )
    if quant.algo != want.algorithm:
        found.append(
            Finding(
                "checkpoint.quant-algo",
                Severity.ERROR,
                f"{quant.source}: quant_algo is {quant.algo!r}, not {want.algorithm!r}",
                f"serve a ModelOpt {want.algorithm} checkpoint (this profile renders "
                "--quantization modelopt_fp4)",
            )
        )
    elif quant.group_size != want.group_size:
        found.append(
            Finding(
                "checkpoint.group-size",
                Severity.ERROR,
                f"{quant.source}: group_size is {quant.group_size!r}, "
                f"NVFP4 needs {want.group_size}",
                "re-export the checkpoint with group_size 16",
            )
        )
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
    except InputError:
        return []
    if other is None or (other.algo, other.group_size, set(other.exclude)) == (
        quant.algo,
        quant.group_size,
        set(quant.exclude),
    ):
        return []
    return [
        Finding(
            "checkpoint.quant-config-differs",
            Severity.WARNING,
            f"{HF_QUANT} (quant_algo {other.algo}, group_size {other.group_size}, "
            f"{len(other.exclude)} exclusions) differs from config.json quantization_config "
            f"(quant_algo {quant.algo}, group_size {quant.group_size}, {len(quant.exclude)} "
            "exclusions); SGLang uses config.json's",
            "re-export the checkpoint so both files agree",
        )
    ]


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
    return [
        Finding(
            "checkpoint.expert-dtype",
            Severity.ERROR,
            f"{len(wrong)} routed expert weight(s) are {dtype}, not packed NVFP4 (U8): "
            f"{listed(wrong)}",
            "serve the NVFP4 export, not the BF16 source checkpoint",
        )
    ]


def check(path: Path, recipe: Recipe, profile: Profile) -> tuple[list[Finding], CheckpointFacts]:
    """Every checkpoint check; also returns what the flag checks need."""
    config_file = path / CONFIG
    try:
        config = read_config(path)
    except InputError as exc:
        return [
            Finding(
                "checkpoint.config",
                Severity.ERROR,
                str(exc),
                "point --model at the checkpoint folder (it holds config.json)",
            )
        ], CheckpointFacts()
    found: list[Finding] = []
    if config.get("model_type") != recipe.model.model_type:
        found.append(
            Finding(
                "checkpoint.model-type",
                Severity.ERROR,
                f"{config_file}: model_type is {config.get('model_type')!r}, "
                f"not {recipe.model.model_type!r}",
                f"serve a GLM-5.1 checkpoint ({recipe.model.published})",
            )
        )
    try:
        quant = read_quant_config(path, config)
    except InputError as exc:
        quant = None
        found.append(
            Finding(
                "checkpoint.quant-config",
                Severity.ERROR,
                str(exc),
                "re-download hf_quant_config.json",
            )
        )
    else:
        found += _check_quant(quant, recipe)
        found += _check_quant_agree(path, config, quant)
    facts = CheckpointFacts(config, quant)

    try:
        weight_map = read_weight_map(path)
    except InputError as exc:
        found.append(
            Finding(
                "checkpoint.index",
                Severity.ERROR,
                str(exc),
                "re-download model.safetensors.index.json",
            )
        )
        return found, facts
    problems, headers = check_shards(path, weight_map)
    found += problems  # the same Finding type: errors, each with its fix

    num_layers = int(config.get("num_hidden_layers", 0))
    found += _check_expert_dtypes(headers, num_layers)
    spec = profile.server.speculative
    mtp = f"model.layers.{num_layers}."
    if (
        spec is not None
        and spec.algorithm == "NEXTN"
        and not any(name.startswith(mtp) for name in weight_map)
    ):
        found.append(
            Finding(
                "checkpoint.mtp-missing",
                Severity.ERROR,
                f"the profile uses NEXTN speculative decoding but {INDEX} has no MTP layer "
                f"({mtp}*, num_hidden_layers {num_layers})",
                "serve a checkpoint that keeps the MTP layer, or a profile without speculative "
                "decoding",
            )
        )
    return found, facts
