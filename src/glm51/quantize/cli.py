"""`glm51 quantize` and `glm51 tiny-model`. Heavy imports live inside the command bodies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from glm51.options import RecipeOption


def _load_passes(model: Path, calib_files, data_dir, recipe_path, max_length: int):
    """--calib-file replaces the recipe's passes with one local pass; else build them all."""
    from transformers import AutoTokenizer

    from glm51.errors import InputError
    from glm51.quantize import calibdata
    from glm51.recipe import load_recipe

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model))
    except (OSError, ValueError) as exc:
        raise InputError(f"{model}: cannot load its tokenizer ({exc})") from exc
    if calib_files:
        return {"local": calibdata.from_jsonl(calib_files, tokenizer, max_length=max_length)}
    return {
        p.name: calibdata.build_pass(
            calibdata.resolve_manifest(p.name, recipe_path), tokenizer, data_dir=data_dir
        )
        for p in load_recipe(recipe_path).quantize.passes
    }


def _quiet_libraries() -> None:
    # Our own progress and report speak for the run; transformers' load report would list the
    # MTP layer it drops on every load (the export carries that layer through itself).
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def register(app: typer.Typer) -> None:
    @app.command("quantize")
    def quantize(
        model: Annotated[
            Path, typer.Option("--model", help="The BF16 checkpoint folder.", file_okay=False)
        ],
        output: Annotated[Path, typer.Option("--output", help="The NVFP4 checkpoint to write.")],
        calib_file: Annotated[
            list[Path] | None,
            typer.Option(
                "--calib-file",
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
        chunks: Annotated[
            int, typer.Option("--chunks", min=1, help="Calibration units per pass.")
        ] = 1,
        max_length: Annotated[
            int, typer.Option("--max-length", min=1, help="Truncate --calib-file samples.")
        ] = 8192,
        device: Annotated[
            str,
            typer.Option(
                "--device", help="cpu, cuda or cuda:N (checked before anything is loaded)."
            ),
        ] = "cpu",
        overwrite: Annotated[
            bool, typer.Option("--overwrite", help="Replace an existing output.")
        ] = False,
        recipe: RecipeOption = None,
    ) -> None:
        """NVFP4 of the routed experts (ModelOpt), calibrated pass by pass, coverage-gated.

        Exit 3 bad input, 5 coverage or scale gate failed, 6 infrastructure.
        """
        from glm51.quantize.device import check_device

        check_device(device)  # exit 3 now, not after the tokenizer, data and model are loaded

        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        from glm51.quantize import estimate as est
        from glm51.quantize.pipeline import quantize as run
        from glm51.quantize.pipeline import split
        from glm51.recipe import load_recipe

        _quiet_libraries()
        console = Console(stderr=True)
        loaded = load_recipe(recipe)
        passes = _load_passes(model, calib_file, data_dir, recipe, max_length)
        units = split(passes, chunks)
        config, index = est.load_model_config(model)
        shapes = [est.CalibShape.of_set(u) for us in units.values() for u in us]
        console.print(est.estimate(config, shapes, index=index).render(), highlight=False)
        console.print(f"mode: {'bounded memory' if bounded_memory else 'resident'} on {device}")

        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
        ) as bar:
            tasks: dict[str, int] = {}

            def progress(what: str, done: int, total: int) -> None:
                if what not in tasks:
                    tasks[what] = bar.add_task(what, total=total)
                bar.update(tasks[what], completed=done, total=total)

            outcome = run(
                model,
                output,
                units,
                loaded.quantize,
                work_dir=work_dir or output.with_name(output.name + ".work"),
                bounded=bounded_memory,
                device=device,
                overwrite=overwrite,
                progress=progress,
                log=lambda msg: console.print(msg, highlight=False),
            )
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

    @app.command("tiny-model")
    def tiny_model(
        out: Annotated[Path, typer.Argument(help="Folder to write (created).")],
        layers: Annotated[int, typer.Option("--layers", min=2, help="Decoder layers.")] = 3,
        seed: Annotated[int, typer.Option("--seed", help="Seed of the random weights.")] = 0,
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
    ) -> None:
        """A tiny random glm_moe_dsa checkpoint (same class and layout as GLM-5.1)."""
        from glm51.quantize.rehearsal_data import write_jsonl
        from glm51.quantize.tiny import build_tiny_model

        _quiet_libraries()
        build_tiny_model(out, num_layers=layers, seed=seed)
        typer.echo(f"{out}: tiny glm_moe_dsa model ({layers} layers + 1 MTP layer)")
        if calib_out is not None:
            write_jsonl(calib_out, calib_samples, seed)
            typer.echo(f"{calib_out}: {calib_samples} synthetic conversations")
