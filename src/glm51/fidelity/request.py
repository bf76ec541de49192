"""What one `glm51 fidelity` run is asked to do: built once (from the CLI or the release),
checked once before any work, passed whole to `run_fidelity`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from glm51.checkpoint.folder import Checkpoint
from glm51.errors import InputError
from glm51.fidelity.inputs import check_held_out, check_pair
from glm51.outputs import check_no_overlap, claim_output_folder
from glm51.quantize.device import check_device
from glm51.recipe.fidelity import FidelityBudget, FidelityGates
from glm51.recipe.schema import Recipe

GATE_SETS = ("release", "rehearsal")


@dataclass(frozen=True, kw_only=True)
class FidelityRequest:
    source: Path  # the BF16 checkpoint folder
    checkpoint: Path  # its NVFP4 quantization (or the source itself: KL 0, a self-check)
    out_dir: Path = Path("out/fidelity")
    text_files: tuple[Path, ...] = ()  # local JSONL ({"messages": [...]}) replacing the manifest
    data_dir: Path | None = None  # local source files for the recipe's fidelity manifest
    coverage: Path | None = None  # quantize's merged.safetensors: calibration tokens per expert
    device: str = "cpu"
    gate_set: Literal["release", "rehearsal"] = "release"
    worst_experts: int = 10  # experts listed in the report, worst first

    def inputs(self) -> dict[str, Path | None]:
        named: dict[str, Path | None] = {
            "--source": self.source,
            "--checkpoint": self.checkpoint,
            "--data-dir": self.data_dir,
            "--coverage": self.coverage,
        }
        named.update({f"--text-file {p}": p for p in self.text_files})
        return named

    def budget(self, recipe: Recipe) -> FidelityBudget:
        """[fidelity] for a release, [rehearsal.fidelity] for the rehearsal."""
        return recipe.fidelity if self.gate_set == "release" else recipe.rehearsal.fidelity

    def budget_key(self) -> str:
        """Where budget() comes from, as a refusal names it."""
        return "fidelity" if self.gate_set == "release" else "rehearsal.fidelity"

    def thresholds(self, recipe: Recipe) -> FidelityGates:
        """[gates.fidelity] for a release, [rehearsal.gates.fidelity] for the rehearsal."""
        gates = recipe.gates if self.gate_set == "release" else recipe.rehearsal.gates
        return gates.fidelity

    def check(self, recipe: Recipe) -> None:
        """Every refusal before any work, each naming its option (exit 3)."""
        check_device(self.device)
        if self.gate_set not in GATE_SETS:
            raise InputError(f"--gates {self.gate_set}: expected release or rehearsal")
        if self.worst_experts < 1:
            raise InputError(f"--worst-experts {self.worst_experts}: expected at least 1")
        for option, path in (("--source", self.source), ("--checkpoint", self.checkpoint)):
            if not path.is_dir():
                raise InputError(f"{option} {path}: no such folder (a checkpoint folder)")
        for option, path in (
            ("--coverage", self.coverage),
            *(("--text-file", p) for p in self.text_files),
        ):
            if path is not None and not path.is_file():
                raise InputError(f"{option} {path}: no such file")
        if self.data_dir is not None and not self.data_dir.is_dir():
            raise InputError(f"--data-dir {self.data_dir}: no such folder")
        check_no_overlap(self.out_dir, self.inputs(), "--out")
        claim_output_folder(self.out_dir, option="--out", command="fidelity", create=False)
        if not self.text_files:
            check_held_out(recipe)
        tokens = self.budget(recipe).tokens_per_sequence
        longest = Checkpoint(self.source).config.get("max_position_embeddings")
        if longest and tokens > int(longest):
            raise InputError(
                f"{recipe.source}: {self.budget_key()}.tokens_per_sequence {tokens} is more "
                f"than the source's max_position_embeddings ({longest})"
            )
        check_pair(Checkpoint(self.source), Checkpoint(self.checkpoint))
