"""`glm51 quantize`, `glm51 tiny-model` and `glm51 calib estimate`. The quantize stage pulls
torch, transformers and ModelOpt, so it is imported when one of its commands runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from glm51.calib import cli as calib_cli
from glm51.options import RecipeOption
from glm51.outputs import check_output_file

# soft_wrap: a log (not a terminal) keeps whole lines instead of hard breaks at 80 columns.
console = Console(stderr=True, soft_wrap=True)


def _quiet_libraries() -> None:
    # Our own progress and report speak for the run; transformers' load report would list the
    # MTP layer it drops on every load (the export carries that layer through itself).
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def quantize_command(
    model: Annotated[
        Path, typer.Option("--model", help="The BF16 checkpoint folder.", file_okay=False)
    ],
    output: Annotated[Path, typer.Option("--output", help="The NVFP4 checkpoint to write.")],
    calib_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--calib-file",
            metavar="JSONL",
            help="Local JSONL ({'messages': [...]} per line); repeatable. Replaces the "
            "recipe's passes with one pass 'local'.",
            dir_okay=False,
            exists=True,
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Local source files for the recipe's passes."),
    ] = None,
    bounded_memory: Annotated[
        bool,
        typer.Option("--bounded-memory", help="One decoder layer at a time on the device."),
    ] = False,
    work_dir: Annotated[
        Path | None,
        typer.Option(
            "--work-dir",
            help="Artifacts and reports; a rerun reuses the artifacts already there "
            "(default: OUTPUT.work).",
        ),
    ] = None,
    chunks: Annotated[int, typer.Option("--chunks", min=1, help="Calibration units per pass.")] = 1,
    max_length: Annotated[
        int, typer.Option("--max-length", min=1, help="Truncate --calib-file samples.")
    ] = 8192,
    device: Annotated[
        str,
        typer.Option("--device", help="cpu, cuda or cuda:N (checked before anything is loaded)."),
    ] = "cpu",
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace an existing output that glm51 wrote."),
    ] = False,
    nproc: Annotated[
        int,
        typer.Option(
            "--nproc",
            help="Ranks on this box (with --bounded-memory): each calibrates a share of the "
            "samples and exports a share of the layers; the same bytes as one process. "
            "Across boxes: `torchrun --nnodes ... -m glm51 quantize ...` without --nproc.",
        ),
    ] = 1,
    recipe: RecipeOption = None,
) -> None:
    """NVFP4 of the routed experts (ModelOpt), calibrated pass by pass, coverage-gated.

    Exit 3 bad input, 5 coverage or scale gate failed, 6 infrastructure (a rank that died).
    """
    from glm51.quantize import stage  # torch, transformers, ModelOpt
    from glm51.recipe.load import load_recipe

    loaded = load_recipe(recipe)
    calibration = stage.Calibration(tuple(calib_file or ()), data_dir, chunks, max_length)
    work_dir = work_dir or stage.Request.default_work_dir(output)
    request = stage.Request(
        model,
        output,
        work_dir,
        calibration,
        bounded_memory,
        device,
        overwrite,
        nproc=nproc,
        recipe_file=recipe,
    )
    _quiet_libraries()  # stage.quantize checks the request once, before anything heavy
    # Under torchrun, rank 0 speaks for the run; the other ranks print only their errors.
    leader = os.environ.get("RANK", "0") == "0"
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        disable=not leader,
    ) as bar:
        tasks: dict[str, int] = {}

        def progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)

        def log(message: str) -> None:
            if leader:
                console.print(message, highlight=False)

        outcome = stage.quantize(request, loaded, progress=progress, log=log)
    if isinstance(outcome, stage.Launched):
        typer.echo(f"{outcome.ranks} ranks finished (rank 0's report above)")
        return
    if not leader:
        return
    warned = outcome.report.merged.warning
    if warned:
        shown = ", ".join(f"({layer}, {expert})" for layer, expert in warned[:20])
        console.print(
            f"[yellow]warning:[/] {len(warned)} experts got fewer than "
            f"{outcome.report.warn_below} calibration tokens: {shown}"
            + (" ..." if len(warned) > 20 else "")
        )
    typer.echo(f"{outcome.output}: NVFP4 checkpoint written")
    typer.echo(f"coverage report: {outcome.reports['md']}")
    typer.echo(f"record: {outcome.record_path}")


def tiny_model_command(
    out: Annotated[Path, typer.Argument(help="Folder to write (created).")],
    layers: Annotated[int, typer.Option("--layers", min=2, help="Decoder layers.")] = 3,
    seed: Annotated[
        int, typer.Option("--seed", min=0, max=2**32 - 1, help="Seed of the random weights.")
    ] = 0,
    calib_out: Annotated[
        Path | None,
        typer.Option(
            help="Also write synthetic chat JSONL for `glm51 quantize --calib-file` "
            "(rehearsal only: not calibration data for the real model).",
            dir_okay=False,
        ),
    ] = None,
    calib_samples: Annotated[
        int, typer.Option(min=1, help="Conversations written to --calib-out.")
    ] = 16,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing OUT that glm51 wrote.")
    ] = False,
) -> None:
    """A tiny random glm_moe_dsa checkpoint (same class and layout as GLM-5.1)."""
    from glm51.calib.rehearsal_data import write_jsonl
    from glm51.quantize.tiny import build_tiny_model  # torch, transformers

    if calib_out is not None:  # before the model is built: never over someone's file
        check_output_file(calib_out, option="--calib-out", inputs={"OUT": out})
    _quiet_libraries()
    build_tiny_model(out, num_layers=layers, seed=seed, overwrite=overwrite)
    typer.echo(f"{out}: tiny glm_moe_dsa model ({layers} layers + 1 MTP layer)")
    if calib_out is not None:
        write_jsonl(calib_out, calib_samples, seed)
        typer.echo(f"{calib_out}: {calib_samples} synthetic conversations")


def estimate_command(
    model: Annotated[
        Path,
        typer.Option(help="Checkpoint folder (config.json, safetensors index).", exists=True),
    ],
    calib: Annotated[
        list[Path] | None,
        typer.Option(
            metavar="NPZ", help="Built calibration sets (.npz) (default: the recipe's manifests)."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 1,
    recipe: RecipeOption = None,
) -> None:
    """Estimated disk, host and GPU memory of `glm51 quantize`, resident and bounded."""
    from glm51.calib.data import CalibSet
    from glm51.calib.manifest import load_manifest
    from glm51.checkpoint.folder import load_model_config
    from glm51.quantize import estimate as est
    from glm51.recipe.load import load_recipe

    loaded = load_recipe(recipe)
    config, index = load_model_config(model)
    if calib:
        units = [est.CalibShape.of_set(CalibSet.load(p)) for p in calib]
    else:
        units = [
            est.CalibShape.of_manifest(load_manifest(loaded.pass_manifest(p.name)))
            for p in loaded.quantize.passes
        ]
    typer.echo(est.estimate(config, units, index=index, batch_size=batch_size).render())


def register(app: typer.Typer) -> None:
    app.command("quantize")(quantize_command)
    app.command("tiny-model")(tiny_model_command)
    calib_cli.group.command("estimate")(estimate_command)
