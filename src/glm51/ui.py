"""What the commands show a person: the two consoles, the callback types a library takes
for its log lines and its progress, and the one progress bar for bytes hashed or copied.
Libraries take a `Log`/`Progress` and print nothing; a command passes these in."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.markup import escape

Log = Callable[[str], None]  # one line of what is happening
Progress = Callable[[int], None]  # bytes (or items) done since the last call

out = Console()  # results (JSON, a plan, a card): what a pipe reads
err = Console(stderr=True)  # everything said along the way


def quiet(_: object) -> None:
    """The default Log / Progress of a library call: nothing shown."""


def say(message: str) -> None:
    """A plain line on stderr, whole (no markup, no hard wraps: logs keep whole lines)."""
    err.print(escape(message), highlight=False, soft_wrap=True)


@contextlib.contextmanager
def byte_progress(label: str, *, total: int | None = None, show: bool = True) -> Iterator[Progress]:
    """A transient bar of bytes done (size, speed, time left) on stderr; `show=False` (a dry
    run, JSON on stdout, nothing to do) yields a callback that shows nothing."""
    if not show:
        yield quiet
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (TextColumn(escape(label)), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, TimeRemainingColumn(), console=err, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.update(task, advance=n)
