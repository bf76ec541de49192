"""Every command's --help reads cleanly: flags show no `<bool>` type, no `--no-no-` flag."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from glm51.cli import app


def _commands(group: typer.Typer, prefix: tuple[str, ...] = ()):
    for command in group.registered_commands:
        yield (*prefix, command.name or command.callback.__name__)
    for sub in group.registered_groups:
        yield from _commands(sub.typer_instance, (*prefix, sub.name))


def test_every_help_text_reads_cleanly():
    commands = list(_commands(app))
    assert ("quantize",) in commands and ("image", "build") in commands
    for command in commands:
        result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (command, result.output)
        assert "<bool>" not in result.output, command
        assert "--no-no-" not in result.output, command
