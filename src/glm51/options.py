"""glm51's command-line vocabulary: the options several commands share (one declaration,
one meaning per flag name), the spellings renamed for that (each still works for one
release, with a notice), and the typer command class that applies both."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar

import typer
from typer.core import TyperCommand, TyperGroup

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
    typer.Option("--report", dir_okay=False, help="Write the outcome as JSON here."),
]
ReleaseVersionOption = Annotated[
    str | None, typer.Option("--version", help="The release version, vX.Y.Z.")
]


def seconds_option(what: str, *, name: str | None = None, least: float = 0.1) -> Any:
    """A duration in seconds: ``least`` up to a week (finite: `inf` is refused by name)."""
    return typer.Option(*((name,) if name else ()), min=least, max=SECONDS_MAX, help=what)


# The server smoke and bench talk to, and the model name they ask it for.
EndpointOption = Annotated[
    str | None, typer.Option(help="Base URL of the server, e.g. http://127.0.0.1:30000.")
]
ServedNameOption = Annotated[
    str | None, typer.Option(help="Model name to ask for (default: the recipe's served_name).")
]


def dry_run_option(does: str) -> typer.models.OptionInfo:
    """`--dry-run`: a plain flag (no --no-dry-run); ``does`` says what it prints instead."""
    return typer.Option("--dry-run", help=does)


def out_folder_option(help: str) -> typer.models.OptionInfo:
    """`--out DIR`: the folder a command writes its reports and records into."""
    return typer.Option("--out", file_okay=False, help=help)


def output_file_option(help: str) -> typer.models.OptionInfo:
    """`--output` / `-o`: what the command makes (a card, a calibration set, a checkpoint),
    as opposed to `--out`, the folder of its reports."""
    return typer.Option("--output", "-o", dir_okay=False, help=help)


# Flags renamed so that each name has one meaning; the old spelling still works for one
# release and says so on stderr. Command path -> {old spelling: new}.
RENAMED: dict[str, dict[str, str]] = {
    "verify": {"--samples": "--experts"},  # --samples counts conversations (release)
    "publish": {"--endpoint": "--hub-endpoint"},  # --endpoint is a server (smoke, bench)
    "bench": {"--timeout": "--stall-timeout"},  # --timeout is one request's (smoke)
    "calib build": {"--out": "--output"},  # --out is a reports folder (smoke, bench, image)
    "image build": {"--repo": "--checkout"},  # --repo is the Hub repo (publish)
    "image update-pins": {"--repo": "--checkout"},
}


def respell(command: str, renamed: Mapping[str, str], args: Sequence[str]) -> list[str]:
    """``args`` with the old spellings replaced (up to a bare `--`: what follows is another
    program's), each one noted once on stderr."""
    out, noted = list(args), set()
    for i, arg in enumerate(out):
        if arg == "--":
            break
        name, eq, value = arg.partition("=")
        if name in renamed:
            out[i] = f"{renamed[name]}{eq}{value}"
            if name not in noted:
                noted.add(name)
                typer.echo(
                    f"glm51 {command}: {name} is deprecated and will be removed; use "
                    f"{renamed[name]}",
                    err=True,
                )
    return out


def _no_type(ctx: Any = None) -> None:
    return None


class _FlagsShowNoType:
    """typer prints a type beside every option, `<bool>` for an on/off flag, which reads as
    if it took a value: a flag shows none."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)  # type: ignore[misc]  # declared ones and --help
        for param in params:
            if getattr(param, "is_flag", False):
                param.display_type_rich = _no_type
        return params


class Group(_FlagsShowNoType, TyperGroup):
    """glm51 and its command groups (image, calib, recipe)."""


class Command(_FlagsShowNoType, TyperCommand):
    """Every glm51 command; a renamed flag's old spelling still works (RENAMED)."""

    renamed: ClassVar[Mapping[str, str]] = {}
    path: ClassVar[str] = ""  # "verify", "image build": the program's name (`glm51`,
    # `python -m glm51`, ...) is not part of it, so the warning reads the same however run

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, respell(self.path, self.renamed, args))


def command_class(path: str) -> type[Command]:
    """The command class for the command at ``path`` ("verify", "image build")."""
    renamed = RENAMED.get(path)
    if not renamed:
        return Command
    return type("Command", (Command,), {"renamed": renamed, "path": path})


# The API key's file (serve, router, smoke, bench). Without it, the variable the recipe's
# deploy.api_key_env names (GLM51_API_KEY) holds the key, if set. Never the key itself: argv
# is visible to every user of the machine.
ApiKeyFileOption = Annotated[
    Path | None,
    typer.Option(
        "--api-key-file",
        help="File holding the API key (default: $GLM51_API_KEY, as the recipe's "
        "deploy.api_key_env names it; unset: no key).",
        dir_okay=True,  # a folder is refused by name when read, with exit 3
    ),
]
