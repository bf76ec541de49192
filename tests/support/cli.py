"""Reading a CliRunner result the same way with or without the CLI's typed-error guard."""

from __future__ import annotations

from click.testing import Result

from glm51.errors import Glm51Error


def exit_code(result: Result) -> int:
    """The exit code the `glm51` script would give: a typed error that left the command as an
    exception counts with its own code, as `glm51.cli.main` maps it."""
    if isinstance(result.exception, Glm51Error):
        return result.exception.exit_code
    return result.exit_code


def error_text(result: Result) -> str:
    """The typed error's message (raised, or printed by the guard)."""
    if isinstance(result.exception, Glm51Error):
        return str(result.exception)
    return result.output
