"""--help is rendered as rich markup: an unescaped `[deploy.router]` or `glm51[router]` in a
help text is taken for a style tag and vanishes from the help the user reads."""

from __future__ import annotations

import re

import typer
from rich.text import Text
from typer.testing import CliRunner

from glm51.cli import app

# An opening bracket that rich's markup parser takes for a tag: `[` + a letter, `/` or `@`,
# not escaped with a backslash.
_TAG = re.compile(r"(?<!\\)\[[a-zA-Z/@][^\]\n]*\]")


def _texts(command, path: str):
    yield path, command.help or ""
    for param in command.params:
        yield f"{path} {param.name}", getattr(param, "help", None) or ""
    for name, sub in getattr(command, "commands", {}).items():
        yield from _texts(sub, f"{path} {name}")


def test_no_help_text_loses_a_bracketed_word_to_markup():
    lost = [
        (where, tag)
        for where, text in _texts(typer.main.get_command(app), "glm51")
        for tag in _TAG.findall(text)
        if tag not in Text.from_markup(text).plain
    ]
    assert not lost, lost


def test_the_router_help_names_the_recipe_section():
    out = CliRunner().invoke(app, ["router", "--help"], terminal_width=200).output
    assert "[deploy.router]" in out, out
