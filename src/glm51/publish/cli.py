"""`glm51 card` and `glm51 publish`."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from glm51.errors import InputError
from glm51.options import SECONDS_MAX, ProfileOption, RecipeOption
from glm51.outputs import check_output_file, write_text
from glm51.publish.hub import DEFAULT_TIMEOUT_S, Hub, check_online
from glm51.publish.plan import DEFAULT_COMMIT_BYTES, VERSION, check_names

if TYPE_CHECKING:
    from glm51.publish.card import Records

out = Console()
err = Console(stderr=True)

ImageRecordOption = Annotated[
    Path | None, typer.Option("--image-record", dir_okay=False, help="glm51 image build's record.")
]
QuantizeRecordOption = Annotated[
    Path | None, typer.Option("--quantize-record", dir_okay=False, help="glm51 quantize's record.")
]
SmokeRecordOption = Annotated[
    Path | None, typer.Option("--smoke-record", dir_okay=False, help="glm51 smoke's record.")
]
BenchRecordOption = Annotated[
    Path | None,
    typer.Option(
        "--bench-record",
        dir_okay=False,
        help="glm51 bench's record (without it the card shows no throughput figures).",
    ),
]
PlotOption = Annotated[
    Path | None,
    typer.Option("--plot", dir_okay=False, exists=True, help="Throughput plot (PNG) for the card."),
]


def _records(image, quantize, smoke, bench) -> Records:
    from glm51.publish.card import Records
    from glm51.records import BenchRecord, ImageRecord, QuantizeRecord, SmokeRecord, read_record

    return Records(
        image=read_record(image, ImageRecord) if image else None,
        quantize=read_record(quantize, QuantizeRecord) if quantize else None,
        smoke=read_record(smoke, SmokeRecord) if smoke else None,
        bench=read_record(bench, BenchRecord) if bench else None,
    )


def card_command(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", dir_okay=False, help="Write here (default: stdout)."),
    ] = None,
    version: Annotated[str | None, typer.Option(help="The release version (vX.Y.Z).")] = None,
    image_record: ImageRecordOption = None,
    quantize_record: QuantizeRecordOption = None,
    smoke_record: SmokeRecordOption = None,
    bench_record: BenchRecordOption = None,
    plot: PlotOption = None,
    profile: ProfileOption = None,
    recipe: RecipeOption = None,
) -> None:
    """Render the model card (README.md) from the recipe and the release run's records."""
    from glm51.publish.card import render_card
    from glm51.recipe.load import load_recipe

    loaded = load_recipe(recipe)
    if version is not None and not VERSION.match(version):
        raise InputError(f"--version {version!r}: expected vMAJOR.MINOR.PATCH (e.g. v1.0.0)")
    if output is not None:  # before anything is read or rendered
        inputs = {"--image-record": image_record, "--quantize-record": quantize_record}
        inputs |= {"--smoke-record": smoke_record, "--bench-record": bench_record}
        check_output_file(output, option="--output", inputs={**inputs, "--plot": plot})
    text = render_card(
        loaded,
        _records(image_record, quantize_record, smoke_record, bench_record),
        version=version,
        profile=profile,
        plot=plot.name if plot else None,
    )
    if output is None:
        typer.echo(text, nl=False)
        return
    write_text(output, text)
    err.print(f"wrote {escape(str(output))}", highlight=False)


def publish_command(
    ctx: typer.Context,
    checkpoint: Annotated[
        Path, typer.Argument(help="The verified NVFP4 checkpoint folder.", file_okay=False)
    ],
    repo: Annotated[str, typer.Option(help="The Hub repo, OWNER/NAME (created if needed).")],
    version: Annotated[str, typer.Option(help="The version to tag, vX.Y.Z (never moved).")],
    card: Annotated[
        Path | None,
        typer.Option(
            dir_okay=False,
            exists=True,
            help="A rendered card to upload as README.md (default: render it from the records).",
        ),
    ] = None,
    image_record: ImageRecordOption = None,
    quantize_record: QuantizeRecordOption = None,
    smoke_record: SmokeRecordOption = None,
    bench_record: BenchRecordOption = None,
    plot: PlotOption = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print the plan (files, sizes, commits, tag); touch nothing."
        ),
    ] = False,
    commit_gb: Annotated[
        float, typer.Option(min=1e-6, max=1e4, help="Weights per commit, in GB.")
    ] = DEFAULT_COMMIT_BYTES / 1e9,
    hub_endpoint: Annotated[
        str | None,
        typer.Option(
            "--hub-endpoint", envvar="HF_ENDPOINT", help="The Hub's URL (default: huggingface.co)."
        ),
    ] = None,
    old_endpoint: Annotated[
        str | None,
        typer.Option("--endpoint", hidden=True, help="Deprecated spelling of --hub-endpoint."),
    ] = None,
    hub_timeout: Annotated[
        float,
        typer.Option(
            min=1,
            max=SECONDS_MAX,
            help="Seconds the Hub may take to accept a connection or to answer a request.",
        ),
    ] = DEFAULT_TIMEOUT_S,
    report: Annotated[
        Path | None,
        typer.Option(dir_okay=False, help="Write the outcome as JSON here (also with --dry-run)."),
    ] = None,
    profile: ProfileOption = None,
    recipe: RecipeOption = None,
) -> None:
    """Publish a verified checkpoint and its card to the Hub, and tag the version.

    Verifies the folder, uploads the weights (commits of --commit-gb) and then the card and
    small files in one commit, verifies the Hub's files against glm51-manifest.json, and only
    then creates the tag. Re-running after an interruption finishes the job; an existing
    tag is never moved. The token comes from HF_TOKEN or `hf auth login`, never from argv.
    """
    from glm51.publish.card import render_card
    from glm51.publish.run import publish
    from glm51.recipe.load import load_recipe

    if old_endpoint is not None:  # one meaning per flag: --endpoint is a server elsewhere
        err.print(
            "glm51 publish: --endpoint is deprecated and will be removed; use --hub-endpoint",
            highlight=False,
        )
        from click.core import ParameterSource

        # The command line wins over HF_ENDPOINT, whichever spelling it used.
        if ctx.get_parameter_source("hub_endpoint") is not ParameterSource.COMMANDLINE:
            hub_endpoint = old_endpoint
    loaded = load_recipe(recipe)
    check_names(repo, version)
    if report is not None:  # before hours of hashing and uploading; never inside an input
        inputs = {"CHECKPOINT": checkpoint, "--card": card, "--plot": plot}
        inputs |= {"--image-record": image_record, "--quantize-record": quantize_record}
        inputs |= {"--smoke-record": smoke_record, "--bench-record": bench_record}
        check_output_file(report, option="--report", inputs=inputs)
    check_online()
    hub = Hub(endpoint=hub_endpoint, timeout_s=hub_timeout)  # a bad URL is refused here
    plot_name = f"assets/{plot.name}" if plot else None
    if card is not None:
        text = card.read_bytes()
    else:
        text = render_card(
            loaded,
            _records(image_record, quantize_record, smoke_record, bench_record),
            version=version,
            profile=profile,
            plot=plot_name,
        ).encode()
    extra = {plot_name: plot.read_bytes()} if plot and plot_name else {}
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    if dry_run:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    say = lambda m: err.print(escape(m), highlight=False, soft_wrap=True)  # noqa: E731
    how = {"extra": extra, "dry_run": dry_run, "commit_bytes": int(commit_gb * 1e9), "log": say}
    with _hashing_progress(dry_run) as progress:
        outcome = publish(
            checkpoint,
            loaded,
            repo=repo,
            version=version,
            card=text,
            hub=hub,
            progress=progress,
            **how,
        )
    if dry_run:
        out.print(escape(outcome.plan), highlight=False, soft_wrap=True)
    if report is not None:
        write_text(report, outcome.to_json())
    if outcome.status == "published":
        err.print(
            f"[green]published[/] {escape(repo)} {escape(version)} "
            f"({len(outcome.commits)} commit(s) this run)",
            highlight=False,
        )


@contextlib.contextmanager
def _hashing_progress(dry_run: bool) -> Iterator[Callable[[int], None]]:
    """A bar for the local hash (hours for the full model); a dry run does not hash."""
    if dry_run:
        yield lambda _n: None
        return
    with Progress(
        TextColumn("hashing the checkpoint"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("hash", total=None)
        yield lambda n: bar.update(task, advance=n)


def register(app: typer.Typer) -> None:
    app.command("card")(card_command)
    app.command("publish")(publish_command)
