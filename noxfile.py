"""Sessions: lint, tests (default), publish_hub, rehearsal, image, update_pins, bench_quantize,
bench_fidelity, bench_accuracy, bench_cli, mutants, docs. `nox -l` lists them all. Glue only:
each session installs and calls glm51 or pytest; the pins it installs live in pyproject.toml's
[dependency-groups]."""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

PY = "3.11"
REPO = Path(__file__).parent
PYPROJECT = nox.project.load_toml(REPO / "pyproject.toml")


def _group(name: str) -> list[str]:
    return nox.project.dependency_groups(PYPROJECT, name)


def _torch(session: nox.Session) -> None:
    # The CPU-run torch first, so the extras do not pull another; GPU runners set GLM51_TORCH
    # (e.g. torch==2.14.1, PyPI's CUDA 13.0 build, the image's).
    torch = os.environ.get("GLM51_TORCH")
    pins = _group("torch-cpu")
    session.install(*([torch, *[p for p in pins if not p.startswith("torch")]] if torch else pins))


@nox.session(python=PY)
def lint(session: nox.Session) -> None:
    """ruff check and format check; import-linter's layer contracts."""
    session.install("-e", ".", *_group("lint"))
    paths = ("src", "tests", "noxfile.py", "images", "benchmarks")
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)
    session.run("lint-imports")


@nox.session(python=PY)
def tests(session: nox.Session) -> None:
    """The test suite (unit + integration; GPU tests only with `-- -m gpu` on a GPU runner)."""
    _torch(session)
    session.install("-e", ".[dev,quantize,publish,bench,serve-cpu]", *_group("deploy"))
    session.run("pytest", *session.posargs)


@nox.session(python=PY)
def mutants(session: nox.Session) -> None:
    """Mutation testing (mutmut) of the code that decides what ships, module by module, each
    mutant against only the unit tests tests/mutants.toml maps its module to:
    `nox -s mutants` (every module), `nox -s mutants -- preflight/gpus --show` (one, with the
    survivors' diffs). Not in the default run. Report: out/mutants/; docs/testing.md."""
    _torch(session)
    session.install("-e", ".[dev,quantize,publish,bench]", *_group("mutants"))
    session.run("python", "tests/support/mutants.py", *session.posargs)


@nox.session(python=PY)
def bench_cli(session: nox.Session) -> None:
    """How long `glm51 --help` takes to start, next to `python -c pass` in the same run:
    `nox -s bench_cli -- [--runs 15]`."""
    session.install("-e", ".")
    session.run("python", "benchmarks/cli_startup.py", *session.posargs)


@nox.session(python=PY)
def bench_accuracy(session: nox.Session) -> None:
    """glm51 bench's measurement against the double's known rate, c=1..128, and the client's
    CPU time (figures in docs/bench.md): `nox -s bench_accuracy -- [--rate 30] [--duration 20]`."""
    session.install("-e", ".")
    session.run("python", "benchmarks/bench_accuracy.py", *session.posargs)


@nox.session(python=PY)
@nox.parametrize("hub", ["1.33.0", "2.4.0"])
def publish_hub(session: nox.Session, hub: str) -> None:
    """The card and publish tests under huggingface_hub 1.x (the image's, sglang's tokenizers
    pin needs <2) and 2.x (current elsewhere), against the loopback Hub double. No torch."""
    session.install("-e", ".[dev,publish]", f"huggingface_hub=={hub}")
    tests = ("tests/integration/test_publish.py", "tests/unit/test_card.py")
    session.run("pytest", *tests, "tests/unit/test_publish_plan.py", *session.posargs)


@nox.session(python=PY)
def image(session: nox.Session) -> None:
    """Build the serving image: `nox -s image -- [--local-base] [--stack slim]
    [--base-image REF] [--sglang-build NAME] [--ca-bundle PATH] [--push]`
    (all `glm51 image build` options; recorded in out/image/image.json). Where no registry is
    reachable, `--local-base` builds on the Debian base of `bash ci/base-image.sh`."""
    session.install("-e", ".", *_group("image"))
    session.run("glm51", "image", "build", *session.posargs)


@nox.session(python=PY)
def update_pins(session: nox.Session) -> None:
    """Re-resolve the image locks, the fork's git lock and the base digest where reachable
    (`glm51 image update-pins`; it says what it could not refresh)."""
    session.install("-e", ".", *_group("pins"))
    session.run("glm51", "image", "update-pins", *session.posargs)


@nox.session(python=PY)
def bench_quantize(session: nox.Session) -> None:
    """Peak RSS and time per layer of `glm51 quantize`: both modes at increasing depth (CPU),
    or `-- --geometry glm51`: GLM-5.1's real layer geometry, per-layer load/calibration/export
    time, peaks and a full-model projection (on CUDA when there is one, else a smaller CPU run);
    or `-- --nproc N`: N ranks (torchrun) against one process in the same run: per-layer time
    per rank, the layer read against its broadcast, the speed-up, the 8-GPU projection.
    On a GPU machine set GLM51_TORCH (as for `tests`) so that torch is a CUDA build."""
    _torch(session)
    session.install("-e", ".[quantize]")
    session.run("python", "benchmarks/quantize_memory.py", *session.posargs)


@nox.session(python=PY)
def bench_fidelity(session: nox.Session) -> None:
    """Peak RSS of `glm51 fidelity` at 2 and 8 layers (CPU; the ratio must stay <= 1.1), or
    `-- --geometry glm51`: one fidelity layer at GLM-5.1's geometry and a full-model projection
    on one GPU (on CUDA when there is one, else a smaller CPU run). Set GLM51_TORCH on a GPU
    machine, as for `tests`."""
    _torch(session)
    session.install("-e", ".[quantize]")
    session.run("python", "benchmarks/fidelity_memory.py", *session.posargs)


@nox.session(python=PY)
def rehearsal(session: nox.Session) -> None:
    """The main job on the embedded default, the whole release chain on the CPU with the tiny
    glm_moe_dsa model (`glm51 release --rehearsal`): build it, quantize it to NVFP4 with
    ModelOpt (coverage-gated), verify, fidelity (KL against BF16, gated), serve a BF16 copy
    with `transformers serve`, smoke it (protocol tier) and bench it (the rehearsal's gates),
    render the card, publish to a local folder (verified, then tagged). Resumable: a re-run
    skips the finished steps. Then the serve preflight and the launch command for the
    checkpoint. Everything lands in out/release/rehearsal-v0.0.0/."""
    _torch(session)
    session.install("-e", ".[quantize,publish,bench,serve-cpu]")
    session.run("glm51", "release", "--rehearsal", *session.posargs)
    checkpoint = str(REPO / "out" / "release" / "rehearsal-v0.0.0" / "checkpoint")
    session.run("glm51", "doctor", "--model", checkpoint, "--only", "checkpoint", "--only", "flags")
    session.run("glm51", "serve", "--dry-run", "--model", checkpoint)


@nox.session(python=PY)
def release(session: nox.Session) -> None:
    """`glm51 release` with its arguments, e.g. on the Blackwell runner:
    `nox -s release -- --version v1.2.3 --steps verify,gates --checkpoint /models/...`
    (what .github/workflows/release.yml runs through ci/release.sh; docs/release.md)."""
    _torch(session)
    session.install("-e", ".[quantize,publish,bench]", *_group("image"))
    session.run("glm51", "release", *session.posargs)


@nox.session(python=PY)
def docs(session: nox.Session) -> None:
    """Regenerate the generated references: docs/recipe.md and docs/cli.md."""
    session.install("-e", ".")
    session.run("glm51", "recipe", "schema", "-o", "docs/recipe.md")
    typer_docs = ("utils", "docs", "--name", "glm51", "--title", "glm51 command reference")
    session.run("python", "-m", "typer", "glm51.cli", *typer_docs, "--output", "docs/cli.md")
