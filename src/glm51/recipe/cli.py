"""`glm51 recipe`: show, validate and document the recipe."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from glm51.options import RecipeOption


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Inspect the release recipe (release/glm51.toml).", no_args_is_help=True
    )
    app.add_typer(group, name="recipe")

    @group.command("validate")
    def validate(recipe: RecipeOption = None) -> None:
        """Parse the recipe and check every cross-reference; exit 3 when it is invalid."""
        from glm51.recipe import default_recipe_path, load_recipe

        loaded = load_recipe(recipe)
        typer.echo(
            f"{recipe or default_recipe_path()}: ok "
            f"({len(loaded.profiles)} profiles, {len(loaded.sglang_builds)} sglang builds)"
        )

    @group.command("show")
    def show(recipe: RecipeOption = None) -> None:
        """Print the resolved recipe as JSON (defaults filled in)."""
        from glm51.recipe import load_recipe

        typer.echo(load_recipe(recipe).model_dump_json(indent=2))

    @group.command("schema")
    def schema(
        output: Annotated[
            Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
        ] = None,
    ) -> None:
        """Generate the recipe reference (docs/recipe.md) from the typed models."""
        from glm51.recipe.docs import render_schema_markdown

        text = render_schema_markdown()
        if output:
            output.write_text(text)
        else:
            typer.echo(text, nl=False)
