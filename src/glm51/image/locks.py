"""The image's checked-in locks and pins: where they are, what they pin, their digest."""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path

from glm51.errors import InputError
from glm51.recipe.images import ImageRecipe

UNRESOLVED = "# glm51: UNRESOLVED"


def py_tag(python: str) -> str:
    return "py" + python.replace(".", "")


def lock_path(repo: Path, image: ImageRecipe, stack: str, python: str) -> Path:
    """`<lock_dir>/<stack>-py<XY>.lock`; stack is an sglang build name, 'slim' or 'build'."""
    return repo / image.lock_dir / f"{stack}-{py_tag(python)}.lock"


def lock_files(repo: Path, image: ImageRecipe) -> list[Path]:
    return sorted((repo / image.lock_dir).glob("*.lock"))


def locks_digest(paths: list[Path]) -> str:
    """One sha256 over the lock files (name and bytes, in name order): the image label."""
    h = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.name):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return "sha256:" + h.hexdigest()


def is_unresolved(lock: Path) -> bool:
    return lock.read_text(encoding="utf-8").startswith(UNRESOLVED)


def pinned_versions(lock: Path) -> dict[str, str]:
    """name -> version for every `name==version` line of a lock."""
    pins = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", line)
        if m:
            pins[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return pins


def base_pins(repo: Path, image: ImageRecipe) -> dict:
    path = repo / image.pins
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: cannot read the base image pins: {exc}") from exc
