"""verify's NVFP4 layout check: which modules are NVFP4 and which stay BF16 (against the
recipe and the exclude lists), and every NVFP4 projection has its four tensors with the
right dtypes and shapes."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from glm51.checkpoint.integrity import listed
from glm51.checkpoint.safetensors import ShardHeader
from glm51.checkpoint.verify.exclusions import excluded_by, quant_configs
from glm51.checkpoint.verify.report import Report
from glm51.checkpoint.verify.scales import check_scales
from glm51.recipe.schema import Recipe

NVFP4_PARTS = {  # suffix -> dtype
    "weight": "U8",
    "weight_scale": "F8_E4M3",
    "weight_scale_2": "F32",
    "input_scale": "F32",
}
_EXPERT = re.compile(r"^(model\.layers\.(\d+)\.mlp\.experts\.(\d+))\.(gate|up|down)_proj$")


def modules(headers: Mapping[str, ShardHeader]) -> dict[str, dict[str, tuple[str, Any]]]:
    """module -> {suffix: (shard, TensorInfo)} for weights and the NVFP4 parts."""
    out: dict[str, dict[str, tuple[str, Any]]] = {}
    for shard, header in headers.items():
        for name, info in header.tensors.items():
            module, _, suffix = name.rpartition(".")
            if suffix in NVFP4_PARTS and module:
                out.setdefault(module, {})[suffix] = (shard, info)
    return out


def _check_nvfp4(
    module: str, parts: dict[str, tuple[str, Any]], group: int, config: dict, report: Report
) -> bool:
    """The four tensors, dtypes and shapes; returns whether the module is well-formed."""
    ok = True
    absent = [s for s in NVFP4_PARTS if s not in parts]
    if absent:
        report.add(
            "nvfp4-incomplete",
            module,
            f"NVFP4 projection without {', '.join(absent)} (expected weight U8, weight_scale "
            "F8_E4M3, weight_scale_2 F32 [], input_scale F32 [])",
        )
        ok = False
    for suffix, (_, info) in sorted(parts.items()):
        if info.dtype != NVFP4_PARTS[suffix]:
            report.add(
                "nvfp4-dtype",
                f"{module}.{suffix}",
                f"is {info.dtype}, an NVFP4 projection's {suffix} is {NVFP4_PARTS[suffix]}",
            )
            ok = False
    for suffix in ("weight_scale_2", "input_scale"):
        if suffix in parts and parts[suffix][1].shape not in ((), (1,)):
            report.add(
                "nvfp4-shape",
                f"{module}.{suffix}",
                f"has shape {list(parts[suffix][1].shape)}, expected a scalar []",
            )
            ok = False
    if "weight" in parts and "weight_scale" in parts:
        w, s = parts["weight"][1].shape, parts["weight_scale"][1].shape
        if len(w) != 2 or len(s) != 2 or s != (w[0], w[1] * 2 // group):
            want = f"[{w[0]}, {w[1] * 2 // group}]" if len(w) == 2 else "2-D"
            report.add(
                "nvfp4-shape",
                f"{module}.weight_scale",
                f"has shape {list(s)}; weight {list(w)} packs {w[1] * 2 if len(w) == 2 else '?'} "
                f"inputs per row, so one scale per {group} is {want}",
            )
            ok = False
        elif m := _EXPERT.match(module):
            hidden, inter = config.get("hidden_size"), config.get("moe_intermediate_size")
            expect = (inter, hidden) if m[4] in ("gate", "up") else (hidden, inter)
            if None not in expect and (w[0], w[1] * 2) != expect:
                report.add(
                    "nvfp4-shape",
                    f"{module}.weight",
                    f"unpacks to [{w[0]}, {w[1] * 2}], config.json says {list(expect)} "
                    f"(hidden_size {hidden}, moe_intermediate_size {inter})",
                )
                ok = False
    return ok


def check_layout(folder: Path, config: dict, headers, recipe: Recipe, report: Report) -> None:
    quant = quant_configs(folder, config, recipe, report)
    exclude = quant.exclude
    group = recipe.quantize.group_size
    by_module = modules(headers)
    scalars, blocks = [], []
    nvfp4_wrongly_excluded, bf16_not_excluded, outside_recipe = [], [], []
    for module, parts in sorted(by_module.items()):
        is_fp4 = any(s in parts for s in ("weight_scale", "weight_scale_2", "input_scale")) or (
            "weight" in parts and parts["weight"][1].dtype == "U8"
        )
        if is_fp4:
            report.nvfp4_modules += 1
            _check_nvfp4(module, parts, group, config, report)
            for suffix in ("weight_scale_2", "input_scale"):
                if suffix in parts and parts[suffix][1].dtype == "F32":
                    scalars.append((parts[suffix][0], f"{module}.{suffix}", parts[suffix][1]))
            if "weight_scale" in parts and parts["weight_scale"][1].dtype == "F8_E4M3":
                blocks.append(
                    (parts["weight_scale"][0], f"{module}.weight_scale", parts["weight_scale"][1])
                )
            if (pattern := excluded_by(module, exclude)) is not None:
                nvfp4_wrongly_excluded.append((module, pattern))
            if not any(fnmatch.fnmatch(module, p) for p in recipe.quantize.quantize):
                outside_recipe.append(module)
        elif "weight" in parts and len(parts["weight"][1].shape) == 2:
            report.bf16_modules += 1
            if excluded_by(module, exclude) is None:
                bf16_not_excluded.append(module)
    if nvfp4_wrongly_excluded:
        names = [f"{m} (by {p!r})" for m, p in nvfp4_wrongly_excluded]
        report.add(
            "exclude-disagrees",
            "exclude list",
            f"{len(names)} NVFP4 module(s) are named by the exclude list, so SGLang would load "
            f"them as BF16: {listed(names)}",
        )
    if bf16_not_excluded:
        report.add(
            "exclude-disagrees",
            "exclude list",
            f"{len(bf16_not_excluded)} BF16 module(s) are not named by the exclude list, so "
            f"SGLang would expect NVFP4 tensors for them: {listed(bf16_not_excluded)}",
        )
    if outside_recipe:
        report.add(
            "layout-recipe",
            "recipe",
            f"{len(outside_recipe)} NVFP4 module(s) match none of the recipe's quantize patterns "
            f"{list(recipe.quantize.quantize)}: {listed(outside_recipe)}",
        )
    if report.nvfp4_modules == 0 and not report.problems:
        report.add("layout-recipe", "checkpoint", "has no NVFP4 module: not an NVFP4 export")
    check_scales(folder, scalars, blocks, report)
