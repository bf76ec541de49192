"""Where a release runs and where it pushes: the GPU runners' labels and the registry."""

from __future__ import annotations

from pydantic import Field

from glm51.recipe.base import Strict


class ReleaseRecipe(Strict):
    runner_labels: tuple[str, ...] = Field(
        min_length=1,
        description="labels of the self-hosted runners with the profile's GPUs "
        "(.github/workflows/release.yml's GPU job runs on exactly these)",
    )
    registry: str = Field(
        pattern=r"^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)*$",
        description="where release images are pushed, e.g. ghcr.io/OWNER",
    )
    moving_tags: tuple[str, ...] = Field(
        ("latest-cu130",),
        description="tags moved to every new release (the immutable vX.Y.Z-cu130 tag never moves)",
    )
