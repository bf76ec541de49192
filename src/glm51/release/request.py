"""What one `glm51 release` run is asked to do: built once (from the CLI, or a test), checked
once before the run folder is touched, and handed whole to every step."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from glm51.errors import InputError
from glm51.release.names import REHEARSAL_STEPS, STEPS


@dataclass(frozen=True, kw_only=True)
class ReleaseRequest:
    version: str = "v0.0.0"
    rehearsal: bool = False
    checkpoint: Path | None = None  # the NVFP4 checkpoint a production release verifies
    source: Path | None = None  # its BF16 source: what the fidelity step measures it against
    fidelity_device: str = "cuda"  # where the production fidelity step walks the layers
    seed: int = 0  # rehearsal: the tiny model's seed
    samples: int = 16  # rehearsal: calibration conversations
    repo: Path = Path(".")  # the checkout the image step builds (its git sha and source)
    steps: tuple[str, ...] | None = None  # run only these; None: all

    def check(self) -> None:
        """The options that contradict each other; each refusal names its option."""
        if self.steps is not None and not self.steps:
            raise InputError(f"--steps: names no step; expected some of {', '.join(STEPS)}")
        known = REHEARSAL_STEPS if self.rehearsal else STEPS
        unknown = sorted(set(self.steps or ()) - set(known))
        if unknown:
            raise InputError(f"--steps: unknown {unknown}; expected some of {list(known)}")
        if self.rehearsal:
            for option, value in (("--checkpoint", self.checkpoint), ("--source", self.source)):
                if value is not None:
                    raise InputError(
                        f"{option}: not used with --rehearsal (it builds and quantizes the "
                        "tiny model)"
                    )
            return
        if self.checkpoint is None and set(self.steps or STEPS) - {"image"}:
            raise InputError(
                "--checkpoint PATH (or GLM51_CHECKPOINT): the NVFP4 checkpoint to release "
                "(needed by every step but image)"
            )
        if self.source is None and "fidelity" in (self.steps or STEPS):
            raise InputError(
                "--source PATH (or GLM51_SOURCE): the BF16 checkpoint the fidelity step "
                "measures --checkpoint against"
            )
        # A typo found here, not hours later when the step that reads the folder starts.
        for option, path in (("--checkpoint", self.checkpoint), ("--source", self.source)):
            if path is not None and not path.is_dir():
                raise InputError(f"{option} {path}: no such folder (a checkpoint folder)")
