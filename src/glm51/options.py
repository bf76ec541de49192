"""Options shared by several commands."""

from pathlib import Path
from typing import Annotated

import typer

RecipeOption = Annotated[
    Path | None,
    typer.Option(
        "--recipe",
        envvar="GLM51_RECIPE",
        help="Recipe file (default: release/glm51.toml of the checkout, or the packaged copy).",
        dir_okay=False,
    ),
]
