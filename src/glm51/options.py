"""Options shared by several commands."""

from pathlib import Path
from typing import Annotated

import typer

from glm51 import env

# The longest wait any option takes (a week): finite, so `inf` is refused by name, not met later
# as an overflow in a library's clock.
SECONDS_MAX = 7 * 86400.0

RecipeOption = Annotated[
    Path | None,
    typer.Option(
        "--recipe",
        envvar=env.RECIPE,
        help="Recipe file (default: release/glm51.toml of the checkout, or the packaged copy).",
        dir_okay=False,
    ),
]

# Which checkpoint and profile: `glm51 serve` and `glm51 doctor` take the same ones.
ModelOption = Annotated[
    Path | None, typer.Option(help="A local checkpoint folder.", file_okay=False)
]
ModelIdOption = Annotated[
    str | None,
    typer.Option(
        help="Hub repo, resolved from the local Hub cache (default: the recipe's published repo)."
    ),
]
RevisionOption = Annotated[
    str | None, typer.Option(help="Ref or commit of --model-id (default: main).")
]
ProfileOption = Annotated[
    str | None,
    typer.Option(
        envvar=env.PROFILE,
        help="Serve profile (default: the recipe's serve.default_profile; in the image, "
        "the first profile its SGLang build advertises).",
    ),
]

# One spelling and one meaning per flag name across the commands.
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
ReportOption = Annotated[
    Path | None,
    typer.Option(
        "--report", dir_okay=False, help="Write the outcome as JSON here (also with --dry-run)."
    ),
]
ReleaseVersionOption = Annotated[
    str | None, typer.Option("--version", help="The release version, vX.Y.Z.")
]


def dry_run_option(does: str) -> typer.models.OptionInfo:
    """`--dry-run`: a plain flag (no --no-dry-run); ``does`` says what it prints instead."""
    return typer.Option("--dry-run", help=does)


def out_folder_option(holds: str) -> typer.models.OptionInfo:
    """`--out DIR`: the folder a command writes its files into (never one file)."""
    return typer.Option("--out", file_okay=False, help=f"The folder {holds} go into.")


def output_file_option(what: str) -> typer.models.OptionInfo:
    """`--output FILE` / `-o`: the one file a command writes (never a folder)."""
    return typer.Option("--output", "-o", dir_okay=False, help=f"Write {what} here.")


def renamed(command: str, old: str, new: str) -> None:
    """An old spelling still works for one release, and says so on stderr."""
    typer.echo(f"glm51 {command}: {old} is deprecated and will be removed; use {new}", err=True)
