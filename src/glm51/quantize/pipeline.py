"""The quantize stage as ordered, resumable steps: calibrate each unit (a pass or a chunk
of one) into an artifact unless a valid one is already there, merge, gate, export once,
write the record. In the resident mode the model is loaded once, for all of it."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import glm51
from glm51.calib import coverage
from glm51.calib.data import CalibSet
from glm51.checkpoint.folder import Checkpoint
from glm51.checkpoint.safetensors import read_header
from glm51.errors import InputError
from glm51.outputs import check_output_folder
from glm51.quantize.artifact import Artifact, merge
from glm51.quantize.calibrate import Resident, calibrate_bounded
from glm51.quantize.device import check_device, device_name, provenance, tool_versions
from glm51.quantize.export import export
from glm51.quantize.layers import release
from glm51.quantize.ranks import SINGLE, Ranks
from glm51.quantize.targets import config_digest, modelopt_config
from glm51.recipe.quantize import QuantizeRecipe
from glm51.records.base import ToolVersions, write_record
from glm51.records.quantize import CalibrationUnit, QuantizeRecord

RECORD = "glm51-quantize.json"  # in the work dir (the output stays byte-reproducible)

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
    record: QuantizeRecord
    record_path: Path


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


def _tensor_counts(output: Path) -> tuple[int, int]:
    """(NVFP4 projections, BF16 tensors) in the written checkpoint."""
    quantized = bf16 = 0
    for shard in output.glob("*.safetensors"):
        for name, info in read_header(shard).tensors.items():
            quantized += name.endswith(".weight_scale")
            bf16 += info.dtype == "BF16"
    return quantized, bf16


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
    ranks: Ranks = SINGLE,
) -> Outcome:
    """Under torchrun (`ranks`, world > 1): every rank calls this with the same arguments;
    each calibrates its share of every unit, rank 0 writes the artifacts, reports and record,
    and the export is spread over the ranks. The same bytes as one process."""
    start = time.perf_counter()
    check_device(device)  # before anything is loaded
    if not passes:
        raise InputError("no calibration passes")
    if ranks.world > 1 and not bounded:
        raise InputError(
            f"{ranks.world} ranks: data-parallel quantization runs in the bounded-memory mode "
            "only (pass --bounded-memory)"
        )
    # Before hours of calibration, not after.
    check_output_folder(
        Path(output),
        overwrite=overwrite,
        option="--output",
        command="quantize",
        inputs={"--model": Path(model_dir)},
    )
    work_dir = Path(work_dir)
    ckpt = Checkpoint(model_dir)
    qcfg = modelopt_config(recipe, ckpt.config)
    model_key = f"{ckpt.fingerprint()}\0{config_digest(qcfg)}"
    gpu = device_name(ranks.device if ranks.world > 1 else device)
    resident: Resident | None = None  # the resident mode's one model, loaded on first use
    # Before any work: every rank was given the same source, recipe, data and output.
    ranks.agree(
        {
            "source": ckpt.fingerprint(),
            "recipe": hashlib.sha256(repr(recipe).encode()).hexdigest()[:16],
            "calibration data": hashlib.sha256(
                repr([(u.name, u.digest) for us in passes.values() for u in us]).encode()
            ).hexdigest()[:16],
            "--output": str(Path(output).resolve()),
            "--work-dir": str(work_dir.resolve()),
        }
    )
    run_on = ranks.device if ranks.world > 1 else device

    def calibrate(unit: CalibSet) -> Artifact:
        nonlocal resident
        if bounded:
            art = calibrate_bounded(
                ckpt.dir,
                unit.samples,
                qcfg,
                unit=unit.name,
                digest=unit.digest,
                device=run_on,
                progress=progress,
                ranks=ranks,
            )
        else:
            if resident is None:
                resident = Resident(ckpt.dir, qcfg, device)
            art = resident.calibrate(
                unit.samples, unit=unit.name, digest=unit.digest, progress=progress
            )
        return Artifact(art.unit, art.digests, art.amax, art.counts, device, gpu)

    per_pass: dict[str, Artifact] = {}
    reused, done, units_done = [], [], []
    try:
        for pass_name, units in passes.items():
            parts = []
            for unit in units:
                path = artifact_path(work_dir, unit, model_key)
                # Rank 0 decides, from its disk, and hands the artifact to every rank.
                art = ranks.from_leader(lambda p=path: Artifact.load(p) if p.is_file() else None)
                if art is not None and art.digests == (unit.digest,):
                    log(f"{unit.name}: reusing {path}")
                    reused.append(unit.name)
                else:
                    art = calibrate(unit)
                    if ranks.leader:
                        art.save(path)
                    done.append(unit.name)
                parts.append(art)
                units_done.append((unit, art))
            per_pass[pass_name] = merge(parts, pass_name) if parts else None
        empty = [name for name, art in per_pass.items() if art is None]
        if empty:
            raise InputError(f"calibration passes without any unit: {', '.join(empty)}")

        report = coverage.evaluate({n: a.counts for n, a in per_pass.items()}, recipe.coverage)
        reports = ranks.from_leader(lambda: coverage.write_reports(report, work_dir / "coverage"))
        coverage.gate(report)  # GateFailed: no data, or experts under fail_below
        merged = merge(list(per_pass.values()))
        if ranks.leader:
            merged.save(work_dir / "merged.safetensors")
        calibrated_on = [{"device": a.device, "device_name": a.device_name} for _, a in units_done]
        if not bounded and resident is None:  # every unit reused: load it for the export
            resident = Resident(ckpt.dir, qcfg, device)
        out = export(
            ckpt.dir,
            merged.amax,
            recipe,
            qcfg,
            output,
            bounded=bounded,
            device=device,
            overwrite=overwrite,
            progress=progress,
            resident=resident,
            provenance=provenance(device, calibrated_on),
            ranks=ranks,
        )
    finally:
        resident = None
        release()
    quantized, bf16 = _tensor_counts(out)
    record = QuantizeRecord(
        glm51_version=glm51.__version__,
        source=str(ckpt.dir),
        source_fingerprint=ckpt.fingerprint(),
        output=str(out),
        mode="bounded" if bounded else "resident",
        device=device,
        device_name=gpu,
        ranks=ranks.world,
        calibration=tuple(
            CalibrationUnit(
                name=u.name,
                samples=len(u.samples),
                tokens=u.tokens,
                digest=u.digest,
                device=a.device,
                device_name=a.device_name,
                reused=u.name in reused,
            )
            for u, a in units_done
        ),
        config_digest=config_digest(qcfg),
        quantized_tensors=quantized,
        bf16_tensors=bf16,
        coverage_passed=True,
        under_covered=tuple(f"{layer}.{expert}" for layer, expert in report.merged.warning),
        tools=ToolVersions(**tool_versions()),
        seconds=round(time.perf_counter() - start, 3),
    )
    record_path = work_dir / RECORD
    if ranks.leader:
        write_record(record, record_path)
    return Outcome(out, merged, report, reports, tuple(reused), tuple(done), record, record_path)
