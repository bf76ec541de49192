"""Find, parse and validate the recipe once; every stage receives the frozen result."""

from __future__ import annotations

import os
from functools import cache
from importlib import resources
from pathlib import Path

from glm51 import env
from glm51.errors import InputError
from glm51.recipe.schema import Recipe
from glm51.recipe.toml_model import load_toml, parse_toml

ENV_VAR = env.RECIPE
_SOURCE_TREE_RECIPE = Path(__file__).resolve().parents[3] / "release" / "glm51.toml"


def default_recipe_path() -> Path:
    """$GLM51_RECIPE, else the checkout's release/glm51.toml, else the copy in the wheel."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    if _SOURCE_TREE_RECIPE.is_file():
        return _SOURCE_TREE_RECIPE
    return Path(str(resources.files("glm51") / "_data" / "glm51.toml"))


def parse_recipe(text: str, path: Path | str = "<recipe>") -> Recipe:
    """A recipe from text; relative paths in it resolve against ``path``'s folder."""
    return _located(parse_toml(text, path, Recipe, "recipe"), Path(path))


def _located(recipe: Recipe, path: Path) -> Recipe:
    recipe.located(path)
    for i, calib in enumerate(recipe.quantize.passes):
        manifest = recipe.pass_manifest(calib.name)
        if path.name != "<recipe>" and not manifest.is_file():
            raise InputError(
                f"{path}: quantize.passes[{i}].manifest: {manifest} does not exist "
                "(manifest paths are relative to the recipe file)"
            )
    return recipe


def load_recipe(path: Path | str | None = None) -> Recipe:
    path = Path(path) if path is not None else default_recipe_path()
    return _load_cached(path.resolve())


@cache
def _load_cached(path: Path) -> Recipe:
    return _located(load_toml(path, Recipe, "recipe"), path)
