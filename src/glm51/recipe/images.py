"""Recipe models for the serving images (`[images.NAME]`, e.g. `[images.cu130]`)."""

from __future__ import annotations

from pydantic import Field, field_validator

from glm51.recipe.base import Strict

TAG_FIELDS = ("{version}", "{short_sha}")


class ImageRecipe(Strict):
    """One serving image: its Dockerfile, locks and pins, tags, and what it advertises."""

    dockerfile: str = Field(description="path from the repository root, e.g. 'Dockerfile.cu130'")
    lock_dir: str = Field(
        description="folder of the lock inputs `<stack>.in` and the hash-locked "
        "`<stack>-py<XY>.lock` files (stack: an sglang build name, 'slim' or 'build')"
    )
    pins: str = Field(description="checked-in base image pins (TOML), refreshed by update_pins")
    python_versions: tuple[str, ...] = Field(
        description="Pythons the locks are compiled for (one per supported base image)"
    )
    default_sglang_build: str = Field(description="the sglang build baked in unless asked")
    tags: tuple[str, ...] = Field(
        min_length=1,
        description="tag templates; fields {version} (docker-safe) and {short_sha}",
    )
    slim_tags: tuple[str, ...] = Field(
        min_length=1, description="tag templates of the slim CI target (no SGLang stack)"
    )
    profiles: dict[str, tuple[str, ...]] = Field(
        description="sglang build -> the serve profiles an image with that build advertises "
        "(each is checked against the installed SGLang at build time)"
    )

    @field_validator("tags", "slim_tags")
    @classmethod
    def _templates(cls, templates: tuple[str, ...]) -> tuple[str, ...]:
        for template in templates:
            name = template.split(":", 1)[0]
            if ":" not in template or not name:
                raise ValueError(f"{template!r} is not 'name:tag'")
            try:
                template.format(version="v", short_sha="s")
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(
                    f"{template!r}: only the fields {', '.join(TAG_FIELDS)} are known"
                ) from exc
        return templates

    @field_validator("python_versions")
    @classmethod
    def _pythons(cls, versions: tuple[str, ...]) -> tuple[str, ...]:
        for v in versions:
            major, _, minor = v.partition(".")
            if not (major == "3" and minor.isdigit()):
                raise ValueError(f"{v!r} is not a Python version like '3.11'")
        return versions
