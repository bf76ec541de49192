"""Options shared by several commands."""

from pathlib import Path
from typing import Annotated

import typer

from glm51 import env

# The longest wait any option takes (a week): finite, so `inf` is refused by name, not met later
# as an overflow in a library's clock.
SECONDS_MAX = 7 * 86400.0

RecipeOption = Annotated[
    Path | None,
    typer.Option(
        "--recipe",
        envvar=env.RECIPE,
        help="Recipe file (default: release/glm51.toml of the checkout, or the packaged copy).",
        dir_okay=False,
    ),
]

# Which checkpoint and profile: `glm51 serve` and `glm51 doctor` take the same ones.
ModelOption = Annotated[
    Path | None, typer.Option(help="A local checkpoint folder.", file_okay=False)
]
ModelIdOption = Annotated[
    str | None,
    typer.Option(
        help="Hub repo, resolved from the local Hub cache (default: the recipe's published repo)."
    ),
]
RevisionOption = Annotated[
    str | None, typer.Option(help="Ref or commit of --model-id (default: main).")
]
ProfileOption = Annotated[
    str | None,
    typer.Option(
        envvar=env.PROFILE,
        help="Serve profile (default: the recipe's serve.default_profile; in the image, "
        "the first profile its SGLang build advertises).",
    ),
]
