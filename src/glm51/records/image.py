"""What `glm51 image build` produced."""

from __future__ import annotations

from typing import Literal

from glm51.records.base import Record


class ImageRecord(Record):
    kind: Literal["image"] = "image"
    image: str  # the recipe's image name, e.g. "cu130"
    tags: tuple[str, ...]
    digest: str | None = None  # registry digest once pushed (sha256:...), else None
    image_id: str | None = None  # local image id
    sglang_build: str
    stack: str
    base_image: str
    lock: str  # the lock file the build installed
    version: str
    git_sha: str | None = None
    pushed: bool = False
    build_seconds: float | None = None
    dry_run: bool = False
