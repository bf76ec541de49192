"""verify's exclusion check: both exclude lists (config.json's and hf_quant_config.json's)
agree with each other and with the recipe, matched the way SGLang's ModelOpt loader does."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from glm51.checkpoint.verify.report import Report, read_json
from glm51.recipe.schema import Recipe

HF_QUANT = "hf_quant_config.json"


@functools.lru_cache(maxsize=1024)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern.replace(".", r"\.").replace("*", ".*"))


def excluded_by(module: str, patterns: tuple[str, ...]) -> str | None:
    """The first exclude pattern that names ``module`` the way SGLang's ModelOpt loader
    matches them (glob as regex, full match on the module or one of its dotted parts)."""
    parts = module.split(".")
    for p in patterns:
        rx = _glob_regex(p)
        if rx.fullmatch(module) or any(rx.fullmatch(part) for part in parts):
            return p
    return None


@dataclass(frozen=True)
class QuantConfigs:
    config_exclude: tuple[str, ...] | None  # config.json quantization_config's list
    hf_exclude: tuple[str, ...] | None  # hf_quant_config.json's list

    @property
    def exclude(self) -> tuple[str, ...]:
        # SGLang reads config.json's copy first.
        return self.config_exclude if self.config_exclude is not None else (self.hf_exclude or ())


def quant_configs(folder: Path, config: dict, recipe: Recipe, report: Report) -> QuantConfigs:
    want = recipe.quantize
    qc = config.get("quantization_config")
    config_exclude = None
    if isinstance(qc, dict):
        nested = qc.get("quantization") if isinstance(qc.get("quantization"), dict) else {}
        flat = qc if "quant_algo" in qc else nested
        lst = flat.get("ignore", flat.get("exclude_modules", flat.get("modules_to_not_convert")))
        config_exclude = tuple(lst or ())
        if flat.get("quant_algo") != want.algorithm:
            report.add(
                "quant-config",
                "config.json",
                f"quantization_config.quant_algo is {flat.get('quant_algo')!r}, "
                f"the recipe says {want.algorithm!r}",
            )
        if qc.get("quant_method", "modelopt") != "modelopt":
            report.add(
                "quant-config",
                "config.json",
                f"quantization_config.quant_method is {qc.get('quant_method')!r}, not 'modelopt'",
            )
    hf_exclude = None
    if (folder / HF_QUANT).is_file():
        data = read_json(folder / HF_QUANT, report, "quant-config")
        section = (data or {}).get("quantization") if isinstance(data, dict) else None
        if isinstance(section, dict):
            hf_exclude = tuple(section.get("exclude_modules") or ())
            if section.get("quant_algo") != want.algorithm:
                report.add(
                    "quant-config",
                    HF_QUANT,
                    f"quantization.quant_algo is {section.get('quant_algo')!r}, "
                    f"the recipe says {want.algorithm!r}",
                )
            if section.get("group_size") != want.group_size:
                report.add(
                    "quant-config",
                    HF_QUANT,
                    f"quantization.group_size is {section.get('group_size')!r}, "
                    f"the recipe says {want.group_size}",
                )
        elif data is not None:
            report.add("quant-config", HF_QUANT, "has no 'quantization' object")
    if config_exclude is None and hf_exclude is None:
        report.add(
            "quant-config",
            "config.json",
            f"no quantization config (neither config.json quantization_config nor {HF_QUANT}): "
            "not an NVFP4 export",
        )
    if (
        config_exclude is not None
        and hf_exclude is not None
        and set(config_exclude) != set(hf_exclude)
    ):
        only_c = sorted(set(config_exclude) - set(hf_exclude))
        only_h = sorted(set(hf_exclude) - set(config_exclude))
        report.add(
            "exclude-differs",
            HF_QUANT,
            f"exclude_modules differs from config.json quantization_config.ignore "
            f"(only in config.json: {only_c or 'none'}; only in {HF_QUANT}: {only_h or 'none'})",
        )
    found = QuantConfigs(config_exclude, hf_exclude)
    missing = [p for p in want.keep_bf16 if p not in found.exclude]
    if missing and (config_exclude is not None or hf_exclude is not None):
        report.add(
            "exclude-recipe",
            "config.json" if config_exclude is not None else HF_QUANT,
            f"the exclude list lacks the recipe's keep_bf16 pattern(s) {missing}",
        )
    return found
