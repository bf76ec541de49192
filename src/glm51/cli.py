"""The `glm51` command line: parses, calls the stage, and is the one error boundary.

Every expected failure is a typed error (glm51.errors) and becomes its exit code and one
message; anything else is a bug and says so in one line. `--debug` (or GLM51_DEBUG=1) shows
the traceback either way.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.markup import escape

from glm51 import __version__, env, source_url, ui
from glm51.bench import cli as bench_cli
from glm51.calib import cli as calib_cli
from glm51.checkpoint import cli as checkpoint_cli
from glm51.deploy import cli as deploy_cli
from glm51.errors import Glm51Error, from_os_error
from glm51.fidelity import cli as fidelity_cli
from glm51.image import cli as image_cli
from glm51.options import Group, command_class
from glm51.preflight import cli as preflight_cli
from glm51.publish import cli as publish_cli
from glm51.quantize import cli as quantize_cli
from glm51.recipe import cli as recipe_cli
from glm51.release import cli as release_cli
from glm51.router import cli as router_cli
from glm51.serve import cli as serve_cli
from glm51.smoke import cli as smoke_cli

DEBUG_ENV = env.DEBUG

err = ui.err


app = typer.Typer(
    name="glm51",
    cls=Group,
    help="Build, verify, serve and release GLM-5.1-NVFP4 (SGLang + b12x on Blackwell).\n\n"
    "Exit codes: 0 ok, 2 usage, 3 bad input (recipe, checkpoint, data), 4 preflight failed, "
    "5 gate failed, 6 infrastructure failed (a tool, server or network), 1 a bug in glm51.",
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
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", envvar=DEBUG_ENV, help="Show the traceback of an error (for bug reports)."
        ),
    ] = False,
) -> None:
    if debug:
        os.environ[DEBUG_ENV] = "1"  # read by the error boundary in main()
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(name)s: %(message)s",
        stream=sys.stderr,
    )


def _debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def report(exc: Glm51Error) -> None:
    if _debugging():
        traceback.print_exc()
    # soft_wrap: no hard breaks at 80 columns, so logs keep whole lines and the fix
    # commands in messages (pip install ..., URLs) stay copy-pasteable.
    err.print(
        f"[bold red]glm51: {exc.kind}:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
    )


def _typed_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """A typed error leaves a command as its message and exit code (also under CliRunner)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except Glm51Error as exc:
            report(exc)
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:  # what the machine refused and no adapter named: still typed
            typed = from_os_error(exc)
            report(typed)
            raise typer.Exit(typed.exit_code) from None

    return run


def _bug_reports() -> str:
    url = source_url()
    return f"Please report it at {url}/issues" if url else "Please report it to glm51's maintainers"


def _guard(group: typer.Typer, path: str = "") -> None:
    """Every command: typed errors become exit codes; glm51's command class (flags, renamed
    spellings)."""
    for command in group.registered_commands:
        command.callback = _typed_errors(command.callback)
        name = command.name or command.callback.__name__
        command.cls = command_class(f"{path}{name}")
    for sub in group.registered_groups:
        sub.cls = Group
        _guard(sub.typer_instance, f"{path}{sub.name} ")


# Each stage adds its own commands; a stage that needs torch imports it when its command runs.
for _stage in (
    serve_cli,
    preflight_cli,
    quantize_cli,
    calib_cli,
    image_cli,
    recipe_cli,
    checkpoint_cli,
    publish_cli,
    release_cli,
    smoke_cli,
    bench_cli,
    router_cli,
    deploy_cli,
    fidelity_cli,
):
    _stage.register(app)
_guard(app)


def main() -> None:
    # Standalone mode: typer handles usage errors (exit 2) and Exit codes itself.
    try:
        app()
    except Glm51Error as exc:  # raised outside a command (a callback)
        report(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("glm51: interrupted", highlight=False)
        sys.exit(130)
    except Exception as exc:  # a bug: one line, the traceback only on request
        if _debugging():
            traceback.print_exc()
        else:
            err.print(
                f"[bold red]glm51: internal error:[/] {escape(type(exc).__name__)}: "
                f"{escape(str(exc))}\nThis is a bug in glm51. {escape(_bug_reports())} "
                "with the output of the same command run with --debug.",
                highlight=False,
                soft_wrap=True,
            )
        sys.exit(1)
