"""`glm51 verify`: integrity and layout of a checkpoint folder, before serving or publishing."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from glm51.checkpoint.names import DEEP_EXPERTS, DEEP_MAX_ERROR, DEEP_MAX_ERROR_LIMIT, MANIFEST
from glm51.options import JsonOption, RecipeOption, ReportOption
from glm51.ui import byte_progress, err, out

if TYPE_CHECKING:
    from glm51.checkpoint.verify import Report


def _present(report: Report) -> None:
    r = report
    err.print(
        f"{escape(str(r.folder))}: {r.shards} shard(s), {r.tensors} tensor(s), "
        f"{r.nvfp4_modules} NVFP4 and {r.bf16_modules} BF16 module(s); manifest {r.manifest}",
        highlight=False,
        soft_wrap=True,
    )
    if r.hashed_bytes and r.hash_seconds:
        rate = r.hashed_bytes / r.hash_seconds / 1e6
        err.print(
            f"hashed {r.hashed_bytes / 1e6:.1f} MB in {r.hash_seconds:.2f} s ({rate:.0f} MB/s)",
            highlight=False,
        )
    for d in r.deep:
        mark = "[green]ok[/]" if d.passed else "[red]FAIL[/]"
        err.print(
            f"  deep {mark} {escape(d.module)}: relative error {d.rel_error:.4f}, "
            f"max abs {d.max_abs_error:.3g}",
            highlight=False,
            soft_wrap=True,
        )
    for note in r.notes:
        err.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    for p in r.problems:
        err.print(f"[red]✗[/] {escape(f'[{p.check}] {p}')}", highlight=False, soft_wrap=True)


def verify_command(
    checkpoint: Annotated[
        Path, typer.Argument(help="The checkpoint folder.", file_okay=False, show_default=False)
    ],
    write: Annotated[
        bool,
        typer.Option(
            "--write",
            help=f"Record {MANIFEST} when every check passes (never replaces one that exists).",
        ),
    ] = False,
    source: Annotated[
        Path | None,
        typer.Option(
            "--source",
            metavar="BF16_DIR",
            file_okay=False,
            help="The BF16 checkpoint: dequantize a sample of experts and compare (needs torch).",
        ),
    ] = None,
    experts: Annotated[
        int, typer.Option("--experts", min=1, help="Experts the --source check samples.")
    ] = DEEP_EXPERTS,
    max_error: Annotated[
        float,
        typer.Option(
            min=0,
            max=DEEP_MAX_ERROR_LIMIT,
            help="Largest relative L2 error the --source check accepts.",
        ),
    ] = DEEP_MAX_ERROR,
    no_hash: Annotated[
        bool, typer.Option("--no-hash", help="Skip the manifest (structure and layout only).")
    ] = False,
    threads: Annotated[
        int | None, typer.Option(min=1, help="Files hashed at once (default: the CPU count).")
    ] = None,
    as_json: JsonOption = False,
    report: ReportOption = None,
    recipe: RecipeOption = None,
) -> None:
    """Check a checkpoint's integrity (glm51-manifest.json) and its NVFP4 layout against the recipe.

    Nothing is modified, except the manifest that --write adds. Exit codes: 0 passed, 3 a
    check failed (each failure names the shard or tensor and what was expected).
    """
    from glm51.checkpoint import manifest as mf
    from glm51.checkpoint.verify.stage import VerifyRequest, raise_for, run_verify
    from glm51.recipe.load import load_recipe

    request = VerifyRequest(
        checkpoint=checkpoint,
        write=write,
        hash_contents=not no_hash,
        source=source,
        experts=experts,
        max_error=max_error,
        threads=threads,
        report=report,
    )
    loaded = load_recipe(recipe)
    total = (
        sum((checkpoint / n).stat().st_size for n in mf.recorded_files(checkpoint))
        if checkpoint.is_dir()
        else 0
    )
    with byte_progress("hashing", total=total, show=not as_json and total > 0) as progress:
        result = run_verify(request, loaded, progress=progress)
    if as_json:
        out.print_json(result.to_json())
    else:
        _present(result)
    raise_for(result)
    if not as_json:
        err.print(f"[green]verified[/] {escape(str(checkpoint))}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("verify")(verify_command)
