"""`glm51 quantize` as one library call: check everything it can before any heavy work (paths,
device, the source's shards), build the calibration passes, then run the pipeline."""

from __future__ import annotations

import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from glm51 import __version__
from glm51.calib import data as calibdata
from glm51.calib.data import CalibSet
from glm51.calib.tokenizer import from_folder
from glm51.checkpoint.folder import Checkpoint, load_model_config
from glm51.checkpoint.integrity import require_intact
from glm51.errors import InputError
from glm51.outputs import check_no_overlap, check_output_folder
from glm51.quantize import estimate as est
from glm51.quantize import library_output
from glm51.quantize.pipeline import Log, Outcome, Progress, split
from glm51.quantize.pipeline import quantize as run_pipeline
from glm51.quantize.targets import config_digest, modelopt_config
from glm51.recipe import Recipe
from glm51.records import QuantizeRecord, ToolVersions, write_record
from glm51.records.quantize import CalibrationUnit


@dataclass(frozen=True)
class Calibration:
    """Where the calibration data comes from: local JSONL files, else the recipe's passes
    (from --data-dir, else the Hub); each pass split into ``chunks`` units."""

    files: tuple[Path, ...] = ()
    data_dir: Path | None = None
    chunks: int = 1
    max_length: int = 8192  # truncates the samples of local files


@dataclass(frozen=True)
class Request:
    model: Path
    output: Path
    work_dir: Path
    calibration: Calibration = Calibration()
    bounded: bool = False
    device: str = "cpu"
    overwrite: bool = False

    @classmethod
    def default_work_dir(cls, output: Path) -> Path:
        return output.with_name(output.name + ".work")


def check_device(spec: str) -> None:
    """--device is one this torch can use: cpu, or cuda[:N] with CUDA present."""
    import torch

    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError):
        raise InputError(f"--device {spec!r}: not a device; expected cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return
    if device.type != "cuda":
        raise InputError(f"--device {spec}: glm51 quantizes on cpu or cuda[:N], not {device.type}")
    if not torch.cuda.is_available():
        raise InputError(
            f"--device {spec}: no CUDA device is usable here (torch {torch.__version__}, "
            f"built for CUDA {torch.version.cuda or 'none'}); use --device cpu, or run on a GPU "
            "machine with a CUDA build of torch"
        )
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise InputError(f"--device {spec}: this machine has {count} CUDA device(s)")


def check_request(req: Request) -> None:
    """Every refusal that needs no model load, in seconds: run before anything heavy."""
    if not req.model.is_dir():
        # A path, never a Hub id: a typo must not turn into a minute of Hub retries.
        raise InputError(
            f"--model {req.model}: no such folder (give the BF16 checkpoint folder; "
            "download it first with `hf download`)"
        )
    calib = req.calibration
    inputs: dict[str, Path | None] = {"--model": req.model, "--data-dir": calib.data_dir}
    inputs.update({f"--calib-file {p}": p for p in calib.files})
    check_output_folder(
        req.output,
        overwrite=req.overwrite,
        option="--output",
        inputs={**inputs, "--work-dir": req.work_dir},
    )
    check_no_overlap(req.work_dir, inputs, "--work-dir")
    if req.work_dir.exists() and not req.work_dir.is_dir():
        raise InputError(f"--work-dir {req.work_dir}: exists and is not a folder")
    check_device(req.device)
    require_intact(req.model)  # config, index, every shard's header and length


def build_passes(req: Request, recipe: Recipe) -> dict[str, CalibSet]:
    """--calib-file replaces the recipe's passes with one local pass; else build them all."""
    tokenizer = from_folder(req.model, option="--model")
    calib = req.calibration
    if calib.files:
        local = calibdata.from_jsonl(list(calib.files), tokenizer, max_length=calib.max_length)
        return {"local": local}
    return {
        p.name: calibdata.build_pass(
            recipe.pass_manifest(p.name), tokenizer, data_dir=calib.data_dir
        )
        for p in recipe.quantize.passes
    }


def estimate_of(req: Request, units: Mapping[str, list[CalibSet]]) -> est.Estimate:
    config, index = load_model_config(req.model)
    shapes = [est.CalibShape.of_set(u) for us in units.values() for u in us]
    return est.estimate(config, shapes, index=index)


def quantize(
    req: Request,
    recipe: Recipe,
    *,
    progress: Progress = lambda *_: None,
    log: Log = lambda _: None,
) -> Outcome:
    check_request(req)
    started = time.monotonic()
    units = split(build_passes(req, recipe), req.calibration.chunks)
    log(estimate_of(req, units).render())
    log(f"mode: {'bounded memory' if req.bounded else 'resident'} on {req.device}")
    with library_output.captured() as printed:
        outcome = run_pipeline(
            req.model,
            req.output,
            units,
            recipe.quantize,
            work_dir=req.work_dir,
            bounded=req.bounded,
            device=req.device,
            overwrite=req.overwrite,
            progress=progress,
            log=log,
        )
    for line in library_output.summary(printed.getvalue(), outcome.output):
        log(line)
    record = record_of(req, recipe, outcome, units, time.monotonic() - started)
    write_record(record, req.work_dir / RECORD)
    log(f"quantize record: {req.work_dir / RECORD}")
    return outcome


RECORD = "quantize.json"


def _tools() -> ToolVersions:
    import torch

    versions = {}
    for dist in ("transformers", "nvidia-modelopt"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return ToolVersions(
        python=platform.python_version(),
        torch=torch.__version__,
        cuda=torch.version.cuda,
        transformers=versions["transformers"],
        modelopt=versions["nvidia-modelopt"],
    )


def _device_name(device: str) -> str | None:
    import torch

    return torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else None


def record_of(
    req: Request,
    recipe: Recipe,
    outcome: Outcome,
    units: Mapping[str, list[CalibSet]],
    seconds: float,
) -> QuantizeRecord:
    """What this run produced, from what, with which tools, for the release and the card."""
    report = outcome.report
    source = Checkpoint(req.model)
    return QuantizeRecord(
        glm51_version=__version__,
        source=str(req.model),
        source_fingerprint=source.fingerprint(),
        output=str(outcome.output),
        mode="bounded" if req.bounded else "resident",
        device=req.device,
        device_name=_device_name(req.device),
        calibration=tuple(
            CalibrationUnit(name=u.name, samples=len(u), tokens=u.tokens, digest=u.digest)
            for us in units.values()
            for u in us
        ),
        config_digest=config_digest(modelopt_config(recipe.quantize, source.config)),
        coverage_passed=report.ok,
        under_covered=tuple(f"{layer}.{expert}" for layer, expert in report.merged.warning),
        tools=_tools(),
        seconds=round(seconds, 1),
    )
