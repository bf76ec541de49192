"""The typed server settings as SGLang flags, and pass-through flags as argparse sees them.

`setting_flags` is the one mapping from a profile's typed settings to flags; the argv that
`glm51 serve` runs and the checks that `glm51 doctor` makes both read it, so nothing is
rendered to text and parsed back.
"""

from __future__ import annotations

from collections.abc import Sequence

from glm51.recipe.serving import Profile, ServerArgs

# Server fields rendered by hand rather than by the generic loop below.
_SPECIAL = {"speculative", "extra_args", "host", "port"}
# Spellings SGLang accepts for the same setting (aliases, and the prefix argparse expands).
TP_FLAGS = ("--tp", "--tp-size", "--tensor-parallel-size")
MODEL_FLAGS = ("--model-path", "--model")

FlagMap = dict[str, str | None]  # flag -> its value (None for a switch), in argv order


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def parse_passthrough(tokens: Sequence[str]) -> FlagMap:
    """Flag -> its last value (None for a switch), as argparse would see them."""
    values: FlagMap = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("--"):
            name, eq, value = token.partition("=")
            if eq:
                values[name] = value
            elif i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
                values[name] = tokens[i + 1]
                i += 1
            else:
                values[name] = None
        i += 1
    return values


def _typed_flags(args: ServerArgs) -> FlagMap:
    flags: FlagMap = {}
    for name in type(args).model_fields:
        if name in _SPECIAL:
            continue
        value = getattr(args, name)
        if value is None or value is False:
            continue
        flags[_flag(name)] = None if value is True else str(value)
    if args.speculative is not None:
        spec = args.speculative
        flags["--speculative-algorithm"] = spec.algorithm
        flags["--speculative-num-steps"] = str(spec.num_steps)
        flags["--speculative-eagle-topk"] = str(spec.eagle_topk)
        flags["--speculative-num-draft-tokens"] = str(spec.num_draft_tokens)
    return flags


def setting_flags(args: ServerArgs) -> FlagMap:
    """The profile's settings as flags (host and port excluded: they are per launch)."""
    # extra_args are verbatim tokens and come after the typed ones, as in the argv.
    return {**_typed_flags(args), **parse_passthrough(args.extra_args)}


def server_flags(args: ServerArgs, *, host: str, port: int) -> list[str]:
    """The argv tail for sglang.launch_server: settings, extra_args verbatim, host, port."""
    argv: list[str] = []
    for flag, value in _typed_flags(args).items():
        argv += [flag] if value is None else [flag, value]
    argv += list(args.extra_args)
    argv += ["--host", host, "--port", str(port)]
    return argv


def effective(profile: Profile, passthrough: Sequence[str], flag: str) -> str | None:
    """The value SGLang ends up with: a pass-through comes last, so it wins."""
    given = parse_passthrough(passthrough)
    if flag in given:
        return given[flag]
    return setting_flags(profile.server).get(flag)


def effective_tp(profile: Profile, passthrough: Sequence[str]) -> int:
    given = parse_passthrough(passthrough)
    for flag in TP_FLAGS:
        value = given.get(flag)
        if value is not None and value.isdigit():
            return int(value)
    return profile.server.tp
