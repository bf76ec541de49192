"""`glm51 fidelity`: KL of the NVFP4 checkpoint against its BF16 source, layer by layer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from glm51.options import RecipeOption

console = Console(stderr=True, soft_wrap=True)


def fidelity_command(
    source: Annotated[
        Path, typer.Option("--source", help="The BF16 checkpoint folder.", file_okay=False)
    ],
    checkpoint: Annotated[
        Path,
        typer.Option(
            "--checkpoint",
            help="Its NVFP4 quantization (the source itself measures KL 0: a self-check).",
            file_okay=False,
        ),
    ],
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out", help="Where fidelity.json, fidelity.md and fidelity.png go.", file_okay=False
        ),
    ] = Path("out/fidelity"),
    text_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--text-file",
            metavar="JSONL",
            help="Local JSONL ({'messages': [...]} per line); repeatable. Replaces the "
            "recipe's fidelity manifest (the record says so).",
            dir_okay=False,
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Local source files for the recipe's fidelity manifest."),
    ] = None,
    coverage: Annotated[
        Path | None,
        typer.Option(
            "--coverage",
            metavar="MERGED",
            help="quantize's WORK/merged.safetensors: the worst experts are listed with the "
            "tokens calibration routed to them.",
            dir_okay=False,
        ),
    ] = None,
    device: Annotated[
        str, typer.Option("--device", help="cpu, cuda or cuda:N (one layer at a time there).")
    ] = "cpu",
    gate_set: Annotated[
        str,
        typer.Option(
            "--gates",
            help="Which of the recipe's budgets and gates: release (fidelity, gates.fidelity) "
            "or rehearsal (rehearsal.fidelity, rehearsal.gates.fidelity: the tiny model's).",
        ),
    ] = "release",
    worst_experts: Annotated[
        int, typer.Option("--worst-experts", min=1, help="Experts listed, worst first.")
    ] = 10,
    recipe: RecipeOption = None,
) -> None:
    """KL(BF16 || NVFP4) per position and top-1 agreement on held-out text, gated.

    Walks both models one decoder layer at a time (host memory bounded as in bounded
    quantize): the BF16 layer, and the same layer with its routed experts computed from the
    checkpoint's NVFP4 bytes (W4A4). Writes OUT/fidelity.json, fidelity.md, fidelity.png.
    Exit 3 bad input (checked before any work), 5 a gate missed (after the reports are written).
    """
    from transformers.utils import logging as hf_logging

    from glm51.fidelity.report import markdown
    from glm51.fidelity.request import FidelityRequest
    from glm51.fidelity.stage import raise_for, run_fidelity
    from glm51.recipe.load import load_recipe

    loaded = load_recipe(recipe)
    request = FidelityRequest(
        source=source,
        checkpoint=checkpoint,
        out_dir=out_dir,
        text_files=tuple(text_file or ()),
        data_dir=data_dir,
        coverage=coverage,
        device=device,
        gate_set=gate_set,  # type: ignore[arg-type]  # checked by the request
        worst_experts=worst_experts,
    )
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = None

        def progress(what: str, done: int, total: int) -> None:
            nonlocal task
            if task is None:
                task = bar.add_task("layers (+ head)", total=total)
            bar.update(task, completed=done, total=total)

        record = run_fidelity(
            request, loaded, progress=progress, log=lambda m: console.print(m, highlight=False)
        )
    print(markdown(record))
    raise_for(record)


def register(app: typer.Typer) -> None:
    app.command("fidelity")(fidelity_command)
