"""The `glm51` command line: parses, calls the stage, maps typed errors to exit codes."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from glm51 import __version__
from glm51.errors import Glm51Error

err = Console(stderr=True)

app = typer.Typer(
    name="glm51",
    help="Build, verify, serve and release GLM-5.1-NVFP4 (SGLang + b12x on Blackwell).\n\n"
    "Exit codes: 0 ok, 2 usage, 3 bad input (recipe, checkpoint, data), 4 preflight failed, "
    "5 gate failed, 6 infrastructure failed (a tool, server or network).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"glm51 {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log every command run.")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(name)s: %(message)s",
        stream=sys.stderr,
    )


def _register_stages() -> None:
    # Each stage adds its own commands; heavy imports stay inside the command bodies.
    from glm51.bench import cli as bench_cli
    from glm51.image import cli as image_cli
    from glm51.preflight import cli as preflight_cli
    from glm51.quantize import calib_cli
    from glm51.quantize import cli as quantize_cli
    from glm51.recipe import cli as recipe_cli
    from glm51.serve import cli as serve_cli
    from glm51.smoke import cli as smoke_cli

    for stage in (
        serve_cli,
        preflight_cli,
        quantize_cli,
        calib_cli,
        image_cli,
        recipe_cli,
        smoke_cli,
        bench_cli,
    ):
        stage.register(app)


_register_stages()


def main() -> None:
    # Standalone mode: typer handles usage errors (exit 2) and Exit codes itself.
    try:
        app()
    except Glm51Error as exc:
        # soft_wrap: no hard breaks at 80 columns, so logs keep whole lines and the fix
        # commands in messages (pip install ..., URLs) stay copy-pasteable.
        err.print(
            f"[bold red]glm51: {exc.kind}:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        sys.exit(exc.exit_code)
