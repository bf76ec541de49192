"""`glm51 verify` as one library call: a request, checked once before any hashing, run on
the checkpoint; the report written where asked. The CLI and the release both call
`run_verify`, then `raise_for` (a failed check is bad input: exit 3)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from glm51.checkpoint.names import DEEP_EXPERTS, DEEP_MAX_ERROR, DEEP_MAX_ERROR_LIMIT, MANIFEST
from glm51.checkpoint.verify import Report, verify
from glm51.errors import InputError
from glm51.outputs import check_free_space, check_output_file, write_text
from glm51.recipe.schema import Recipe
from glm51.ui import Progress, quiet


@dataclass(frozen=True, kw_only=True)
class VerifyRequest:
    checkpoint: Path
    write: bool = False  # record the manifest when every check passes
    hash_contents: bool = True  # False: structure and layout only (--no-hash)
    source: Path | None = None  # the BF16 checkpoint of the deep check
    experts: int = DEEP_EXPERTS  # NVFP4 experts the deep check samples
    max_error: float = DEEP_MAX_ERROR  # largest relative L2 error the deep check accepts
    threads: int | None = None  # files hashed at once; None: the CPU count
    report: Path | None = None  # write the report as JSON here

    def check(self) -> None:
        """Every option, before any hashing (each refusal names its option)."""
        if not self.checkpoint.is_dir():
            raise InputError(f"{self.checkpoint}: not a checkpoint folder")
        if self.experts < 1:
            raise InputError(f"--experts {self.experts}: expected at least 1")
        if not 0 <= self.max_error <= DEEP_MAX_ERROR_LIMIT:
            raise InputError(
                f"--max-error {self.max_error}: expected 0 to {DEEP_MAX_ERROR_LIMIT:g}"
            )
        if self.threads is not None and self.threads < 1:
            raise InputError(f"--threads {self.threads}: expected at least 1")
        if self.write and not self.hash_contents:
            raise InputError("--write needs the hashes: drop --no-hash")
        if self.source is not None and not self.source.is_dir():
            raise InputError(f"--source {self.source}: not a folder")
        if self.report is not None:
            inputs = {"CHECKPOINT": self.checkpoint, "--source": self.source}
            check_output_file(self.report, option="--report", inputs=inputs)
        folder = self.checkpoint
        if self.write and folder.is_dir() and not (folder / MANIFEST).exists():
            if not os.access(folder, os.W_OK):
                raise InputError(
                    f"{folder}: not writable by this user; --write cannot add {MANIFEST}"
                )
            # About 256 bytes per tensor: refused now, not after hours of hashing.
            need = (1 << 20) + 256 * _tensor_count(folder)
            check_free_space(folder, need, what=f"--write's {MANIFEST}", option="CHECKPOINT")


def run_verify(req: VerifyRequest, recipe: Recipe, *, progress: Progress = quiet) -> Report:
    """Every check the request asks for; the report, also written to ``req.report``."""
    req.check()
    report = verify(
        req.checkpoint,
        recipe,
        write=req.write,
        hash_contents=req.hash_contents,
        source=req.source,
        samples=req.experts,
        max_rel_error=req.max_error,
        threads=req.threads,
        progress=progress,
    )
    if req.report is not None:
        write_text(req.report, report.to_json())
    return report


def raise_for(report: Report) -> None:
    """A failed check is the checkpoint's fault: bad input (3), naming the first problem."""
    if not report.ok:
        first = report.problems[0]
        more = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
        raise InputError(f"{report.folder}: verify failed: {first}{more}")


def _tensor_count(checkpoint: Path) -> int:
    try:
        index = json.loads((checkpoint / "model.safetensors.index.json").read_text())
        return len(index.get("weight_map", {}))
    except (OSError, ValueError, AttributeError):
        return 0  # no readable index: verify itself names the problem
