"""Sessions: lint, tests (default), rehearsal, image, update_pins, bench_quantize,
bench_accuracy, docs. `nox -l` lists them all."""

from __future__ import annotations

import json
import os
import tomllib
import urllib.request
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

PY = "3.11"
REPO = Path(__file__).parent
LOCK_DIR = REPO / "images" / "cu130"
LOCK_PLATFORM = "x86_64-manylinux_2_36"  # glibc of bookworm (2.36) <= Ubuntu 24.04 (2.39)
UV = "uv>=0.8"


@nox.session(python=PY)
def lint(session: nox.Session) -> None:
    """ruff check and format check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "src", "tests", "noxfile.py", "images", "benchmarks")
    session.run("ruff", "format", "--check", "src", "tests", "noxfile.py", "images", "benchmarks")


@nox.session(python=PY)
def tests(session: nox.Session) -> None:
    """The test suite (unit + integration; GPU tests only with `-- -m gpu` on a GPU runner)."""
    # The CPU build of torch first (it is what CI has), so the extras do not pull a CUDA one;
    # transformers at the version sglang 0.5.23 pins, i.e. what the image quantizes with.
    # GPU runners set GLM51_TORCH=torch==2.14.1 (PyPI's CUDA 13.0 build, the image's).
    session.install(os.environ.get("GLM51_TORCH", "torch==2.13.0"), "transformers==5.19.0")
    session.install("-e", ".[dev,quantize,bench,serve-test]")
    session.run("pytest", *session.posargs)


@nox.session(python=PY)
def bench_accuracy(session: nox.Session) -> None:
    """glm51 bench's measurement against the double's known rate, c=1..128, and the client's
    CPU time (figures in docs/bench.md): `nox -s bench_accuracy -- [--rate 30] [--duration 20]`."""
    session.install("-e", ".")
    session.run("python", "benchmarks/bench_accuracy.py", *session.posargs)


@nox.session(python=PY)
def image(session: nox.Session) -> None:
    """Build the serving image: `nox -s image -- [--local-base] [--stack slim]
    [--base-image REF] [--sglang-build NAME] [--ca-bundle PATH] [--push]`
    (all `glm51 image build` options; digest recorded in out/image/image.json)."""
    session.install("-e", ".", "hatchling>=1.25", "hatch-vcs>=0.4")
    session.run("glm51", "image", "build", *session.posargs, external=False)


def _compile(session: nox.Session, stack: str, python: str, *extra: str) -> None:
    tag = python.replace(".", "")
    session.run(
        "uv", "pip", "compile", "--quiet", "--generate-hashes", "--no-header",
        "--annotation-style", "line", "--python-version", python,
        "--python-platform", LOCK_PLATFORM, "--index-url", "https://pypi.org/simple",
        *extra, str(LOCK_DIR / f"{stack}.in"), "-o", str(LOCK_DIR / f"{stack}-py{tag}.lock"),
    )  # fmt: skip


def _reachable(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=10)
        return True
    except Exception:
        return False


@nox.session(python=PY)
def update_pins(session: nox.Session) -> None:
    """Re-resolve the image locks (PyPI), and where reachable the fork's git lock (GitHub)
    and the base image digest (a registry). Says clearly what it could not refresh."""
    session.install(UV)
    recipe = tomllib.loads((REPO / "release" / "glm51.toml").read_text())
    pythons = recipe["images"]["cu130"]["python_versions"]
    for python in pythons:
        _compile(session, "upstream", python, "--excludes", str(LOCK_DIR / "excludes.txt"))
        _compile(session, "slim", python)
        _compile(session, "build", python)

    if _reachable("https://github.com"):
        for python in pythons:
            tag = python.replace(".", "")
            # sglang (a git requirement cannot be hashed) goes to a separate commit-pinned file.
            _compile(
                session, "blackwell-fork", python, "--no-emit-package", "sglang",
                "--excludes", str(LOCK_DIR / "excludes.txt"),
            )  # fmt: skip
            fork = next(
                line
                for line in (LOCK_DIR / "blackwell-fork.in").read_text().splitlines()
                if line.startswith("sglang @ git+")
            )
            (LOCK_DIR / "blackwell-fork-vcs.txt").write_text(fork + "\n")
            session.log(f"blackwell-fork-py{tag}.lock resolved")
    else:
        session.warn(
            "github.com is NOT reachable: the blackwell-fork lock was NOT refreshed "
            "(it stays as committed; unresolved locks make a fork build stop with a message)"
        )

    pins = tomllib.loads((LOCK_DIR / "pins.toml").read_text())
    image_ref = pins["base"]["ref"].split("@")[0]
    try:
        out = session.run(
            "docker", "buildx", "imagetools", "inspect", image_ref,
            "--format", "{{json .Manifest}}", external=True, silent=True,
        )  # fmt: skip
    except Exception:
        out = None
    if out:
        new_ref = f"{image_ref}@{json.loads(out)['digest']}"
        for path in (LOCK_DIR / "pins.toml", REPO / "Dockerfile.cu130"):
            path.write_text(path.read_text().replace(pins["base"]["ref"], new_ref))
        session.warn(
            f"registry reachable: base re-resolved to {new_ref} (pins.toml and the Dockerfile "
            "default updated; record the provenance and set verified = true in pins.toml)"
        )
    else:
        session.warn(
            f"no registry reachable: the base digest of {image_ref} was NOT re-resolved "
            "(images/cu130/pins.toml kept as committed)"
        )


@nox.session(python=PY)
def bench_quantize(session: nox.Session) -> None:
    """Peak RSS and time per layer of `glm51 quantize`, both modes, increasing depth (CPU)."""
    session.install("torch==2.13.0")
    session.install("-e", ".[quantize]")
    session.run("python", "benchmarks/quantize_memory.py", *session.posargs)


@nox.session(python=PY)
def rehearsal(session: nox.Session) -> None:
    """The main job on the embedded default, the tiny glm_moe_dsa model, on the CPU: build it,
    quantize it to NVFP4 with ModelOpt (coverage-gated), verify the export with the serve
    preflight's checkpoint and flag checks, and print the launch command for it.
    Everything lands in out/rehearsal/ (a rerun reuses the calibration artifacts)."""
    session.install("torch==2.13.0", "transformers==5.19.0")
    session.install("-e", ".[quantize]")
    out = REPO / "out" / "rehearsal"
    bf16, nvfp4, calib = out / "tiny-bf16", out / "tiny-nvfp4", out / "calib.jsonl"
    session.run("glm51", "tiny-model", str(bf16), "--calib-out", str(calib))
    session.run(
        "glm51", "quantize", "--model", str(bf16), "--output", str(nvfp4),
        "--calib-file", str(calib), "--work-dir", str(out / "work"), "--overwrite",
    )  # fmt: skip
    session.run("glm51", "doctor", "--model", str(nvfp4), "--only", "checkpoint", "--only", "flags")
    session.run("glm51", "serve", "--dry-run", "--model", str(nvfp4))
    session.log(f"rehearsal ok: {nvfp4} (coverage report: {out / 'work' / 'coverage'})")


@nox.session(python=PY)
def docs(session: nox.Session) -> None:
    """Regenerate the generated references: docs/recipe.md and docs/cli.md."""
    session.install("-e", ".")
    session.run("glm51", "recipe", "schema", "-o", "docs/recipe.md")
    session.run(
        "python", "-m", "typer", "glm51.cli", "utils", "docs", "--name", "glm51",
        "--title", "glm51 command reference", "--output", "docs/cli.md",
    )  # fmt: skip
