"""What `glm51 image build` produced."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from glm51.records.base import Record


class ImageRecord(Record):
    kind: Literal["image"] = "image"
    image: str  # the recipe's image name, e.g. "cu130"
    tags: tuple[str, ...]
    digest: str | None = None  # the image digest buildx reports (the registry's once pushed)
    config_digest: str | None = None
    pushed: bool = False
    build_seconds: float
    version: str
    sglang_build: str
    stack: str
    base_image: str
    lock: str = ""  # the lock file the build installed, relative to the repository
    labels: dict[str, str] = Field(default_factory=dict)
    buildx_metadata: dict[str, Any] = Field(default_factory=dict)

    def by_digest(self) -> str | None:
        """The pushed image by digest (`registry/name@sha256:...`); None until pushed."""
        if not (self.pushed and self.digest and self.tags):
            return None
        return f"{self.tags[0].rsplit(':', 1)[0]}@{self.digest}"
