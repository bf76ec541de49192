"""The one subprocess chokepoint: every docker, sglang and nvidia-smi call goes through here.

Argv lists only (never a shell), the quoted command logged before it runs, and a typed
error carrying the exit code when it fails.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from glm51.errors import CommandFailed, InfraError, InputError

log = logging.getLogger("glm51.proc")


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def _merged_env(env: Mapping[str, str] | None) -> dict[str, str] | None:
    return None if env is None else {**os.environ, **env}


def _not_runnable(program: str, exc: PermissionError) -> InputError:
    return InputError(
        f"{program}: permission denied running it ({exc.filename or program}): this user "
        "may not execute it or read a folder on PATH before it; fix the permissions or PATH"
    )


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    capture: bool = True,
    check: bool = True,
    timeout: float | None = None,
    input: str | None = None,
) -> Result:
    """Run ``argv`` to completion. ``env`` is added to the current environment."""
    argv = [os.fspath(a) for a in argv]
    log.info("$ %s", shlex.join(argv))
    try:
        where = {"env": _merged_env(env), "cwd": cwd, "timeout": timeout, "input": input}
        done = subprocess.run(argv, capture_output=capture, text=True, check=False, **where)
    except FileNotFoundError as exc:
        raise InfraError(f"{argv[0]}: command not found ({exc.strerror})") from exc
    except PermissionError as exc:  # a PATH entry or the program this user may not run
        raise _not_runnable(argv[0], exc) from None
    except subprocess.TimeoutExpired as exc:
        raise InfraError(f"timed out after {timeout}s: {shlex.join(argv)}") from exc
    result = Result(tuple(argv), done.returncode, done.stdout or "", done.stderr or "")
    if check and done.returncode != 0:
        raise CommandFailed(argv, done.returncode, (done.stderr or "") + (done.stdout or ""))
    return result


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    output: IO[bytes] | None = None,
    secret_stdin: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start a long-running process (a server): inherited stdio, or stdout and stderr into
    ``output`` (an open file: the server's log). ``secret_stdin``: one line written to the
    child's stdin, then closed (a secret that must stay out of argv, the log and the env)."""
    argv = [os.fspath(a) for a in argv]
    log.info("$ %s", shlex.join(argv))
    streams: dict = {} if output is None else {"stdout": output, "stderr": subprocess.STDOUT}
    if secret_stdin is not None:
        streams["stdin"] = subprocess.PIPE
    try:
        child = subprocess.Popen(argv, env=_merged_env(env), cwd=cwd, **streams)
    except FileNotFoundError as exc:
        raise InfraError(f"{argv[0]}: command not found ({exc.strerror})") from exc
    except PermissionError as exc:
        raise _not_runnable(argv[0], exc) from None
    if secret_stdin is not None and child.stdin is not None:
        with child.stdin:
            child.stdin.write(secret_stdin.encode() + b"\n")
    return child


def forward_signals(child: subprocess.Popen[bytes]) -> None:
    """Pass SIGINT/SIGTERM on to ``child`` so it can shut down cleanly (we may be PID 1)."""

    def _forward(signum: int, _frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _forward)
