"""`glm51 card` and `glm51 publish`: parse, build the request, call the stage, present."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from glm51.options import (
    ProfileOption,
    RecipeOption,
    ReleaseVersionOption,
    ReportOption,
    dry_run_option,
    output_file_option,
    seconds_option,
)
from glm51.publish.hub import DEFAULT_TIMEOUT_S
from glm51.publish.plan import DEFAULT_COMMIT_BYTES
from glm51.ui import byte_progress, err, out, say

if TYPE_CHECKING:
    from glm51.publish.request import RunRecords

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
    typer.Option(
        "--plot",
        dir_okay=False,
        help="Throughput plot (PNG): the card links it as assets/NAME, and it goes there.",
    ),
]

FidelityRecordOption = Annotated[
    Path | None,
    typer.Option(
        "--fidelity-record",
        dir_okay=False,
        help="glm51 fidelity's record (without it the card shows no KL figures).",
    ),
]
FidelityPlotOption = Annotated[
    Path | None,
    typer.Option(
        "--fidelity-plot",
        dir_okay=False,
        help="Fidelity plot (PNG): the card links it as assets/NAME, and it goes there.",
    ),
]


def _records(**paths: Path | None) -> RunRecords:
    from glm51.publish.request import RunRecords

    return RunRecords(**paths)


def card_command(
    output: Annotated[
        Path | None,
        output_file_option("Write the card here (default: stdout); --plot goes beside it."),
    ] = None,
    version: ReleaseVersionOption = None,
    image_record: ImageRecordOption = None,
    quantize_record: QuantizeRecordOption = None,
    smoke_record: SmokeRecordOption = None,
    bench_record: BenchRecordOption = None,
    plot: PlotOption = None,
    fidelity_record: FidelityRecordOption = None,
    fidelity_plot: FidelityPlotOption = None,
    profile: ProfileOption = None,
    recipe: RecipeOption = None,
) -> None:
    """Render the model card (README.md) from the recipe and the release run's records."""
    from glm51.publish.stage import CardRequest, run_card
    from glm51.recipe.load import load_recipe

    request = CardRequest(
        records=_records(
            image_record=image_record,
            quantize_record=quantize_record,
            smoke_record=smoke_record,
            bench_record=bench_record,
            plot=plot,
            fidelity_record=fidelity_record,
            fidelity_plot=fidelity_plot,
        ),
        output=output,
        version=version,
        profile=profile,
    )
    text = run_card(request, load_recipe(recipe), log=say)
    if output is None:
        typer.echo(text, nl=False)


def publish_command(
    checkpoint: Annotated[
        Path, typer.Argument(help="The verified NVFP4 checkpoint folder.", file_okay=False)
    ],
    repo: Annotated[str, typer.Option(help="The Hub repo, OWNER/NAME (created if needed).")],
    version: ReleaseVersionOption,  # required: the tag (never moved)
    card: Annotated[
        Path | None,
        typer.Option(
            dir_okay=False,
            help="A rendered card to upload as README.md (default: render it from the records).",
        ),
    ] = None,
    image_record: ImageRecordOption = None,
    quantize_record: QuantizeRecordOption = None,
    smoke_record: SmokeRecordOption = None,
    bench_record: BenchRecordOption = None,
    plot: PlotOption = None,
    fidelity_record: FidelityRecordOption = None,
    fidelity_plot: FidelityPlotOption = None,
    dry_run: Annotated[
        bool, dry_run_option("Print the plan (files, sizes, commits, tag); touch nothing.")
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
    hub_timeout: Annotated[
        float,
        seconds_option("Seconds the Hub may take to connect or to answer a request.", least=1),
    ] = DEFAULT_TIMEOUT_S,
    to: Annotated[
        Path | None,
        typer.Option(
            "--to",
            file_okay=False,
            help="Publish into this local folder instead of the Hub (TO/OWNER/NAME, tags/VERSION"
            " recording the digests): what the rehearsal does.",
        ),
    ] = None,
    report: ReportOption = None,
    profile: ProfileOption = None,
    recipe: RecipeOption = None,
) -> None:
    """Publish a verified checkpoint and its card to the Hub, and tag the version.

    Verifies the folder, uploads the weights (commits of --commit-gb) and then the card and
    small files in one commit, verifies the Hub's files against glm51-manifest.json, and only
    then creates the tag. Re-running after an interruption finishes the job; an existing
    tag is never moved. The token comes from HF_TOKEN or `hf auth login`, never from argv.
    """
    from glm51.publish.stage import PublishRequest, run_publish
    from glm51.recipe.load import load_recipe

    request = PublishRequest(
        checkpoint=checkpoint,
        repo=repo,
        version=version,
        card=card,
        records=_records(
            image_record=image_record,
            quantize_record=quantize_record,
            smoke_record=smoke_record,
            bench_record=bench_record,
            plot=plot,
            fidelity_record=fidelity_record,
            fidelity_plot=fidelity_plot,
        ),
        profile=profile,
        dry_run=dry_run,
        commit_bytes=int(commit_gb * 1e9),
        hub_endpoint=hub_endpoint,
        hub_timeout_s=hub_timeout,
        to=to,
        report=report,
    )
    loaded = load_recipe(recipe)
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    if dry_run:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    label = "hashing the checkpoint"
    with byte_progress(label, show=not dry_run and to is None) as progress:
        outcome = run_publish(request, loaded, log=say, progress=progress)
    if dry_run:
        out.print(escape(outcome.plan), highlight=False, soft_wrap=True)
    if outcome.status == "published":
        err.print(
            f"[green]published[/] {escape(repo)} {escape(version)} "
            f"({len(outcome.commits)} commit(s) this run)",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    app.command("card")(card_command)
    app.command("publish")(publish_command)
