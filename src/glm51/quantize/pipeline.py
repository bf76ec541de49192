"""The quantize stage as ordered, resumable steps: calibrate each unit (a pass or a chunk
of one) into an artifact unless a valid one is already there, merge, gate, export once."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from glm51.calib import coverage
from glm51.calib.data import CalibSet
from glm51.checkpoint.folder import Checkpoint
from glm51.errors import InputError
from glm51.outputs import check_output_folder
from glm51.quantize.artifact import Artifact, merge
from glm51.quantize.calibrate import calibrate_bounded, calibrate_resident
from glm51.quantize.export import export
from glm51.quantize.targets import config_digest, modelopt_config
from glm51.recipe.quantize import QuantizeRecipe

Progress = Callable[[str, int, int], None]
Log = Callable[[str], None]


@dataclass(frozen=True)
class Outcome:
    output: Path
    merged: Artifact
    report: coverage.CoverageReport
    reports: dict[str, Path]
    reused: tuple[str, ...]  # units whose artifact was already there (resume)
    calibrated: tuple[str, ...]


def artifact_path(work_dir: Path, unit: CalibSet, model_key: str) -> Path:
    """Keyed by the unit's data digest and the model + quantizer config it was measured on."""
    key = hashlib.sha256(f"{model_key}\0{unit.digest}".encode()).hexdigest()[:16]
    return work_dir / "artifacts" / f"{unit.name}-{key}.safetensors"


def split(passes: Mapping[str, CalibSet], chunks: int) -> dict[str, list[CalibSet]]:
    """Each pass as `chunks` units (fewer when a pass has fewer samples; one when empty)."""
    out = {}
    for name, calib in passes.items():
        n = min(chunks, len(calib))
        out[name] = calib.chunks(n) if n > 1 else [calib]
    return out


def quantize(
    model_dir: Path | str,
    output: Path | str,
    passes: Mapping[str, Sequence[CalibSet]],
    recipe: QuantizeRecipe,
    *,
    work_dir: Path | str,
    bounded: bool = False,
    device: str = "cpu",
    overwrite: bool = False,
    progress: Progress = lambda *_: None,
    log: Log = lambda _: None,
) -> Outcome:
    if not passes:
        raise InputError("no calibration passes")
    # Before hours of calibration, not after.
    check_output_folder(
        Path(output), overwrite=overwrite, option="--output", inputs={"--model": Path(model_dir)}
    )
    work_dir = Path(work_dir)
    ckpt = Checkpoint(model_dir)
    qcfg = modelopt_config(recipe, ckpt.config)
    model_key = f"{ckpt.fingerprint()}\0{config_digest(qcfg)}"
    calibrate = calibrate_bounded if bounded else calibrate_resident

    per_pass: dict[str, Artifact] = {}
    reused, done = [], []
    for pass_name, units in passes.items():
        parts = []
        for unit in units:
            path = artifact_path(work_dir, unit, model_key)
            if path.is_file():
                art = Artifact.load(path)
                if art.digests == (unit.digest,):
                    log(f"{unit.name}: reusing {path}")
                    parts.append(art)
                    reused.append(unit.name)
                    continue
            art = calibrate(
                ckpt.dir, unit.samples, qcfg, unit=unit.name, digest=unit.digest,
                device=device, progress=progress,
            )  # fmt: skip
            art.save(path)
            parts.append(art)
            done.append(unit.name)
        per_pass[pass_name] = merge(parts, pass_name) if parts else None
    empty = [name for name, art in per_pass.items() if art is None]
    if empty:
        raise InputError(f"calibration passes without any unit: {', '.join(empty)}")

    report = coverage.evaluate({n: a.counts for n, a in per_pass.items()}, recipe.coverage)
    reports = coverage.write_reports(report, work_dir / "coverage")
    coverage.gate(report)  # GateFailed: no data, or experts under fail_below
    merged = merge(list(per_pass.values()))
    merged.save(work_dir / "merged.safetensors")
    out = export(
        ckpt.dir, merged.amax, recipe, qcfg, output,
        bounded=bounded, device=device, overwrite=overwrite, progress=progress,
    )  # fmt: skip
    return Outcome(out, merged, report, reports, tuple(reused), tuple(done))
