"""Run ordered steps into a run directory; skip the ones whose record is still valid.

Each step's key is a digest of its own inputs, of the key of the step before it and of the
bytes of that step's record, so a changed input re-runs that step and everything after it
(as far as an output really changed), and nothing before. The run
manifest (`run.json`) is rewritten after every step: a run killed midway resumes at the
first step that did not finish. A failing step stops the chain with its own exit code
(a missed gate: 5), before anything after it (publish, tags) can run.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glm51.errors import Glm51Error, InputError
from glm51.records.base import read_record, utc_now, write_record
from glm51.records.release import RunManifest, StepEntry
from glm51.release.request import ReleaseRequest
from glm51.ui import Log

RUN_MANIFEST = "run.json"


@dataclass
class Context:
    """What steps share: the run directory, the release's request, and the outputs of earlier
    steps."""

    run_dir: Path
    request: ReleaseRequest = field(default_factory=ReleaseRequest)
    outputs: dict[str, Any] = field(default_factory=dict)  # step name -> what it returned
    log: Log = lambda _: None

    def path(self, name: str) -> Path:
        return self.run_dir / name


@dataclass(frozen=True)
class Outcome:
    record: str | None  # the step's record file, relative to the run directory
    message: str = ""
    value: Any = None  # handed to later steps as context.outputs[step]


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[Context], Outcome]
    inputs: Callable[[Context], Mapping[str, Any]] = lambda _: {}
    # Whether a finished step's outputs are still there and sound (default: its record file
    # exists); also restores what later steps need into context.outputs.
    still_valid: Callable[[Context, StepEntry], bool] | None = None


def recipe_digest(recipe: Any) -> str:
    """What the recipe is, for a step's key and the run manifest (one place computes it)."""
    return hashlib.sha256(recipe.model_dump_json().encode()).hexdigest()


def step_key(name: str, inputs: Mapping[str, Any], previous: str) -> str:
    text = json.dumps({"step": name, "inputs": inputs, "after": previous}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _chained(key: str, context: Context, record: str | None) -> str:
    """The key the next step builds on: this one's, and what this one's record holds."""
    h = hashlib.sha256(key.encode())
    if record is not None and (context.run_dir / record).is_file():
        h.update((context.run_dir / record).read_bytes())
    return h.hexdigest()


def _record_exists(context: Context, entry: StepEntry) -> bool:
    return entry.record is None or (context.run_dir / entry.record).is_file()


def load_manifest(run_dir: Path) -> RunManifest | None:
    path = run_dir / RUN_MANIFEST
    return read_record(path, RunManifest) if path.is_file() else None


def run_steps(
    steps: list[Step],
    context: Context,
    manifest: RunManifest,
    *,
    only: Sequence[str] | None = None,
    log: Log = lambda _: None,
) -> RunManifest:
    """Run ``steps`` in order (``only``: just these; the others must have run already, in an
    earlier job of the same release, and are chained through as they finished)."""
    known = [s.name for s in steps]
    unknown = sorted(set(only or ()) - set(known))
    if unknown:
        raise InputError(
            f"unknown step(s) {', '.join(unknown)}; expected some of {', '.join(known)}"
        )
    previous_key = ""
    entries: dict[str, StepEntry] = {s.name: s for s in manifest.steps}
    last = max((known.index(n) for n in only), default=-1) if only else len(steps) - 1

    def save() -> None:
        nonlocal manifest
        ordered = tuple(entries[n] for n in known if n in entries)
        manifest = manifest.model_copy(update={"steps": ordered})
        write_record(manifest, context.run_dir / RUN_MANIFEST)

    for index, step in enumerate(steps[: last + 1]):
        old = entries.get(step.name)
        if only is not None and step.name not in only:
            if not (old and old.status == "done"):
                raise InputError(
                    f"step {step.name} has not run in {context.run_dir}; it comes before "
                    f"{', '.join(n for n in known[index + 1 :] if n in only)}: run it first"
                )
            # Done in an earlier job: only if with these inputs (the same checkpoint, recipe).
            if step_key(step.name, step.inputs(context), previous_key) != old.key:
                raise InputError(
                    f"step {step.name} in {context.run_dir} ran with other inputs (another "
                    f"checkpoint, recipe or earlier result): run it again (--steps {step.name},...)"
                )
            previous_key = _chained(old.key, context, old.record)
            continue
        key = step_key(step.name, step.inputs(context), previous_key)
        valid = step.still_valid or _record_exists
        if old and old.status == "done" and old.key == key and valid(context, old):
            log(f"{step.name}: done already ({old.message or old.record}), skipped")
            previous_key = _chained(key, context, old.record)
            continue
        started, clock = utc_now(), time.monotonic()
        entries[step.name] = StepEntry(
            name=step.name, status="running", key=key, started_at=started
        )
        save()
        log(f"{step.name}: running")
        try:
            outcome = step.run(context)
        except Glm51Error as exc:
            entries[step.name] = StepEntry(
                name=step.name,
                status="failed",
                key=key,
                started_at=started,
                seconds=round(time.monotonic() - clock, 1),
                message=str(exc).splitlines()[0][:500],
                exit_code=exc.exit_code,
            )
            save()
            raise
        context.outputs[step.name] = outcome.value
        previous_key = _chained(key, context, outcome.record)
        entries[step.name] = StepEntry(
            name=step.name,
            status="done",
            key=key,
            record=outcome.record,
            started_at=started,
            seconds=round(time.monotonic() - clock, 1),
            message=outcome.message,
        )
        save()
        log(f"{step.name}: {outcome.message or 'done'}")
    return manifest
