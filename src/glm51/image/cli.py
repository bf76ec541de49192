"""`glm51 image`: build the serving image, print its tags, refresh its pins; `selfcheck` runs
inside it at build time."""

from __future__ import annotations

import os
import shlex
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated, Literal

import typer

from glm51 import env
from glm51.errors import PreflightError
from glm51.options import RecipeOption, dry_run_option, out_folder_option
from glm51.outputs import claim_output_folder

RepoOption = Annotated[
    Path,
    typer.Option(
        "--checkout",
        help="The glm51 checkout (the build context).",
        file_okay=False,
        exists=True,
    ),
]
ImageOption = Annotated[
    str | None, typer.Option("--image", help="A recipe image (default: the first, cu130).")
]


def build_command(
    recipe: RecipeOption = None,
    repo: RepoOption = Path("."),
    image: ImageOption = None,
    base_image: Annotated[
        str | None,
        typer.Option(help="Base image (default: the digest pinned in images/cu130/pins.toml)."),
    ] = None,
    local_base: Annotated[
        bool,
        typer.Option(
            "--local-base",
            help="Build on the local Debian base of ci/base-image.sh (no registry needed).",
        ),
    ] = False,
    python: Annotated[
        str | None, typer.Option(help="The base's Python (default: from the pins file).")
    ] = None,
    stack: Annotated[
        Literal["full", "slim"], typer.Option(help="full: the product; slim: CI target.")
    ] = "full",
    sglang_build: Annotated[
        str | None, typer.Option(help="A recipe sglang build (default: the image's).")
    ] = None,
    ca_bundle: Annotated[
        Path | None,
        typer.Option(
            envvar=env.CA_BUNDLE,
            help="CA bundle for a TLS-intercepting proxy (a BuildKit secret, never a layer).",
            dir_okay=False,
            exists=True,
        ),
    ] = None,
    push: Annotated[bool, typer.Option("--push", help="Push instead of loading locally.")] = False,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Build without the layer cache.")
    ] = False,
    out: Annotated[Path, out_folder_option("Where image.json and the buildx metadata go.")] = Path(
        "out/image"
    ),
    dry_run: Annotated[bool, dry_run_option("Print the command, build nothing.")] = False,
) -> None:
    """Build the image with `docker buildx build` and record it in OUT/image.json."""
    from glm51.image import build, locks, runner
    from glm51.recipe.load import load_recipe

    loaded = load_recipe(recipe)
    repo = repo.resolve()
    # A dry run checks --out as a build would, and makes nothing.
    claim_output_folder(out, option="--out", command="image build", create=not dry_run)
    if local_base:
        base_image = locks.base_pins(repo, loaded.image(image)[1])["local"]["ref"]
    spec = build.plan(
        loaded,
        repo,
        version=runner.package_version(repo),
        sha=runner.git_sha(repo),
        created=runner.created_now(),
        source=runner.git_source(repo),
        metadata_file=out.resolve() / "buildx-metadata.json",
        base_image=base_image,
        python=python,
        stack=stack,
        sglang_build=sglang_build,
        ca_bundle=ca_bundle.resolve() if ca_bundle else None,
        push=push,
        no_cache=no_cache,
        image_name=image,
    )
    if dry_run:
        typer.echo(shlex.join(build.buildx_argv(spec)))
        return
    result = runner.build(spec, record=out / "image.json", local_base=local_base)
    typer.echo(
        f"built {', '.join(result.tags)} in {result.build_seconds}s "
        f"(digest {result.digest}); recorded in {out / 'image.json'}"
    )


def tags_command(
    version: Annotated[
        str, typer.Option(help="The release version, X.Y.Z (as `glm51 --version` prints it).")
    ],
    sha: Annotated[str, typer.Option(help="git commit")],
    slim: Annotated[bool, typer.Option("--slim", help="The slim CI target's tags.")] = False,
    image: ImageOption = None,
    recipe: RecipeOption = None,
) -> None:
    """Print the tags an image of this version and commit gets."""
    from glm51.image.tags import image_tags
    from glm51.recipe.load import load_recipe

    for tag in image_tags(load_recipe(recipe).image(image)[1], version=version, sha=sha, slim=slim):
        typer.echo(tag)


def update_pins_command(
    recipe: RecipeOption = None, repo: RepoOption = Path("."), image: ImageOption = None
) -> None:
    """Re-resolve the image locks (PyPI, with uv), and where reachable the fork's git lock
    (GitHub) and the base image digest (a registry); says what it could not refresh."""
    from glm51.image import pins
    from glm51.recipe.load import load_recipe

    report = pins.update_pins(load_recipe(recipe), repo.resolve(), image_name=image)
    for what in report.refreshed:
        typer.echo(f"refreshed: {what}")
    for what in report.not_refreshed:
        typer.echo(f"NOT refreshed: {what}", err=True)


def selfcheck_command(recipe: RecipeOption = None) -> None:
    """Build-time check (Dockerfile.cu130): advertised profiles parse with installed SGLang."""
    from glm51.image.selfcheck import run_selfcheck, sglang_parser
    from glm51.recipe.load import load_recipe

    build_name = os.environ.get("GLM51_SGLANG_BUILD", "upstream")
    if find_spec("sglang") is None:
        if os.environ.get("GLM51_STACK") == "slim":
            typer.echo("selfcheck: slim stack has no SGLang; profile checks skipped")
            return
        raise PreflightError("SGLang is not installed, so no profile can be served")
    profiles, problems = run_selfcheck(load_recipe(recipe), build_name, sglang_parser)
    for name, why in problems.items():
        typer.echo(f"selfcheck: profile {name}: {why}", err=True)
    if problems:
        raise PreflightError(
            f"the installed SGLang ({build_name}) cannot serve: {', '.join(problems)}"
        )
    typer.echo(f"selfcheck: sglang build {build_name!r} serves {', '.join(profiles) or 'nothing'}")


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Build the serving image (Dockerfile.cu130).", no_args_is_help=True)
    group.command("build")(build_command)
    group.command("tags")(tags_command)
    group.command("update-pins")(update_pins_command)
    group.command("selfcheck", hidden=True)(selfcheck_command)
    app.add_typer(group, name="image")
