"""The release recipe (release/glm51.toml), parsed once into frozen, typed objects."""

from glm51.recipe.load import default_recipe_path, load_recipe, parse_recipe
from glm51.recipe.schema import Recipe

__all__ = ["Recipe", "default_recipe_path", "load_recipe", "parse_recipe"]
