"""`glm51 release`: the release as ordered, resumable steps into a run directory."""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from glm51 import __version__
from glm51.errors import InputError
from glm51.options import RecipeOption
from glm51.outputs import claim_output_folder
from glm51.publish.plan import check_names
from glm51.recipe import load_recipe
from glm51.records import ToolVersions
from glm51.records.release import RunManifest
from glm51.release import rehearsal
from glm51.release.runner import Context, load_manifest, run_steps

err = Console(stderr=True, soft_wrap=True)


def recipe_digest(recipe) -> str:  # type: ignore[no-untyped-def]
    return hashlib.sha256(recipe.model_dump_json().encode()).hexdigest()


def release_command(
    version: Annotated[str, typer.Option(help="The release version, vX.Y.Z.")] = "v0.0.0",
    rehearsal_mode: Annotated[
        bool,
        typer.Option(
            "--rehearsal",
            help="The whole chain on the CPU with the tiny model; the Hub is a local folder.",
        ),
    ] = False,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            help="Records and artifacts; a re-run resumes here (default: out/release/VERSION)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Rehearsal: seed of the tiny model.")] = 0,
    samples: Annotated[int, typer.Option(min=1, help="Rehearsal: calibration conversations.")] = 16,
    recipe: RecipeOption = None,
) -> None:
    """Run the release steps in order; skip those whose records are still valid.

    Exit codes: 0 released, 3 bad input, 4 preflight, 5 a gate failed (nothing published or
    tagged), 6 infrastructure.
    """
    if not rehearsal_mode:
        raise InputError(
            "only --rehearsal runs here; a real release runs on the Blackwell runners "
            "(.github/workflows/release.yml, docs/release.md)"
        )
    loaded = load_recipe(recipe)
    check_names(loaded.model.published, version)
    folder = run_dir or Path("out") / "release" / ("rehearsal-" + version)
    claim_output_folder(folder, option="--run-dir", command="release")
    manifest = load_manifest(folder) or RunManifest(
        glm51_version=__version__,
        version=version,
        rehearsal=True,
        inputs={"recipe": str(loaded.source), "recipe_sha256": recipe_digest(loaded)},
        tools=ToolVersions(python=platform.python_version()),
    )
    if manifest.version != version or not manifest.rehearsal:
        raise InputError(f"{folder}: holds the run of {manifest.version}; use another --run-dir")
    context = Context(
        folder,
        {"version": version, "seed": seed, "samples": samples},
        log=lambda m: err.print(escape(m), highlight=False),
    )
    run_steps(rehearsal.steps(loaded), context, manifest, log=context.log)
    for what, path in rehearsal.where(folder).items():
        typer.echo(f"{what}: {path}")


def register(app: typer.Typer) -> None:
    app.command("release")(release_command)
