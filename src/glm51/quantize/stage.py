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
from glm51.quantize.launch import Launched, launch
from glm51.quantize.pipeline import Log, Outcome, Progress, split
from glm51.quantize.pipeline import quantize as run_pipeline
from glm51.quantize.ranks import join, torchrun_world
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
    nproc: int = 1  # ranks to start on this box (bounded mode); under torchrun: 1
    recipe_file: Path | None = None  # what the ranks of --nproc load (None: the default)

    @classmethod
    def default_work_dir(cls, output: Path) -> Path:
        return output.with_name(output.name + ".work")


def check_ranks(req: Request) -> None:
    """--nproc, and a run under torchrun: what data-parallel quantization needs."""
    world = torchrun_world()
    if req.nproc < 1:
        raise InputError(f"--nproc {req.nproc}: give 1 or more processes")
    if req.nproc > 1 and world > 1:
        raise InputError(
            f"--nproc {req.nproc} under torchrun (WORLD_SIZE={world}): torchrun already "
            "started the ranks; leave --nproc out"
        )
    ranks = max(req.nproc, world)
    if ranks > 1 and not req.bounded:
        given = (
            f"--nproc {req.nproc}" if req.nproc > 1 else f"{world} ranks (torchrun's WORLD_SIZE)"
        )
        raise InputError(
            f"{given}: data-parallel quantization runs in the bounded-memory mode only "
            "(pass --bounded-memory)"
        )
    if ranks > 1 and req.device.startswith("cuda:"):
        raise InputError(
            f"--device {req.device} with {ranks} ranks: each rank takes the GPU of its local "
            "rank; give --device cuda (or cpu)"
        )
    if req.nproc > 1 and req.device == "cuda":
        import torch

        if torch.cuda.device_count() < req.nproc:
            raise InputError(
                f"--nproc {req.nproc} --device cuda: torch sees {torch.cuda.device_count()} "
                "CUDA device(s), one per rank is needed"
            )


def check_request(req: Request) -> None:
    """Every refusal that needs no model load, in seconds: run before anything heavy."""
    check_device(req.device)
    check_ranks(req)
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


def estimate_of(req: Request, units: Mapping[str, list[CalibSet]], ranks: int = 1) -> est.Estimate:
    config, index = load_model_config(req.model)
    shapes = [est.CalibShape.of_set(u) for us in units.values() for u in us]
    return est.estimate(config, shapes, index=index, ranks=ranks)


def quantize(
    req: Request,
    recipe: Recipe,
    *,
    progress: Progress = lambda *_: None,
    log: Log = lambda _: None,
) -> Outcome | Launched:
    """One process, or a rank of a torchrun job (the same call on every rank), or with
    --nproc N the parent that starts N ranks of this command and waits for them."""
    check_request(req)
    if req.nproc > 1:
        log(f"starting {req.nproc} ranks (torchrun) on this box")
        return launch(req)
    ranks = join(req.device)
    try:
        return _quantize(req, recipe, ranks, progress, log)
    finally:
        ranks.close()


def _quantize(req: Request, recipe: Recipe, ranks, progress: Progress, log: Log) -> Outcome:
    units = split(build_passes(req, recipe), req.calibration.chunks)
    estimate = estimate_of(req, units, ranks.world)
    log(estimate.render())
    # The export is staged beside --output and swapped in whole: the old one (if any) stays
    # until then, so the new one needs its whole size free, checked before calibration.
    check_free_space(
        req.output.parent,
        estimate.output_bytes,
        what="the NVFP4 checkpoint (the estimate above)",
        option="--output",
    )
    on = f"{ranks.world} ranks ({ranks.device} on rank 0)" if ranks.world > 1 else req.device
    log(f"mode: {'bounded memory' if req.bounded else 'resident'} on {on}")
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
            ranks=ranks,
        )
    for line in library_output.summary(printed.getvalue(), outcome.output):
        log(line)
    log(f"quantize record: {outcome.record_path}")
    return outcome
