"""verify's contents check: sizes and sha256 against glm51-manifest.json (and per-tensor
digests to name what changed); ``write=True`` records the manifest when everything else
passes."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from glm51.checkpoint import manifest as mf
from glm51.checkpoint.safetensors import ShardHeader
from glm51.checkpoint.verify.report import Report
from glm51.recipe.schema import Recipe
from glm51.ui import Progress


def check_contents(
    folder: Path,
    headers: Mapping[str, ShardHeader],
    report: Report,
    *,
    write: bool,
    recipe: Recipe,
    threads: int | None,
    progress: Progress,
) -> None:
    path = folder / mf.MANIFEST
    if not path.exists():
        if not write:
            report.manifest = "absent"
            report.notes.append(
                f"no {mf.MANIFEST}: the contents were not checked against recorded digests "
                "(`glm51 verify --write` records one once everything else passes)"
            )
            return
        if report.problems:
            report.manifest = "not-written"
            report.notes.append(f"{mf.MANIFEST} not written: the checks above failed")
            return
        start = time.monotonic()
        built = mf.build(folder, headers, recipe=recipe, threads=threads, progress=progress)
        report.hash_seconds = time.monotonic() - start
        report.hashed_bytes = sum(e.size for e in built.all_files().values())
        mf.write(built, folder)
        report.manifest = "written"
        return

    manifest = mf.read(path)
    before = len(report.problems)
    for m in mf.compare_headers(manifest, headers):
        report.add("manifest-tensor", m.where, m.message)
    present = mf.recorded_files(folder)
    for name in sorted(set(manifest.all_files()) - set(present)):
        if not (folder / name).exists():
            report.add("manifest-file", name, f"is in {mf.MANIFEST} but missing from the folder")
    jobs = {n: (folder / n, None) for n in present}
    start = time.monotonic()
    digests = mf.hash_files(jobs, threads=threads, progress=progress)
    # A shard that differs is read once more with its tensors, to name the ones that changed.
    changed = {
        n: (folder / n, headers[n])
        for n, d in digests.items()
        if n in headers
        and (e := manifest.entry(n)) is not None
        and d.sha256 != e.sha256
        and d.size == e.size
    }
    if changed:
        digests.update(mf.hash_files(changed, threads=threads))
    report.hash_seconds = time.monotonic() - start
    report.hashed_bytes = sum(d.size for d in digests.values())
    for m in mf.compare_files(manifest, digests):
        report.add("manifest-digest", m.where, m.message)
    report.manifest = "matched" if len(report.problems) == before else "mismatched"
    if write and report.manifest == "matched":
        report.notes.append(f"{mf.MANIFEST} already matches the folder: left as it is")
    elif write:
        report.notes.append(f"{mf.MANIFEST} kept: it does not match (fix the folder, not it)")
