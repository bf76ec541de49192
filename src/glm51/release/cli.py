"""`glm51 release`: the release as ordered, resumable steps into a run directory."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Annotated

import typer

from glm51 import __version__
from glm51.errors import InputError
from glm51.options import RecipeOption
from glm51.outputs import claim_output_folder
from glm51.publish.plan import check_names
from glm51.release.names import STEPS
from glm51.release.request import ReleaseRequest
from glm51.ui import say


def release_command(
    version: Annotated[str, typer.Option(help="The release version, vX.Y.Z.")] = "v0.0.0",
    rehearsal_mode: Annotated[
        bool,
        typer.Option(
            "--rehearsal",
            help="The whole chain on the CPU with the tiny model; the Hub is a local folder.",
        ),
    ] = False,
    steps: Annotated[
        str | None,
        typer.Option(
            help="Run only these steps (comma-separated; the earlier ones must be done in "
            f"--run-dir): {', '.join(STEPS)}. Default: all."
        ),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            envvar="GLM51_CHECKPOINT",
            file_okay=False,
            help="The NVFP4 checkpoint to verify, gate and publish (not with --rehearsal).",
        ),
    ] = None,
    source: Annotated[
        Path | None,
        typer.Option(
            envvar="GLM51_SOURCE",
            file_okay=False,
            help="The BF16 checkpoint the fidelity step measures --checkpoint against (not "
            "with --rehearsal).",
        ),
    ] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            help="Records and artifacts; a re-run resumes here "
            "(default: out/release/VERSION, or out/release/rehearsal-VERSION)."
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(min=0, max=2**32 - 1, help="Rehearsal: seed of the tiny model (default: 0)."),
    ] = None,
    samples: Annotated[
        int | None,
        typer.Option(min=1, help="Rehearsal: calibration conversations (default: 16)."),
    ] = None,
    recipe: RecipeOption = None,
) -> None:
    """Run the release steps in order; skip those whose records are still valid.

    Exit codes: 0 released, 3 bad input, 4 preflight, 5 a gate failed (nothing published or
    tagged), 6 infrastructure.
    """
    from glm51.recipe.load import load_recipe
    from glm51.records import ToolVersions
    from glm51.records.release import RunManifest
    from glm51.release import production
    from glm51.release.runner import Context, load_manifest, recipe_digest, run_steps

    loaded = load_recipe(recipe)
    check_names(loaded.model.published, version)
    only = tuple(s.strip() for s in steps.split(",") if s.strip()) if steps is not None else None
    if not rehearsal_mode:
        for option, value in (("--seed", seed), ("--samples", samples)):
            if value is not None:
                raise InputError(f"{option}: only for --rehearsal (a release uses --checkpoint)")
    request = ReleaseRequest(
        version=version,
        rehearsal=rehearsal_mode,
        checkpoint=checkpoint,
        source=source,
        seed=0 if seed is None else seed,
        samples=16 if samples is None else samples,
        repo=Path.cwd(),
        steps=only,
    )
    request.check()  # before the run folder is touched
    name = ("rehearsal-" if rehearsal_mode else "") + version
    folder = run_dir or Path("out") / "release" / name
    claim_output_folder(
        folder,
        option="--run-dir",
        command="release",
        inputs={"--checkpoint": checkpoint, "--source": source},
    )
    manifest = load_manifest(folder) or RunManifest(
        glm51_version=__version__,
        version=version,
        rehearsal=rehearsal_mode,
        inputs={"recipe": str(loaded.source), "recipe_sha256": recipe_digest(loaded)},
        tools=ToolVersions(python=platform.python_version()),
    )
    if (manifest.version, manifest.rehearsal) != (version, rehearsal_mode):
        kind = "rehearsal" if manifest.rehearsal else "release"
        raise InputError(f"{folder}: holds the {kind} of {manifest.version}; use another --run-dir")
    recorded = manifest.inputs.get("recipe_sha256")
    if not rehearsal_mode and recorded not in (None, recipe_digest(loaded)):
        raise InputError(
            f"{folder}: this release began with another recipe (sha256 {recorded}); a release "
            "runs on one recipe: use another --run-dir, or the recipe it began with"
        )
    context = Context(folder, request, log=say)
    if rehearsal_mode:
        from glm51.release import rehearsal  # numpy, torch, transformers, ModelOpt

        chain = rehearsal.steps(loaded)
    else:
        chain = production.steps(loaded)
    run_steps(chain, context, manifest, only=request.steps, log=context.log)
    if rehearsal_mode:
        for what, path in rehearsal.where(folder).items():
            typer.echo(f"{what}: {path}")
    else:
        typer.echo(f"run: {folder / 'run.json'}")


def register(app: typer.Typer) -> None:
    app.command("release")(release_command)
