"""Find, parse and validate the recipe once; every stage receives the frozen result."""

from __future__ import annotations

import os
import tomllib
from functools import cache
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from glm51.errors import InputError
from glm51.recipe.schema import CrossReferenceError, Recipe

ENV_VAR = "GLM51_RECIPE"
_SOURCE_TREE_RECIPE = Path(__file__).resolve().parents[3] / "release" / "glm51.toml"


def default_recipe_path() -> Path:
    """$GLM51_RECIPE, else the checkout's release/glm51.toml, else the copy in the wheel."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    if _SOURCE_TREE_RECIPE.is_file():
        return _SOURCE_TREE_RECIPE
    return Path(str(resources.files("glm51") / "_data" / "glm51.toml"))


def _describe(error: dict) -> str:
    loc = ".".join(str(part) for part in error["loc"] if not str(part).startswith("function-"))
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{loc}: unknown key"
    if kind == "missing":
        return f"{loc}: missing required key"
    value = error.get("input")
    shown = "" if isinstance(value, dict) else f" (got {value!r})"
    if kind == "value_error" and isinstance(error.get("ctx", {}).get("error"), CrossReferenceError):
        cross = error["ctx"]["error"]
        return "\n".join(f"{where}: {msg}" for where, msg in cross.problems)
    msg = error["msg"].removeprefix("Value error, ")
    return (
        f"{loc}: expected {msg[0].lower()}{msg[1:]}{shown}"
        if kind != "value_error"
        else (f"{loc}: {msg}" if loc else msg)
    )


def parse_recipe(text: str, path: Path | str = "<recipe>") -> Recipe:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(err) for err in exc.errors()]
        raise InputError(f"{path}: invalid recipe\n  " + "\n  ".join(lines)) from None


def load_recipe(path: Path | str | None = None) -> Recipe:
    path = Path(path) if path is not None else default_recipe_path()
    return _load_cached(path.resolve())


@cache
def _load_cached(path: Path) -> Recipe:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the recipe ({exc.strerror})") from exc
    return parse_recipe(text, path)
