"""`glm51 quantize` as one library call: check everything it can before any heavy work (paths,
device, the source's shards), build the calibration passes, then run the pipeline."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from glm51.calib import data as calibdata
from glm51.calib.data import CalibSet
from glm51.calib.tokenizer import from_folder
from glm51.checkpoint.folder import load_model_config
from glm51.checkpoint.integrity import require_intact
from glm51.errors import InputError
from glm51.outputs import check_free_space, check_no_overlap, check_output_folder
from glm51.quantize import estimate as est
from glm51.quantize import library_output
from glm51.quantize.device import check_device
from glm51.quantize.pipeline import Log, Outcome, Progress, split
from glm51.quantize.pipeline import quantize as run_pipeline
from glm51.recipe.schema import Recipe


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


def check_request(req: Request) -> None:
    """Every refusal that needs no model load, in seconds: run before anything heavy."""
    check_device(req.device)
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
        command="quantize",
        inputs={**inputs, "--work-dir": req.work_dir},
    )
    check_no_overlap(req.work_dir, inputs, "--work-dir")
    if req.work_dir.exists() and not req.work_dir.is_dir():
        raise InputError(f"--work-dir {req.work_dir}: exists and is not a folder")
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
    units = split(build_passes(req, recipe), req.calibration.chunks)
    estimate = estimate_of(req, units)
    log(estimate.render())
    # The export is staged beside --output and swapped in whole: the old one (if any) stays
    # until then, so the new one needs its whole size free, checked before calibration.
    check_free_space(
        req.output.parent,
        estimate.output_bytes,
        what="the NVFP4 checkpoint (the estimate above)",
        option="--output",
    )
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
    log(f"quantize record: {outcome.record_path}")
    return outcome
