"""`glm51 bench`: the model card's throughput figures, measured against an endpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from glm51.options import (
    SECONDS_MAX,
    ApiKeyFileOption,
    EndpointOption,
    RecipeOption,
    ServedNameOption,
    out_folder_option,
    seconds_option,
)

if TYPE_CHECKING:
    from glm51.bench.run import FigureSpec
    from glm51.records import BenchFigure

err = Console(stderr=True)


def bench_command(
    endpoint: EndpointOption,
    out_dir: Annotated[
        Path,
        out_folder_option("Where bench.json, bench.md and bench.png go."),
    ] = Path("out/bench"),
    figures: Annotated[
        str | None,
        typer.Option(
            help="Only these figures, comma-separated: short_tg, tg_32k, tg_128k, c32, "
            "c64 (default: all five)."
        ),
    ] = None,
    warmup: Annotated[
        float,
        typer.Option(min=0, max=SECONDS_MAX, help="Seconds of each figure before the window."),
    ] = 15.0,
    duration: Annotated[
        float, typer.Option(min=0.1, max=SECONDS_MAX, help="Seconds each figure is measured for.")
    ] = 30.0,
    max_tokens: Annotated[int, typer.Option(min=2, help="Output tokens per request.")] = 1024,
    context_32k: Annotated[
        int,
        typer.Option(
            min=1,
            help="Prompt tokens of the 32K TG figure; another size than 32768 is labelled "
            "with its size and not gated.",
        ),
    ] = 32768,
    context_128k: Annotated[
        int,
        typer.Option(
            min=1,
            help="Prompt tokens of the 128K TG figure; another size than 131072 is labelled "
            "with its size and not gated.",
        ),
    ] = 131072,
    served_name: ServedNameOption = None,
    hardware: Annotated[str, typer.Option(help="What the server runs on, for the card.")] = "",
    profile: Annotated[
        str | None, typer.Option(help="The serve profile the server runs, for the record.")
    ] = None,
    timeout: Annotated[
        float,
        seconds_option(
            "Seconds a stream may stay silent before it counts as dead.", name="--stall-timeout"
        ),
    ] = 300.0,
    gate_set: Annotated[
        Literal["release", "rehearsal"],
        typer.Option(
            "--gates",
            help="Which of the recipe's gates decide the exit code: release (\\[gates], the "
            "model card's figures) or rehearsal (\\[rehearsal.gates], the CPU rehearsal's).",
        ),
    ] = "release",
    max_failed_requests: Annotated[
        int,
        typer.Option(
            min=0,
            help="Requests a figure may lose and go on (a replica behind a gateway died); "
            "each is recorded with why it could not be retried.",
        ),
    ] = 0,
    api_key_file: ApiKeyFileOption = None,
    recipe: RecipeOption = None,
) -> None:
    """Measure Short/32K/128K TG and c=32/c=64 throughput; gate them on the recipe's gates.

    Writes OUT/bench.json (a typed record), OUT/bench.md (the card's table) and OUT/bench.png.
    Exit 5 when a figure misses its gate, 6 when the server fails or dies, 3 when it answers
    401 (the API key is missing or wrong).
    """
    from glm51.apikey import KeySource
    from glm51.bench.report import TITLES, markdown
    from glm51.bench.run import Settings
    from glm51.bench.stage import BenchRequest, raise_for, run_bench
    from glm51.recipe.load import load_recipe
    from glm51.records.bench import FIGURES

    rec = load_recipe(recipe)
    chosen = (
        FIGURES if figures is None else tuple(n.strip() for n in figures.split(",") if n.strip())
    )
    request = BenchRequest(
        endpoint=endpoint,
        out_dir=out_dir,
        figures=chosen,
        settings=Settings(
            warmup_s=warmup,
            duration_s=duration,
            max_tokens=max_tokens,
            timeout_s=timeout,
            max_failed_requests=max_failed_requests,
        ),
        context_32k=context_32k,
        context_128k=context_128k,
        served_name=served_name,
        hardware=hardware,
        profile=profile,
        gate_set=gate_set,  # a Literal: typer refused other names (exit 2); the request checks too
        api_key=KeySource(file=api_key_file, env=rec.deploy.api_key_env),
    )
    request.check()
    with _progress() as progress:
        total = warmup + duration

        def on_start(spec: FigureSpec) -> Callable[[float], None]:
            task = progress.add_task(f"{TITLES.get(spec.name, spec.name):>9}", total=total)
            return lambda seconds: progress.update(task, completed=seconds)

        def on_done(figure: BenchFigure) -> None:
            progress.console.print(
                f"  {figure.title(TITLES)}: {figure.tokens_per_s:.1f} tok/s{_gate_word(figure)}"
            )

        record = run_bench(request, rec, on_start=on_start, on_done=on_done)
    print(markdown(record))  # plain: the Markdown stays copy-pasteable (no wrapping, no markup)
    err.print(f"glm51 bench: wrote {out_dir}/bench.json, bench.md, bench.png")
    raise_for(record)


def _gate_word(f: BenchFigure) -> str:
    if f.gate is None:
        return ""
    return " [green](gate passed)[/]" if f.gate.passed else " [bold red](gate MISSED)[/]"


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
        TimeElapsedColumn(),
        console=err,
    )


def register(app: typer.Typer) -> None:
    app.command("bench")(bench_command)
