"""The release recipe (release/glm51.toml), parsed once into frozen, typed objects.

`glm51.recipe.load` finds and parses it (`load_recipe`), `glm51.recipe.schema` holds the
types (`Recipe`). This package's own import is empty, so a command's module can name it
without building the pydantic schema (`glm51 --help` stays fast).
"""
