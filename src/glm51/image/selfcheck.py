"""Inside the image: every advertised serve profile must be servable by the installed SGLang.

Two checks per profile, both failing the image build: the preflight's own "installed SGLang
supports these flags and backends" check (glm51.preflight.sglang_support, reading
`sglang.launch_server --help`, what `glm51 serve` runs before starting), and the profile
rendered exactly as `glm51 serve` launches it, parsed by SGLang's own argument parser.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from glm51.preflight import sglang_support
from glm51.preflight.findings import Severity
from glm51.recipe.schema import Recipe
from glm51.sglang import help as sglang_help
from glm51.sglang.command import render

PLACEHOLDER_MODEL = "/models/ckpt"


class _Raising(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print usage and exit
        raise ValueError(message)


def sglang_parser() -> argparse.ArgumentParser:
    # As `python -m sglang.launch_server` does before parsing: the installed plugins (entry
    # point group sglang.srt.plugins) may add choices, e.g. b12x from glm51-sglang-b12x.
    from sglang.srt.plugins import load_plugins
    from sglang.srt.server_args import ServerArgs

    load_plugins()

    parser = _Raising(prog="sglang.launch_server")
    ServerArgs.add_cli_args(parser)
    return parser


def sglang_flags(recipe: Recipe, profile_name: str) -> list[str]:
    """The flags `glm51 serve` passes to sglang.launch_server for this profile."""
    _, profile = recipe.profile(profile_name)
    argv = render(recipe, profile, model_path=PLACEHOLDER_MODEL, python="python").argv
    return list(argv[3:])  # drop `python -m sglang.launch_server`


def profile_problems(
    recipe: Recipe,
    sglang_build: str,
    parser: argparse.ArgumentParser,
    help_probe: sglang_help.SglangProbe = sglang_help.launch_server_help,
) -> dict[str, str]:
    """profile -> why the installed SGLang cannot serve it (empty when all pass)."""
    problems = {}
    for name in advertised(recipe, sglang_build):
        _, profile = recipe.profile(name)
        build = recipe.sglang_builds[profile.sglang_build]
        findings = sglang_support.check(profile, profile.sglang_build, build, (), help_probe)
        why = [f.message for f in findings if f.severity is Severity.ERROR]
        try:
            parser.parse_args(sglang_flags(recipe, name))
        except (ValueError, argparse.ArgumentError) as exc:
            why.append(f"sglang's parser: {exc}")
        if why:
            problems[name] = "; ".join(why)
    return problems


def advertised(recipe: Recipe, sglang_build: str, image: str | None = None) -> tuple[str, ...]:
    return recipe.image(image)[1].profiles.get(sglang_build, ())


def run_selfcheck(
    recipe: Recipe,
    sglang_build: str,
    make_parser: Callable[[], argparse.ArgumentParser],
    help_probe: sglang_help.SglangProbe = sglang_help.launch_server_help,
) -> tuple[tuple[str, ...], dict[str, str]]:
    problems = profile_problems(recipe, sglang_build, make_parser(), help_probe)
    return advertised(recipe, sglang_build), problems
