"""The subprocess chokepoint logs the quoted argv and types its failures."""

import logging
import os
import sys

import pytest

from glm51 import proc
from glm51.errors import CommandFailed, InfraError


def test_run_captures_output_and_logs_quoted_argv(caplog):
    caplog.set_level(logging.INFO, logger="glm51.proc")
    result = proc.run([sys.executable, "-c", "print('hi there')"])
    assert result.stdout == "hi there\n" and result.returncode == 0
    assert "-c 'print('\"'\"'hi there'\"'\"')'" in caplog.text


def test_env_is_added_not_replaced(monkeypatch):
    monkeypatch.setenv("GLM51_OUTER", "kept")
    code = "import os; print(os.environ['GLM51_OUTER'], os.environ['GLM51_INNER'])"
    result = proc.run([sys.executable, "-c", code], env={"GLM51_INNER": "added"})
    assert result.stdout.split() == ["kept", "added"]


def test_failure_carries_exit_code_and_output():
    with pytest.raises(CommandFailed) as info:
        proc.run([sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(7)"])
    assert info.value.returncode == 7
    assert "boom" in str(info.value)
    assert info.value.exit_code == InfraError.exit_code


def test_check_false_returns_the_code():
    assert proc.run([sys.executable, "-c", "raise SystemExit(3)"], check=False).returncode == 3


def test_missing_tool_is_an_infra_error():
    with pytest.raises(InfraError, match="no-such-tool-glm51: command not found"):
        proc.run(["no-such-tool-glm51"])


def test_timeout_is_an_infra_error():
    with pytest.raises(InfraError, match="timed out"):
        proc.run([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.2)


def test_a_program_this_user_may_not_run_is_bad_input_naming_it(tmp_path, monkeypatch):
    from glm51.errors import InputError

    program = tmp_path / "tool"
    program.write_text("#!/bin/sh\necho hi\n")
    program.chmod(0o644)  # not executable, even for root
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    for call in (proc.run, proc.spawn):
        with pytest.raises(InputError) as err:
            call(["tool"])
        assert str(err.value).startswith("tool: permission denied running it")
        assert "PATH" in str(err.value)
