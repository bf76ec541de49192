"""`glm51 smoke`: run the smoke suite against --endpoint, or a server it --launches."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from glm51.errors import GateFailed, InfraError, InputError
from glm51.options import ProfileOption, RecipeOption
from glm51.outputs import claim_output_folder, write_text

if TYPE_CHECKING:
    from glm51.records import SmokeCheck, SmokeRecord

out = Console()
err = Console(stderr=True)
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
    if not sizes or min(sizes) < 1:
        raise InputError(f"--needle-tokens {text!r}: expected sizes of at least 1 token")
    return sizes


def smoke_command(
    serve_args: Annotated[
        list[str] | None,
        typer.Argument(
            help="With --launch: arguments for `glm51 serve` (after --).", show_default=False
        ),
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option(help="Base URL of the server, e.g. http://127.0.0.1:30000.")
    ] = None,
    launch: Annotated[
        bool,
        typer.Option(
            "--launch", help="Start `glm51 serve` here, wait for /health, stop it at the end."
        ),
    ] = False,
    out_dir: Annotated[
        Path,
        typer.Option("--out", help="Where smoke.json and smoke.xml (JUnit) go.", file_okay=False),
    ] = Path("out/smoke"),
    tier: Annotated[
        list[str] | None,
        typer.Option(help="Run only this tier: protocol or glm (repeatable; default: both)."),
    ] = None,
    served_name: Annotated[
        str | None, typer.Option(help="Model name to ask for (default: the recipe's served_name).")
    ] = None,
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
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds one request may take.")] = 600.0,
    ready_timeout: Annotated[
        float, typer.Option(min=0.1, help="With --launch: seconds to wait for /health.")
    ] = 1800.0,
    profile: ProfileOption = None,
    recipe: RecipeOption = None,
) -> None:
    """Smoke-test a served GLM-5.1: protocol tier (any OpenAI server), GLM tier (the model).

    Writes a table, OUT/smoke.json (a typed record) and OUT/smoke.xml (JUnit). Exit 5 when a
    check fails, 6 when the server cannot be reached or dies.
    """
    from glm51.endpoint.client import Endpoint, base_url, sync_client
    from glm51.endpoint.launch import launched
    from glm51.recipe.load import load_recipe
    from glm51.smoke.checks import Context, all_checks
    from glm51.smoke.run import run_checks

    rec = load_recipe(recipe)
    tiers = tuple(tier or ("protocol", "glm"))
    bad = set(tiers) - {"protocol", "glm"}
    if bad:
        raise InputError(f"--tier: unknown {sorted(bad)}; expected protocol or glm")
    if not launch and not endpoint:
        raise InputError("give --endpoint URL, or --launch to start `glm51 serve` here")
    if serve_args and not launch:
        raise InputError("arguments after -- are for `glm51 serve` and need --launch")
    needles = _ints(needle_tokens) or rec.smoke.needle_tokens
    if endpoint is not None:
        base_url(endpoint)  # bad input (exit 3), not a server that failed
    claim_output_folder(
        out_dir, option="--out", command="smoke", create=False
    )  # before any request
    if endpoint is None:
        _, prof = rec.profile(profile)
        host = "127.0.0.1" if prof.server.host in ("0.0.0.0", "", "::") else prof.server.host
        endpoint = f"http://{host}:{prof.server.port}"
    args = list(serve_args or ())
    if launch and profile and "--profile" not in args:
        args = ["--profile", profile, *args]
    ctx_manager = (
        launched(endpoint, args, ready_timeout=ready_timeout)
        if launch
        else nullcontext(base_url(endpoint))
    )
    with ctx_manager as url, sync_client(timeout) as http:
        ctx = Context(
            endpoint=Endpoint(url, served_name or rec.model.served_name, http),
            served_name=served_name or rec.model.served_name,
            floors=rec.smoke,
            needle_tokens=needles,
            max_tokens=max_tokens,
            gsm8k_items=gsm8k_items,
        )
        err.print(f"glm51 smoke: {url} ({ctx.served_name}), tiers {', '.join(tiers)}")
        record = run_checks(ctx, all_checks(ctx.needle_tokens), tiers=tiers, on_done=_progress)
    _report(record, out_dir)


def _progress(check: SmokeCheck) -> None:
    err.print(f"  {STATUS[check.status]} {check.name} [dim]({check.seconds:.1f}s)[/]")


def _report(record: SmokeRecord, out_dir: Path) -> None:
    from glm51.records import write_record
    from glm51.smoke.run import junit_xml

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
    claim_output_folder(out_dir, option="--out", command="smoke")
    write_record(record, out_dir / "smoke.json")
    write_text(out_dir / "smoke.xml", junit_xml(record))
    err.print(f"glm51 smoke: wrote {out_dir / 'smoke.json'} and {out_dir / 'smoke.xml'}")
    failed = [c.name for c in record.checks if c.status == "failed"]
    skipped = [c for c in record.checks if c.status == "skipped"]
    if skipped and skipped[0].message.startswith("not run: the server went away"):
        raise InfraError(
            f"{skipped[0].message.removeprefix('not run: ')}; {len(failed)} check(s) failed: "
            f"{', '.join(failed)}"
        )
    if failed:
        raise GateFailed(f"{len(failed)} smoke check(s) failed: {', '.join(failed)}")


def register(app: typer.Typer) -> None:
    app.command(
        "smoke",
        context_settings={"allow_interspersed_args": False},
        epilog="`glm51 smoke --launch -- --model /models/GLM-5.1-NVFP4` serves, smokes, stops.",
    )(smoke_command)
