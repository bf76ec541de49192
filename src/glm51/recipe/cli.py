"""`glm51 recipe`: show, validate and document the recipe."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from glm51.options import RecipeOption, output_file_option
from glm51.outputs import check_output_file, write_text


def validate_command(recipe: RecipeOption = None) -> None:
    """Parse the recipe and check every cross-reference; exit 3 when it is invalid."""
    from glm51.recipe.load import load_recipe

    loaded = load_recipe(recipe)
    typer.echo(
        f"{loaded.source}: ok "
        f"({len(loaded.profiles)} profiles, {len(loaded.sglang_builds)} sglang builds)"
    )


def show_command(recipe: RecipeOption = None) -> None:
    """Print the resolved recipe as JSON (defaults filled in)."""
    from glm51.recipe.load import load_recipe

    typer.echo(load_recipe(recipe).model_dump_json(indent=2))


def schema_command(
    output: Annotated[Path | None, output_file_option("Write here instead of stdout.")] = None,
) -> None:
    """Generate the recipe reference (docs/recipe.md) from the typed models."""
    from glm51.recipe.docs import render_schema_markdown

    text = render_schema_markdown()
    if output:
        # Replaced only when it is this reference (an older rendering), not any file.
        first = text.split("\n", 1)[0]
        ours = output.is_file() and output.read_text(errors="replace").split("\n", 1)[0] == first
        check_output_file(output, option="--output", replace=ours)
        write_text(output, text)
    else:
        typer.echo(text, nl=False)


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Inspect the release recipe (release/glm51.toml).", no_args_is_help=True
    )
    group.command("validate")(validate_command)
    group.command("show")(show_command)
    group.command("schema")(schema_command)
    app.add_typer(group, name="recipe")
