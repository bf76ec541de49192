"""Typed errors. Each kind has its own exit code so CI can tell them apart.

0 ok, 1 a bug in glm51 (anything untyped), 2 command-line usage (click's own), then
3 bad input (InputError), 4 preflight failed (PreflightError), 5 a gate was missed
(GateFailed), 6 infrastructure failed (InfraError, CommandFailed).
"""

from __future__ import annotations


class Glm51Error(Exception):
    """Base of every error the CLI reports without a traceback. A kind is a subclass that
    names its exit code and its words: `class X(Glm51Error, exit_code=3, kind="bad input")`."""

    exit_code = 1
    kind = "error"

    def __init_subclass__(cls, *, exit_code: int | None = None, kind: str | None = None) -> None:
        super().__init_subclass__()
        cls.exit_code = cls.exit_code if exit_code is None else exit_code
        cls.kind = cls.kind if kind is None else kind


class InputError(Glm51Error, exit_code=3, kind="bad input"):
    """Bad input: the recipe, a checkpoint, a data file, an argument value."""


class PreflightError(Glm51Error, exit_code=4, kind="preflight failed"):
    """The machine, checkpoint or flags cannot serve this profile."""


class GateFailed(Glm51Error, exit_code=5, kind="gate failed"):
    """A quality or throughput gate was measured and missed (the model got worse)."""


class InfraError(Glm51Error, exit_code=6, kind="infrastructure failed"):
    """The outside world failed: a tool, a server, the network, the engine."""


class CommandFailed(InfraError):
    """An external command exited non-zero."""

    def __init__(self, argv: list[str], returncode: int, output: str = "") -> None:
        import shlex

        self.argv = list(argv)
        self.returncode = returncode
        self.output = output
        tail = f"\n{output.strip()[-2000:]}" if output.strip() else ""
        super().__init__(f"command exited with {returncode}: {shlex.join(self.argv)}{tail}")


# errno values (by name, so the module stays import-light) for a full disk or a size limit.
_NO_SPACE = {"ENOSPC", "EDQUOT", "EFBIG"}


def from_os_error(exc: OSError, *, path: object = None) -> Glm51Error:
    """What the machine refused, as glm51's words and exit code, naming the path.

    A permission problem or a missing path is the user's to fix (bad input, 3); a full disk,
    a file-size limit, a refused or timed-out connection or an I/O error is the machine's
    (infrastructure, 6).
    """
    import contextlib
    import errno
    import shutil
    from pathlib import Path

    where = path if path is not None else (exc.filename or "")
    prefix = f"{where}: " if where else ""
    name = errno.errorcode.get(exc.errno or 0, "")
    why = exc.strerror or str(exc) or type(exc).__name__
    if isinstance(exc, PermissionError):
        return InputError(
            f"{prefix}permission denied to uid {_uid()}: make it readable (or writable) by "
            "this user, or choose another path"
        )
    if name in _NO_SPACE:
        free = ""
        if where:
            probe = existing_ancestor(Path(str(where)))
            with contextlib.suppress(OSError):
                free = f"; {shutil.disk_usage(probe).free / 1e9:.2f} GB free on {probe}"
        what = "a file-size limit (ulimit -f) was hit" if name == "EFBIG" else "the disk is full"
        return InfraError(f"{prefix}{why}: {what} while writing it{free}")
    if isinstance(exc, FileNotFoundError):
        return InputError(f"{prefix}does not exist (nor, when it was being written, its folder)")
    if isinstance(exc, (IsADirectoryError, NotADirectoryError)):
        return InputError(f"{prefix}{why}")
    if isinstance(exc, ConnectionError | TimeoutError):
        return InfraError(f"{prefix}{why} ({type(exc).__name__})")
    return InfraError(f"{prefix}{why} ({name or type(exc).__name__})")


def existing_ancestor(path):  # Path -> Path
    """``path`` itself, or the nearest folder above it that exists (where a disk is asked)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _uid() -> str:
    import os

    return str(os.getuid()) if hasattr(os, "getuid") else "?"
