"""`glm51 smoke`: run the smoke suite against --endpoint, or a server it --launches."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from glm51.errors import InputError
from glm51.options import (
    SECONDS_MAX,
    ApiKeyFileOption,
    EndpointOption,
    ProfileOption,
    RecipeOption,
    ServedNameOption,
    out_folder_option,
)

if TYPE_CHECKING:
    from glm51.records import SmokeCheck, SmokeRecord

out = Console()
err = Console(stderr=True)


class Tier(StrEnum):
    """The smoke suite's tiers (typer takes a list of an Enum, not of a Literal)."""

    protocol = "protocol"  # any OpenAI-compatible server
    glm = "glm"  # the model itself


STATUS = {
    "passed": "[green]passed[/]",
    "failed": "[bold red]FAILED[/]",
    "skipped": "[yellow]skipped[/]",
}


def _ints(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        sizes = tuple(int(x) for x in text.replace("_", "").split(","))
    except ValueError:
        raise InputError(
            f"--needle-tokens: expected comma-separated integers, got {text!r}"
        ) from None
    return sizes  # their range is the request's to check


def smoke_command(
    serve_args: Annotated[
        list[str] | None,
        typer.Argument(
            help="With --launch: arguments for `glm51 serve` (after --).", show_default=False
        ),
    ] = None,
    endpoint: EndpointOption = None,
    launch: Annotated[
        bool,
        typer.Option(
            "--launch", help="Start `glm51 serve` here, wait for /health, stop it at the end."
        ),
    ] = False,
    out_dir: Annotated[
        Path,
        out_folder_option("Where smoke.json and smoke.xml (JUnit) go."),
    ] = Path("out/smoke"),
    tier: Annotated[
        list[Tier] | None,
        typer.Option(help="Run only this tier (repeatable; default: both)."),
    ] = None,
    served_name: ServedNameOption = None,
    needle_tokens: Annotated[
        str | None,
        typer.Option(help="Context sizes for the needle, comma-separated (default: the recipe's)."),
    ] = None,
    max_tokens: Annotated[
        int,
        typer.Option(min=1, help="Tokens allowed for long answers (and a cap on every answer)."),
    ] = 1024,
    gsm8k_items: Annotated[
        int | None, typer.Option(min=1, help="GSM8K items to ask (default: the recipe's).")
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=0.1, max=SECONDS_MAX, help="Seconds one request may take.")
    ] = 600.0,
    ready_timeout: Annotated[
        float,
        typer.Option(min=0.1, max=SECONDS_MAX, help="With --launch: seconds to wait for /health."),
    ] = 1800.0,
    profile: ProfileOption = None,
    api_key_file: ApiKeyFileOption = None,
    recipe: RecipeOption = None,
) -> None:
    """Smoke-test a served GLM-5.1: protocol tier (any OpenAI server), GLM tier (the model).

    Writes a table, OUT/smoke.json (a typed record) and OUT/smoke.xml (JUnit). Exit 5 when a
    check fails, 6 when the server cannot be reached or dies, 3 when it answers 401 (the API
    key is missing or wrong).
    """
    from glm51.apikey import KeySource
    from glm51.endpoint.launch import launched
    from glm51.recipe.load import load_recipe
    from glm51.smoke.stage import SmokeRequest, raise_for, run_smoke

    rec = load_recipe(recipe)
    if not launch and not endpoint:
        raise InputError("give --endpoint URL, or --launch to start `glm51 serve` here")
    if serve_args and not launch:
        raise InputError("arguments after -- are for `glm51 serve` and need --launch")
    if endpoint is None:
        _, prof = rec.profile(profile)
        host = "127.0.0.1" if prof.server.host in ("0.0.0.0", "", "::") else prof.server.host
        endpoint = f"http://{host}:{prof.server.port}"
    request = SmokeRequest(
        endpoint=endpoint,
        out_dir=out_dir,
        tiers=tuple(t.value for t in tier or Tier),
        served_name=served_name,
        needle_tokens=_ints(needle_tokens),
        max_tokens=max_tokens,
        gsm8k_items=gsm8k_items,
        timeout_s=timeout,
        api_key=KeySource(file=api_key_file, env=rec.deploy.api_key_env),
    )
    request.check()  # before a server is launched or a request sent
    args = list(serve_args or ())
    if launch and api_key_file is not None and "--api-key-file" not in args:
        args = ["--api-key-file", str(api_key_file), *args]
    if launch and profile and "--profile" not in args:
        args = ["--profile", profile, *args]
    ctx_manager = (
        launched(endpoint, args, ready_timeout=ready_timeout) if launch else nullcontext(endpoint)
    )
    say = lambda m: err.print(escape(m), highlight=False)  # noqa: E731
    with ctx_manager as url:
        record = run_smoke(replace(request, endpoint=url), rec, log=say, on_done=_progress)
    _table(record)
    raise_for(record)


def _progress(check: SmokeCheck) -> None:
    err.print(f"  {STATUS[check.status]} {check.name} [dim]({check.seconds:.1f}s)[/]")


def _table(record: SmokeRecord) -> None:
    table = Table(title=f"glm51 smoke: {record.endpoint}", show_lines=False)
    for col in ("check", "status", "value", "floor", "what it saw"):
        table.add_column(col, overflow="fold")
    for c in record.checks:
        table.add_row(
            c.name,
            STATUS[c.status],
            "" if c.value is None else f"{c.value:.4g}",
            "" if c.floor is None else f"{c.floor:.4g}",
            escape(c.message),
        )
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command(
        "smoke",
        context_settings={"allow_interspersed_args": False},
        epilog="`glm51 smoke --launch -- --model /models/GLM-5.1-NVFP4` serves, smokes, stops.",
    )(smoke_command)
