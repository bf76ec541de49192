"""`glm51 doctor`: the serve preflight on its own, as a table or JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from glm51.errors import InputError, PreflightError
from glm51.options import (
    ModelIdOption,
    ModelOption,
    ProfileOption,
    RecipeOption,
    RevisionOption,
)

if TYPE_CHECKING:
    from glm51.preflight.findings import Report

GROUPS = {
    "gpu": "GPUs (nvidia-smi)",
    "checkpoint": "checkpoint",
    "flags": "flags",
    "sglang": "installed sglang",
}
STYLE = {"error": "bold red", "warning": "yellow", "ok": "green"}


def doctor_command(
    extra: Annotated[
        list[str] | None,
        typer.Argument(
            help="Pass-through sglang flags to check (after --).",
            show_default=False,
            metavar="SGLANG_FLAGS",
        ),
    ] = None,
    model: ModelOption = None,
    model_id: ModelIdOption = None,
    revision: RevisionOption = None,
    profile: ProfileOption = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            metavar="GROUP",
            help="Report only these check groups (repeatable): gpu, checkpoint, flags, "
            "sglang. E.g. `--only checkpoint` verifies a checkpoint on a machine "
            "without GPUs.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the findings as JSON instead of a table.")
    ] = False,
    recipe: RecipeOption = None,
) -> None:
    """Check the GPUs, the checkpoint, the flags and the installed SGLang for a profile.

    The same checks `glm51 serve` runs before it starts SGLang; nothing is started.
    """
    from glm51.checkpoint.hub_cache import resolve_model
    from glm51.preflight.run import check
    from glm51.recipe.load import load_recipe

    unknown = sorted(set(only or ()) - set(GROUPS))
    if unknown:
        raise InputError(f"--only {', '.join(unknown)}: expected one of {list(GROUPS)}")
    loaded = load_recipe(recipe)
    name, prof = loaded.profile(profile)
    model_path: Path | None
    try:
        model_path = resolve_model(model, model_id, revision, loaded.model.published)
        model_error = None
    except InputError as exc:
        if model is not None or model_id is not None:
            raise  # the checkpoint the user named is wrong: bad input (exit 3)
        # No checkpoint named and none cached: still check the GPUs and SGLang.
        model_path, model_error = None, str(exc)
    report = check(
        loaded, name, model_path=model_path, passthrough=tuple(extra or ()), model_error=model_error
    )
    if only:
        report = report.only(only)
    if as_json:
        context = {
            "profile": name,
            "validated": prof.validated,
            "model_path": str(model_path) if model_path else None,
        }
        typer.echo(json.dumps(report.to_json(**context), indent=2))
    else:
        print_table(report, name, model_path, only)
    if report.errors:
        raise PreflightError(f"{len(report.errors)} error(s) found (listed above)")


def print_table(
    report: Report, profile: str, model_path: Path | None, groups: list[str] | None = None
) -> None:
    # Not a terminal (CI logs, pipes): wide enough that paths are not broken mid-word.
    console = Console(width=None if Console().is_terminal else 200)
    table = Table(
        title=f"glm51 doctor: profile {profile}, {model_path or 'no checkpoint'}", show_lines=True
    )
    for column in ("", "check", "finding", "fix"):
        table.add_column(column, overflow="fold")
    for finding in report.findings:
        sev = finding.severity.value
        table.add_row(f"[{STYLE[sev]}]{sev}[/]", finding.check, finding.message, finding.fix)
    for group, label in GROUPS.items():
        if groups and group not in groups:
            continue
        if not any(f.check.startswith(group + ".") for f in report.findings):
            table.add_row(f"[{STYLE['ok']}]ok[/]", group, f"{label}: no problems found", "")
    console.print(table)
    errors, warnings = len(report.errors), len(report.warnings)
    if groups:
        checked = ", ".join(groups)
        verdict = f"[bold red]{checked}: failed[/]" if errors else f"[green]{checked}: ok[/]"
    else:
        verdict = "[bold red]NOT ready to serve[/]" if errors else "[green]ready to serve[/]"
    console.print(f"{verdict}: {errors} error(s), {warnings} warning(s)")


def register(app: typer.Typer) -> None:
    app.command(
        "doctor",
        context_settings={"allow_interspersed_args": False},
        epilog="Exit codes: 0 no errors (warnings allowed), 3 bad input, 4 preflight errors. "
        "Flags after `--` are checked as `glm51 serve` would pass them to sglang.",
    )(doctor_command)
