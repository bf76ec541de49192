"""Image tags from the recipe, the version and the git commit (pure)."""

from __future__ import annotations

import re

from glm51.errors import InputError
from glm51.recipe.images import ImageRecipe

_TAG_OK = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def docker_version(version: str) -> str:
    """A PEP 440 version as a Docker tag: '+' (local part) is not allowed there."""
    return version.replace("+", "-")


def short_sha(sha: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{7,40}", sha):
        raise InputError(f"git sha {sha!r} is not hex (7-40 characters)")
    return sha[:12]


def image_tags(image: ImageRecipe, *, version: str, sha: str, slim: bool = False) -> list[str]:
    """The recipe's tag templates filled in; every tag checked against Docker's grammar."""
    fields = {"version": docker_version(version), "short_sha": short_sha(sha)}
    tags = []
    for template in image.slim_tags if slim else image.tags:
        tag = template.format(**fields)
        name, _, ref = tag.rpartition(":")
        if not name or not _TAG_OK.match(ref):
            raise InputError(f"tag {tag!r} (from {template!r}) is not a valid Docker tag")
        tags.append(tag)
    return tags
