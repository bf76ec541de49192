"""`glm51 quantize --nproc N`: N ranks of the same command on this box, started by torchrun's
own launcher (torch.distributed.launcher), in process.

Why the launcher's API and not a `torchrun` child through glm51.proc: it is the same agent
code `torchrun` runs (rendezvous on a free port, one process per rank, every rank stopped when
one fails), and it hands back each failed rank as data (its rank, exit code or signal) where
the `torchrun` command only prints them. So the error can name the rank and keep the kind of
the rank's own error (exit 3, 5 or 6). The argv each rank runs is logged as glm51.proc logs
its commands. Each rank is `python -m glm51 quantize ...` with the request's options, the very
command a user starts with `torchrun -m glm51 quantize ...` (one code path for both).
"""

from __future__ import annotations

import logging
import shlex
import signal
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from glm51.errors import GateFailed, Glm51Error, InfraError, InputError
from glm51.quantize.pipeline import RECORD

if TYPE_CHECKING:
    from glm51.quantize.stage import Request

log = logging.getLogger("glm51.proc")  # where every command glm51 starts is logged

_KIND_OF_EXIT = {3: InputError, 5: GateFailed, 6: InfraError}


@dataclass(frozen=True)
class Launched:
    """What the parent of `--nproc` ranks knows: where rank 0 wrote the results."""

    output: Path
    work_dir: Path
    ranks: int
    record_path: Path
    coverage_md: Path


def rank_argv(req: Request) -> list[str]:
    """The command every rank runs: the request's options, without --nproc."""
    calib = req.calibration
    argv = ["-m", "glm51", "quantize", "--model", str(req.model), "--output", str(req.output)]
    argv += ["--work-dir", str(req.work_dir), "--device", req.device, "--bounded-memory"]
    argv += ["--chunks", str(calib.chunks), "--max-length", str(calib.max_length)]
    for f in calib.files:
        argv += ["--calib-file", str(f)]
    if calib.data_dir is not None:
        argv += ["--data-dir", str(calib.data_dir)]
    if req.recipe_file is not None:
        argv += ["--recipe", str(req.recipe_file)]
    if req.overwrite:
        argv.append("--overwrite")
    return argv


def _describe(rank: int, failure) -> tuple[str, int]:
    """('rank 1 was killed by SIGKILL', -9) or ('rank 0 exited with 5', 5)."""
    code = int(failure.exitcode)
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"rank {rank} was killed by {name}", code
    return f"rank {rank} exited with {code}", code


def failed(nproc: int, failures: dict) -> Glm51Error:
    """The typed error for failed ranks, naming the one that failed first of its own accord:
    killed by a signal (not the SIGTERM the launcher stops the others with), else an error
    of its own (exit 3 or 5), else the earliest other failure; the kind is its error's."""
    described = {r: _describe(r, f) for r, f in sorted(failures.items())}

    def blame(rank: int) -> tuple[int, int, int]:
        code = described[rank][1]
        order = 3 if code == -signal.SIGTERM else 0 if code < 0 else 1 if code in (3, 5) else 2
        return order, int(getattr(failures[rank], "timestamp", 0)), rank

    first = min(described, key=blame)
    text, code = described[first]
    others = [r for r in described if r != first]
    tail = f"; rank(s) {', '.join(map(str, others))} stopped with it" if others else ""
    kind = _KIND_OF_EXIT.get(code, InfraError)
    return kind(
        f"{text} (of {nproc} ranks; its own error, if it could print one, is above){tail}. "
        "Nothing was swapped into --output; a re-run resumes at the first unfinished "
        "calibration unit"
    )


def launch(req: Request) -> Launched:
    """Start `req.nproc` ranks on this box and wait for them; a failed rank stops them all."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    argv = rank_argv(req)
    log.info("$ torchrun --standalone --nproc-per-node %d %s", req.nproc, shlex.join(argv))
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=req.nproc,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",  # a free port, chosen by the OS (torchrun --standalone)
        max_restarts=0,  # a restart would redo the work; a re-run resumes instead
        monitor_interval=0.1,
    )
    try:
        elastic_launch(config, sys.executable)(*argv)
    except ChildFailedError as exc:
        raise failed(req.nproc, exc.failures) from None
    except SignalException as exc:  # this process was told to stop: the ranks were stopped
        raise InfraError(
            f"stopped by {exc.sigval.name}: the {req.nproc} ranks were stopped with it; nothing "
            "was swapped into --output, and a re-run resumes at the first unfinished unit"
        ) from None
    except (RuntimeError, OSError) as exc:  # the rendezvous itself
        raise InfraError(f"could not start {req.nproc} ranks on this box: {exc}") from None
    return Launched(
        output=req.output,
        work_dir=req.work_dir,
        ranks=req.nproc,
        record_path=req.work_dir / RECORD,
        coverage_md=req.work_dir / "coverage" / "coverage.md",
    )
