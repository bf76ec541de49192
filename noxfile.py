"""Sessions: lint, tests (default), bench_quantize. `nox -l` lists them all."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

PY = "3.11"


@nox.session(python=PY)
def lint(session: nox.Session) -> None:
    """ruff check and format check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "noxfile.py")


@nox.session(python=PY)
def tests(session: nox.Session) -> None:
    """The test suite (unit + integration; GPU tests only with `-- -m gpu` on a GPU runner)."""
    # The CPU build of torch first (it is what CI has), so the extras do not pull a CUDA one.
    session.install("torch==2.13.0")
    session.install("-e", ".[dev,quantize]")
    session.run("pytest", *session.posargs)


@nox.session(python=PY)
def bench_quantize(session: nox.Session) -> None:
    """Peak RSS and time per layer of `glm51 quantize`, both modes, increasing depth (CPU)."""
    session.install("torch==2.13.0")
    session.install("-e", ".[quantize]")
    session.run("python", "benchmarks/quantize_memory.py", *session.posargs)
