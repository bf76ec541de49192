"""Inside the image: every advertised serve profile must parse with the installed SGLang.

The profile is rendered exactly as `glm51 serve` would launch it, and the flags are parsed by
SGLang's own argument parser: an unknown flag or a backend choice this SGLang lacks fails the
image build. This is the hook the preflight's "installed SGLang supports these backends" check
(glm51.preflight.sglang_support) replaces once it lands.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from glm51.recipe import Recipe
from glm51.serve.command import render

PLACEHOLDER_MODEL = "/models/ckpt"


class _Raising(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print usage and exit
        raise ValueError(message)


def sglang_parser() -> argparse.ArgumentParser:
    from sglang.srt.server_args import ServerArgs

    parser = _Raising(prog="sglang.launch_server")
    ServerArgs.add_cli_args(parser)
    return parser


def sglang_flags(recipe: Recipe, profile_name: str) -> list[str]:
    """The flags `glm51 serve` passes to sglang.launch_server for this profile."""
    _, profile = recipe.profile(profile_name)
    argv = render(recipe, profile, model_path=PLACEHOLDER_MODEL, python="python").argv
    return list(argv[3:])  # drop `python -m sglang.launch_server`


def profile_problems(
    recipe: Recipe, sglang_build: str, parser: argparse.ArgumentParser
) -> dict[str, str]:
    """profile -> why the installed SGLang cannot serve it (empty when all pass)."""
    problems = {}
    for name in recipe.images.cu130.profiles.get(sglang_build, ()):
        try:
            parser.parse_args(sglang_flags(recipe, name))
        except (ValueError, argparse.ArgumentError) as exc:
            problems[name] = str(exc)
    return problems


def advertised(recipe: Recipe, sglang_build: str) -> tuple[str, ...]:
    return recipe.images.cu130.profiles.get(sglang_build, ())


def run_selfcheck(
    recipe: Recipe, sglang_build: str, make_parser: Callable[[], argparse.ArgumentParser]
) -> tuple[tuple[str, ...], dict[str, str]]:
    return advertised(recipe, sglang_build), profile_problems(recipe, sglang_build, make_parser())
