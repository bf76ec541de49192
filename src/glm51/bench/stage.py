"""`glm51 bench` as one library call: a request, checked once, measured against a served
endpoint; bench.json, bench.md and bench.png written; a missed gate raised as GateFailed.
The CLI and the release both call `run_bench`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from glm51.apikey import KeySource
from glm51.bench import measure
from glm51.bench.report import markdown, plot
from glm51.bench.run import FigureSpec, Session, Settings, bench, card_figures
from glm51.endpoint.client import Endpoint, base_url, sync_client
from glm51.errors import GateFailed, InputError
from glm51.outputs import claim_output_folder, write_text
from glm51.recipe.schema import Recipe
from glm51.records import BenchFigure, BenchRecord, write_record
from glm51.records.bench import FIGURES


@dataclass(frozen=True, kw_only=True)
class BenchRequest:
    endpoint: str  # the server's base URL
    out_dir: Path = Path("out/bench")
    figures: tuple[str, ...] = FIGURES
    settings: Settings = field(default_factory=Settings)
    context_32k: int = 32768
    context_128k: int = 131072
    served_name: str | None = None  # None: the recipe's served_name
    hardware: str = ""
    profile: str | None = None
    gate_set: Literal["release", "rehearsal"] = "release"
    api_key: KeySource = field(default_factory=KeySource)  # where the key comes from, if any

    def specs(self) -> list[FigureSpec]:
        known = {s.name: s for s in card_figures(self.context_32k, self.context_128k)}
        return [known[n] for n in self.figures]

    def check(self) -> None:
        """Every option, before anything is measured (each refusal names its option)."""
        known = list(FIGURES)
        if not self.figures:
            raise InputError(f"--figures '': names no figure; expected some of {sorted(known)}")
        if len(set(self.figures)) != len(self.figures):
            raise InputError(f"--figures {','.join(self.figures)!r}: names a figure twice")
        unknown = [n for n in self.figures if n not in known]
        if unknown:
            raise InputError(f"--figures: unknown {unknown}; expected some of {sorted(known)}")
        s = self.settings
        for option, value, least in (
            ("--warmup", s.warmup_s, 0),
            ("--duration", s.duration_s, 0.1),
            ("--max-tokens", s.max_tokens, 2),
            ("--stall-timeout", s.timeout_s, 0.1),
            ("--max-failed-requests", s.max_failed_requests, 0),
            ("--context-32k", self.context_32k, 1),
            ("--context-128k", self.context_128k, 1),
        ):
            if value < least:
                raise InputError(f"{option} {value}: expected at least {least}")
        if self.gate_set not in ("release", "rehearsal"):
            raise InputError(f"--gates {self.gate_set}: expected release or rehearsal")
        base_url(self.endpoint)  # bad input (exit 3) before anything is measured
        self.api_key.read()  # a missing or empty key file: exit 3 before anything is measured
        # Checked before minutes of measuring; made when there is something to write.
        claim_output_folder(self.out_dir, option="--out", command="bench", create=False)


def run_bench(
    req: BenchRequest,
    recipe: Recipe,
    *,
    on_start: Callable[[FigureSpec], Callable[[float], None]] = lambda _s: lambda _t: None,
    on_done: Callable[[BenchFigure], None] = lambda _f: None,
    log: Callable[[str], None] = lambda _: None,
) -> BenchRecord:
    """Measure, write OUT/bench.json, bench.md and bench.png; returns the record (raise_for
    turns a missed gate into GateFailed)."""
    req.check()
    gates = recipe.gates if req.gate_set == "release" else recipe.rehearsal.gates
    model = req.served_name or recipe.model.served_name
    key = req.api_key.read()
    with sync_client(req.settings.timeout_s, key) as http:
        sync = Endpoint(base_url(req.endpoint), model, http)
        sync.check_access()  # a missing or wrong key (401) is exit 3, before any measuring
        session = Session(sync, sync.url, model, req.settings, api_key=key)
        record = bench(
            session,
            req.specs(),
            gates,
            profile=req.profile,
            hardware=req.hardware,
            on_start=on_start,
            on_done=on_done,
        )
    claim_output_folder(req.out_dir, option="--out", command="bench")
    write_record(record, req.out_dir / "bench.json")
    write_text(req.out_dir / "bench.md", markdown(record))
    plot(record, req.out_dir / "bench.png")
    log(f"glm51 bench: wrote {req.out_dir}/bench.json, bench.md, bench.png")
    return record


def raise_for(record: BenchRecord) -> None:
    missed = measure.missed(record.figures)
    if missed:
        raise GateFailed(f"{len(missed)} gate(s) missed: {'; '.join(missed)}")
