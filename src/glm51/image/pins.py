"""Refresh the checked-in pins: the image locks (PyPI), the fork's git lock (GitHub) and the
base image digest (a registry). Each refresh that cannot run says so; nothing is guessed.

Everything is read through the recipe's image section; `glm51 image update-pins` (and
`nox -s update_pins`, which calls it) is the only writer of these files.
"""

from __future__ import annotations

import json
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from glm51 import proc
from glm51.errors import Glm51Error, InputError
from glm51.image import locks
from glm51.outputs import write_text
from glm51.recipe.images import ImageRecipe
from glm51.recipe.schema import Recipe

PLATFORM = "x86_64-manylinux_2_36"  # glibc of bookworm (2.36) <= Ubuntu 24.04 (2.39)
INDEX_URL = "https://pypi.org/simple"
GITHUB = "https://github.com"


@dataclass
class PinsReport:
    refreshed: list[str] = field(default_factory=list)
    not_refreshed: list[str] = field(default_factory=list)  # each says why


def reachable(url: str, timeout: float = 10) -> bool:
    try:
        urllib.request.urlopen(url, timeout=timeout)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return True


def compile_argv(image: ImageRecipe, repo: Path, stack: str, python: str) -> list[str]:
    lock_dir = repo / image.lock_dir
    argv = [
        "uv",
        "pip",
        "compile",
        "--quiet",
        "--generate-hashes",
        "--no-header",
        "--annotation-style",
        "line",
        "--python-version",
        python,
        "--python-platform",
        PLATFORM,
        "--index-url",
        INDEX_URL,
    ]
    if stack not in ("slim", "build"):
        argv += ["--excludes", str(lock_dir / "excludes.txt")]
    if stack == "blackwell-fork":
        argv += ["--no-emit-package", "sglang"]  # a git requirement cannot be hashed
    argv += [str(lock_dir / f"{stack}.in"), "-o", str(locks.lock_path(repo, image, stack, python))]
    return argv


def _fork_vcs_line(lock_dir: Path) -> str:
    for line in (lock_dir / "blackwell-fork.in").read_text().splitlines():
        if line.startswith("sglang @ git+"):
            return line
    raise InputError(f"{lock_dir / 'blackwell-fork.in'}: no 'sglang @ git+...' requirement")


def update_pins(
    recipe: Recipe,
    repo: Path,
    *,
    image_name: str | None = None,
    is_reachable: Callable[[str], bool] = reachable,
) -> PinsReport:
    name, image = recipe.image(image_name)
    lock_dir = repo / image.lock_dir
    report = PinsReport()
    for python in image.python_versions:
        for stack in ("upstream", "slim", "build"):
            proc.run(compile_argv(image, repo, stack, python))
            report.refreshed.append(locks.lock_path(repo, image, stack, python).name)

    if is_reachable(GITHUB):
        for python in image.python_versions:
            proc.run(compile_argv(image, repo, "blackwell-fork", python))
            report.refreshed.append(locks.lock_path(repo, image, "blackwell-fork", python).name)
        write_text(lock_dir / "blackwell-fork-vcs.txt", _fork_vcs_line(lock_dir) + "\n")
    else:
        report.not_refreshed.append(
            f"{name}: blackwell-fork locks (github.com is not reachable; they stay as committed, "
            "and a fork build stops with a message while they are unresolved)"
        )

    pins_file = repo / image.pins
    pinned = tomllib.loads(pins_file.read_text())["base"]["ref"]
    unpinned = pinned.split("@")[0]
    try:
        out = proc.run(
            [
                "docker",
                "buildx",
                "imagetools",
                "inspect",
                unpinned,
                "--format",
                "{{json .Manifest}}",
            ],
            timeout=120,
        ).stdout
        digest = json.loads(out)["digest"]
    except (Glm51Error, ValueError, KeyError) as exc:
        report.not_refreshed.append(
            f"{name}: base image digest of {unpinned} (no registry answered: "
            f"{str(exc).splitlines()[0][:200]}; {image.pins} kept as committed)"
        )
        return report
    new_ref = f"{unpinned}@{digest}"
    for path in (pins_file, repo / image.dockerfile):
        text = path.read_text()
        if text.count(pinned) != 1:  # the ARG default and [base].ref: exactly one place each
            raise InputError(f"{path}: expected the pinned base {pinned} exactly once")
        write_text(path, text.replace(pinned, new_ref))
    report.refreshed.append(
        f"{image.pins} and {image.dockerfile}: base {new_ref} (record its provenance and set "
        "verified = true)"
    )
    return report
