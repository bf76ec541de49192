"""`glm51 verify`: a checkpoint's integrity and layout, checked before it is served or published.

Three parts, each naming the file or tensor and what was expected:

- **structure**: the index and the shards agree (every shard named is there and readable,
  every index entry is in its shard, every shard on disk is referenced, no tensor twice);
- **layout against the recipe**: which modules are NVFP4 and which stay BF16, every NVFP4
  projection has its four tensors with the right dtypes and shapes, the scales are finite
  and positive, both exclude lists (config.json and hf_quant_config.json) agree with each
  other, with the recipe and with the tensors (SGLang's matching rules);
- **integrity**: sizes and sha256 against glm51-manifest.json (and per-tensor digests to
  name what changed); ``write=True`` records the manifest when everything else passes.

Each family is a module here (structure, exclusions, layout, scales, contents, deep).
``source=`` adds the deep check (torch): a sample of NVFP4 experts is dequantized and
compared with the BF16 source. Nothing in the folder is modified, except the manifest that
``write=True`` adds.
"""

from __future__ import annotations

from pathlib import Path

from glm51.checkpoint.names import DEEP_EXPERTS, DEEP_MAX_ERROR
from glm51.checkpoint.verify.contents import check_contents
from glm51.checkpoint.verify.deep import deep_check, sample_modules
from glm51.checkpoint.verify.exclusions import QuantConfigs, excluded_by
from glm51.checkpoint.verify.layout import check_layout
from glm51.checkpoint.verify.report import DeepResult, Problem, Report, read_json
from glm51.checkpoint.verify.structure import check_structure
from glm51.errors import InputError
from glm51.recipe.schema import Recipe
from glm51.ui import Progress, quiet

__all__ = [
    "DeepResult",
    "Problem",
    "QuantConfigs",
    "Report",
    "excluded_by",
    "sample_modules",
    "verify",
]


def verify(
    folder: Path | str,
    recipe: Recipe,
    *,
    write: bool = False,
    hash_contents: bool = True,
    source: Path | str | None = None,
    samples: int = DEEP_EXPERTS,
    max_rel_error: float = DEEP_MAX_ERROR,
    threads: int | None = None,
    progress: Progress = quiet,
) -> Report:
    """Every check on ``folder``; returns the report (it raises only for unusable arguments)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a checkpoint folder")
    report = Report(folder)
    config = read_json(folder / "config.json", report, "config")
    _, headers = check_structure(folder, report)
    if isinstance(config, dict):
        if config.get("model_type") != recipe.model.model_type:
            report.add(
                "config",
                "config.json",
                f"model_type is {config.get('model_type')!r}, the recipe says "
                f"{recipe.model.model_type!r}",
            )
        if headers:
            check_layout(folder, config, headers, recipe, report)
    if hash_contents:
        check_contents(
            folder, headers, report, write=write, recipe=recipe, threads=threads, progress=progress
        )
    else:
        report.manifest = "not-checked"
    if source is not None and headers:
        deep_check(
            folder, headers, Path(source), report, samples=samples, max_rel_error=max_rel_error
        )
    return report
