from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def recipe_path() -> Path:
    return REPO / "release" / "glm51.toml"


@pytest.fixture(scope="session")
def recipe_text(recipe_path: Path) -> str:
    return recipe_path.read_text()


@pytest.fixture(scope="session")
def recipe(recipe_path: Path):
    from glm51.recipe.load import load_recipe

    return load_recipe(recipe_path)
