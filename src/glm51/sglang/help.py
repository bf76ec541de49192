"""The installed SGLang's flags and choice lists.

Read from `python -m sglang.launch_server --help` (argparse prints `--flag {a,b,c}`), which
works the same for upstream SGLang and the Blackwell fork, and needs no GPU.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass

from glm51 import proc
from glm51.errors import Glm51Error
from glm51.recipe.serving import SGLangBuild

# The profile settings whose values must be among the installed sglang's choices.
CHECKED = (
    "--fp4-gemm-backend",
    "--moe-runner-backend",
    "--attention-backend",
    "--quantization",
    "--kv-cache-dtype",
    "--reasoning-parser",
    "--tool-call-parser",
    "--speculative-algorithm",
)
# An option line of argparse's help: two spaces, then the invocation up to two spaces.
_OPTION_LINE = re.compile(r"^  (-[^ ].*?)(?: {2,}|$)")
_OPTION = re.compile(r"(--[A-Za-z0-9][\w-]*)(?: \{([^{}\s]*)\})?")


class SglangMissing(Exception):
    """sglang is not importable, or its --help failed; the message says what it printed."""


SglangProbe = Callable[[], str]  # returns the --help text, raises SglangMissing


def launch_server_help(python: str = sys.executable) -> str:
    """The real probe: sglang's own --help through the subprocess chokepoint."""
    argv = [python, "-m", "sglang.launch_server", "--help"]
    try:
        result = proc.run(argv, check=False, timeout=600)
    except Glm51Error as exc:
        raise SglangMissing(str(exc)) from None
    if "No module named 'sglang'" in result.stderr:
        raise SglangMissing(f"sglang is not installed for {python} (No module named 'sglang')")
    if result.returncode != 0:
        said = (result.stderr or result.stdout).strip().splitlines()
        raise SglangMissing(
            f"`{' '.join(argv)}` exited {result.returncode}: " + " | ".join(said[-3:])
        )
    return result.stdout


@dataclass(frozen=True)
class SglangOptions:
    flags: frozenset[str]
    choices: dict[str, tuple[str, ...]]

    def resolve(self, flag: str) -> tuple[str | None, list[str]]:
        """(the flag argparse would match, candidates): exact, else a unique prefix."""
        if flag in self.flags:
            return flag, [flag]
        candidates = sorted(f for f in self.flags if f.startswith(flag))
        return (candidates[0] if len(candidates) == 1 else None), candidates


def parse_help(text: str) -> SglangOptions:
    flags: set[str] = set()
    choices: dict[str, tuple[str, ...]] = {}
    for line in text.splitlines():
        match = _OPTION_LINE.match(line)
        if not match:
            continue
        for flag, listed in _OPTION.findall(match[1]):
            flags.add(flag)
            if listed:
                choices[flag] = tuple(listed.split(","))
    return SglangOptions(frozenset(flags), choices)


def install_hint(name: str, build: SGLangBuild) -> str:
    if build.source == "pypi":
        hint = f"install the profile's sglang build {name!r}: pip install sglang=={build.version}"
    else:
        hint = (
            f"install the profile's sglang build {name!r}: "
            f"pip install 'sglang @ git+{build.git_url}@{build.commit}#subdirectory=python'"
        )
    if build.plugins:
        plugins = " ".join(f"./plugins/{plugin}" for plugin in build.plugins)
        hint += f", then its plugins from the glm51 repository: pip install {plugins}"
    return hint
