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

# The API key's file (serve, router, smoke, bench). Without it, the variable the recipe's
# deploy.api_key_env names (GLM51_API_KEY) holds the key, if set. Never the key itself: argv
# is visible to every user of the machine.
ApiKeyFileOption = Annotated[
    Path | None,
    typer.Option(
        "--api-key-file",
        help="File holding the API key (default: $GLM51_API_KEY, as the recipe's "
        "deploy.api_key_env names it; unset: no key).",
        dir_okay=True,  # a folder is refused by name when read, with exit 3
    ),
]
