"""Typed errors. Each kind has its own exit code so CI can tell them apart.

0 ok, 1 a bug in glm51 (anything untyped), 2 command-line usage (click's own), then
3 bad input (InputError), 4 preflight failed (PreflightError), 5 a gate was missed
(GateFailed), 6 infrastructure failed (InfraError, CommandFailed).
"""

from __future__ import annotations


class Glm51Error(Exception):
    """Base of every error the CLI reports without a traceback."""

    exit_code = 1
    kind = "error"


class InputError(Glm51Error):
    """Bad input: the recipe, a checkpoint, a data file, an argument value."""

    exit_code = 3
    kind = "bad input"


class PreflightError(Glm51Error):
    """The machine, checkpoint or flags cannot serve this profile."""

    exit_code = 4
    kind = "preflight failed"


class GateFailed(Glm51Error):
    """A quality or throughput gate was measured and missed (the model got worse)."""

    exit_code = 5
    kind = "gate failed"


class InfraError(Glm51Error):
    """The outside world failed: a tool, a server, the network, the engine."""

    exit_code = 6
    kind = "infrastructure failed"


class CommandFailed(InfraError):
    """An external command exited non-zero."""

    def __init__(self, argv: list[str], returncode: int, output: str = "") -> None:
        import shlex

        self.argv = list(argv)
        self.returncode = returncode
        self.output = output
        tail = f"\n{output.strip()[-2000:]}" if output.strip() else ""
        super().__init__(f"command exited with {returncode}: {shlex.join(self.argv)}{tail}")
