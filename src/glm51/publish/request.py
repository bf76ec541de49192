"""What `glm51 card` and `glm51 publish` are asked to do: built once (from the CLI, or a
release step), checked once before anything is read, rendered or hashed, passed whole."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from glm51.errors import InputError
from glm51.options import SECONDS_MAX
from glm51.outputs import check_output_file
from glm51.publish.card import Records
from glm51.publish.hub import DEFAULT_TIMEOUT_S, check_endpoint
from glm51.publish.plan import DEFAULT_COMMIT_BYTES, VERSION, check_names
from glm51.records import (
    BenchRecord,
    FidelityRecord,
    ImageRecord,
    QuantizeRecord,
    SmokeRecord,
    read_record,
)

ASSETS = "assets"  # where the card links its plot, beside the card (and in the Hub repo)


def plot_link(plot: Path) -> str:
    return f"{ASSETS}/{plot.name}"


@dataclass(frozen=True, kw_only=True)
class RunRecords:
    """The release run's records a card shows (each optional: the card says what is absent)."""

    image_record: Path | None = None
    quantize_record: Path | None = None
    smoke_record: Path | None = None
    bench_record: Path | None = None
    plot: Path | None = None  # the throughput plot (PNG), linked as assets/NAME
    fidelity_record: Path | None = None  # without it the card says no KL was measured
    fidelity_plot: Path | None = None  # the fidelity plot (PNG), linked as assets/NAME

    def inputs(self) -> dict[str, Path | None]:
        return {
            "--image-record": self.image_record,
            "--quantize-record": self.quantize_record,
            "--smoke-record": self.smoke_record,
            "--bench-record": self.bench_record,
            "--plot": self.plot,
            "--fidelity-record": self.fidelity_record,
            "--fidelity-plot": self.fidelity_plot,
        }

    def plots(self) -> dict[str, Path]:
        """The plots given, by option: each is linked (and copied) as assets/NAME."""
        given = {"--plot": self.plot, "--fidelity-plot": self.fidelity_plot}
        return {option: path for option, path in given.items() if path is not None}

    def check(self) -> None:
        for option, path in self.inputs().items():
            if path is not None and not path.is_file():
                raise InputError(f"{option} {path}: does not exist (or is not a file)")
        if len({path.name for path in self.plots().values()}) < len(self.plots()):
            raise InputError(
                "--plot and --fidelity-plot: the same file name; each is linked as assets/NAME"
            )

    def read(self) -> Records:
        read = lambda path, cls: read_record(path, cls) if path else None  # noqa: E731
        return Records(
            image=read(self.image_record, ImageRecord),
            quantize=read(self.quantize_record, QuantizeRecord),
            smoke=read(self.smoke_record, SmokeRecord),
            bench=read(self.bench_record, BenchRecord),
            fidelity=read(self.fidelity_record, FidelityRecord),
        )


@dataclass(frozen=True, kw_only=True)
class CardRequest:
    records: RunRecords = RunRecords()
    output: Path | None = None  # None: only return the text (the CLI prints it)
    version: str | None = None  # the release version, vX.Y.Z
    profile: str | None = None  # the serve profile of the launch command; None: the default

    def check(self) -> None:
        if self.version is not None and not VERSION.match(self.version):
            raise InputError(
                f"--version {self.version!r}: expected vMAJOR.MINOR.PATCH (e.g. v1.0.0)"
            )
        self.records.check()
        if self.output is not None:  # before anything is read or rendered
            check_output_file(self.output, option="--output", inputs=self.records.inputs())
            for option, (_, beside) in self.plots_beside().items():
                if beside.parent.is_dir():  # never over a file not glm51's
                    check_output_file(beside, option=f"--output (its {option})", inputs={})

    def plots_beside(self) -> dict[str, tuple[Path, Path]]:
        """Each plot to copy beside the written card, by option: (the plot, where it goes).
        Empty without a card file; a plot already in place is not copied."""
        if self.output is None:
            return {}
        beside = {
            o: (p, self.output.parent / plot_link(p)) for o, p in self.records.plots().items()
        }
        return {o: (p, b) for o, (p, b) in beside.items() if b.resolve() != p.resolve()}


@dataclass(frozen=True, kw_only=True)
class PublishRequest:
    checkpoint: Path
    repo: str  # OWNER/NAME
    version: str  # the tag, vX.Y.Z (never moved)
    card: Path | None = None  # a rendered card; None: rendered from the records
    records: RunRecords = RunRecords()
    profile: str | None = None  # the card's launch command (when it is rendered here)
    dry_run: bool = False  # the plan only: nothing hashed, uploaded or tagged
    commit_bytes: int = DEFAULT_COMMIT_BYTES  # weights per commit
    hub_endpoint: str | None = None  # None: HF_ENDPOINT, or huggingface.co
    hub_timeout_s: float = DEFAULT_TIMEOUT_S
    to: Path | None = None  # a local folder in place of the Hub (the rehearsal's)
    report: Path | None = None  # write the outcome as JSON here

    def check(self) -> None:
        """Every option, before hours of hashing and uploading (each refusal names its option)."""
        check_names(self.repo, self.version)
        if not self.checkpoint.is_dir():
            raise InputError(f"CHECKPOINT {self.checkpoint}: not a folder")
        if self.card is not None and not self.card.is_file():
            raise InputError(f"--card {self.card}: does not exist (or is not a file)")
        self.records.check()
        if self.commit_bytes < 1:
            raise InputError(f"--commit-gb {self.commit_bytes / 1e9:g}: expected more than 0")
        if not 1 <= self.hub_timeout_s <= SECONDS_MAX:
            raise InputError(f"--hub-timeout {self.hub_timeout_s:g}: expected 1 to {SECONDS_MAX:g}")
        if self.to is not None:
            for option, given in (
                ("--dry-run", self.dry_run),
                ("--hub-endpoint", self.hub_endpoint),
            ):
                if given:
                    raise InputError(f"{option}: not with --to (a local folder, not the Hub)")
        else:
            check_endpoint(self.hub_endpoint)
        if self.report is not None:  # never inside an input
            inputs = {"CHECKPOINT": self.checkpoint, "--card": self.card, "--to": self.to}
            check_output_file(self.report, option="--report", inputs=inputs | self.records.inputs())
