"""Expert coverage: tokens routed to every (MoE layer, routed expert) during calibration.

An expert that calibration never reached gets its scales from nothing: its weights are
exported with an `input_scale` that was never measured. The gate fails on those.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from glm51.errors import GateFailed, InputError
from glm51.outputs import os_errors, save_figure, write_bytes, write_text
from glm51.recipe.calibration import Coverage

Pair = tuple[int, int]  # (real layer index, expert index)


@dataclass(frozen=True, eq=False)
class ExpertCounts:
    """Counts for one pass (or a merge of passes).

    counts[i, e]: tokens routed to expert e of MoE layer layers[i].
    first_seen[i, e]: index, in the pass's token stream, of the first token routed there
    (-1: never). tokens: tokens the pass fed through the model.
    """

    layers: tuple[int, ...]
    counts: np.ndarray
    first_seen: np.ndarray
    tokens: int

    def __post_init__(self) -> None:
        counts = np.asarray(self.counts, dtype=np.int64)
        first = np.asarray(self.first_seen, dtype=np.int64)
        if counts.ndim != 2 or counts.shape[0] != len(self.layers):
            raise ValueError(f"counts must be [layers={len(self.layers)}, experts]")
        if first.shape != counts.shape:
            raise ValueError("first_seen must have the shape of counts")
        if np.any((counts > 0) != (first >= 0)):
            raise ValueError("first_seen must be >= 0 exactly where counts > 0")
        counts.setflags(write=False)
        first.setflags(write=False)
        object.__setattr__(self, "layers", tuple(int(x) for x in self.layers))
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "first_seen", first)

    @classmethod
    def empty(cls, layers: Sequence[int], experts: int) -> ExpertCounts:
        shape = (len(layers), experts)
        return cls(tuple(layers), np.zeros(shape, np.int64), np.full(shape, -1, np.int64), 0)

    @classmethod
    def from_routing(
        cls, layers: Sequence[int], experts: int, routed: Sequence[np.ndarray], tokens: int
    ) -> ExpertCounts:
        """From top-k expert ids per layer: routed[i] is int [tokens, k] in stream order.

        The reference way to count (tests use it); the router hook counts incrementally.
        """
        counts = np.zeros((len(layers), experts), np.int64)
        first = np.full((len(layers), experts), -1, np.int64)
        for i, ids in enumerate(routed):
            ids = np.asarray(ids, dtype=np.int64).reshape(tokens, -1)
            counts[i] = np.bincount(ids.ravel(), minlength=experts)
            # Flattened row-major, ids are in token order: the first occurrence is the answer.
            uniq, at = np.unique(ids.ravel(), return_index=True)
            first[i, uniq] = at // max(ids.shape[1], 1)
        return cls(tuple(layers), counts, first, tokens)

    @property
    def experts(self) -> int:
        return int(self.counts.shape[1])

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        with os_errors(path.parent):
            path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(
            buf,
            layers=np.array(self.layers, np.int64),
            counts=self.counts,
            first_seen=self.first_seen,
            tokens=np.int64(self.tokens),
        )
        return write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: Path | str) -> ExpertCounts:
        try:
            with np.load(path) as npz:
                return cls(
                    tuple(npz["layers"].tolist()),
                    npz["counts"],
                    npz["first_seen"],
                    int(npz["tokens"]),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(f"{path}: not an expert-counts file ({exc})") from exc


class ExpertCounter:
    """Accumulates what a router hook sees into ExpertCounts.

    `add(layer, ids, start)` takes the top-k expert ids [tokens, k] one MoE layer chose for a
    batch whose first token is at `start` in the pass's token stream. A (layer, start) pair
    already added is ignored, so replaying a layer (layerwise calibration runs routers
    again) cannot count a token twice.
    """

    def __init__(self, layers: Sequence[int], experts: int) -> None:
        self.layers = tuple(int(x) for x in layers)
        self.experts = experts
        self._row = {layer: i for i, layer in enumerate(self.layers)}
        self._counts = np.zeros((len(self.layers), experts), np.int64)
        self._first = np.full((len(self.layers), experts), -1, np.int64)
        self._added: set[tuple[int, int]] = set()
        self._end = 0

    def add(self, layer: int, ids: Any, start: int) -> bool:
        """Count one batch of one layer; False when it was already counted."""
        if (layer, start) in self._added:
            return False
        if layer not in self._row:
            raise ValueError(f"layer {layer} is not one of the MoE layers {self.layers}")
        ids = _as_numpy(ids)
        ids = ids.reshape(ids.shape[0], -1) if ids.ndim else ids.reshape(1, 1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.experts):
            raise ValueError(f"layer {layer}: expert ids outside [0, {self.experts})")
        i, tokens = self._row[layer], ids.shape[0]
        self._counts[i] += np.bincount(ids.ravel(), minlength=self.experts)
        uniq, at = np.unique(ids.ravel(), return_index=True)
        first = start + at // max(ids.shape[1], 1)
        current = self._first[i, uniq]
        self._first[i, uniq] = np.where(current < 0, first, np.minimum(current, first))
        self._added.add((layer, start))
        self._end = max(self._end, start + tokens)
        return True

    def result(self, tokens: int | None = None) -> ExpertCounts:
        """The counts; tokens defaults to the end of the furthest batch added."""
        return ExpertCounts(
            self.layers,
            self._counts.copy(),
            self._first.copy(),
            self._end if tokens is None else tokens,
        )


def _as_numpy(ids: Any) -> np.ndarray:
    if hasattr(ids, "detach"):  # a torch tensor, possibly on the GPU
        ids = ids.detach().to("cpu").numpy()
    return np.asarray(ids, dtype=np.int64)


def merge(parts: Sequence[ExpertCounts]) -> ExpertCounts:
    """Passes in order, as if their token streams were one: counts add, first_seen of a later
    pass is offset by the tokens of the passes before it, and the earliest sighting wins."""
    if not parts:
        raise ValueError("nothing to merge")
    layers, experts = parts[0].layers, parts[0].experts
    counts = np.zeros((len(layers), experts), np.int64)
    first = np.full((len(layers), experts), -1, np.int64)
    offset = 0
    for part in parts:
        if part.layers != layers or part.experts != experts:
            raise InputError(
                f"cannot merge expert counts of layers {part.layers} x {part.experts} experts "
                f"into {layers} x {experts}"
            )
        counts += part.counts
        shifted = np.where(part.first_seen >= 0, part.first_seen + offset, -1)
        unseen = first < 0
        first = np.where(unseen, shifted, np.where(shifted >= 0, np.minimum(first, shifted), first))
        offset += part.tokens
    return ExpertCounts(layers, counts, first, offset)


# -- evaluation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerStats:
    layer: int
    min: int
    median: float
    max: int
    unseen: int
    tokens_until_all_seen: int | None  # None: some expert never seen


@dataclass(frozen=True)
class PassCoverage:
    name: str
    tokens: int
    experts: int
    layers: tuple[LayerStats, ...]
    failing: tuple[Pair, ...]  # count < fail_below
    warning: tuple[Pair, ...]  # fail_below <= count < warn_below
    counts: ExpertCounts

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "tokens": self.tokens,
            "experts": self.experts,
            "layers": [s.__dict__ for s in self.layers],
            "failing": [list(p) for p in self.failing],
            "warning": [list(p) for p in self.warning],
        }


@dataclass(frozen=True)
class CoverageReport:
    fail_below: int
    warn_below: int
    passes: tuple[PassCoverage, ...]
    merged: PassCoverage

    @property
    def ok(self) -> bool:
        return self.merged.tokens > 0 and not self.merged.failing

    def as_dict(self) -> dict:
        return {
            "fail_below": self.fail_below,
            "warn_below": self.warn_below,
            "ok": self.ok,
            "merged": self.merged.as_dict(),
            "passes": [p.as_dict() for p in self.passes],
        }


def _below(counts: ExpertCounts, low: int, high: int) -> tuple[Pair, ...]:
    rows, cols = np.nonzero((counts.counts >= low) & (counts.counts < high))
    return tuple(
        (counts.layers[r], int(c)) for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
    )


def _evaluate_one(name: str, counts: ExpertCounts, coverage: Coverage) -> PassCoverage:
    stats = []
    for i, layer in enumerate(counts.layers):
        row, first = counts.counts[i], counts.first_seen[i]
        stats.append(
            LayerStats(
                layer=layer,
                min=int(row.min()),
                median=float(np.median(row)),
                max=int(row.max()),
                unseen=int((row == 0).sum()),
                tokens_until_all_seen=None if (first < 0).any() else int(first.max()) + 1,
            )
        )
    return PassCoverage(
        name=name,
        tokens=counts.tokens,
        experts=counts.experts,
        layers=tuple(stats),
        failing=_below(counts, np.iinfo(np.int64).min, coverage.fail_below),
        warning=_below(counts, coverage.fail_below, coverage.warn_below),
        counts=counts,
    )


def evaluate(per_pass: Mapping[str, ExpertCounts], coverage: Coverage) -> CoverageReport:
    """Per pass (in the mapping's order, which is the pass order) and merged."""
    if not per_pass:
        raise InputError("no calibration pass produced expert counts")
    passes = tuple(_evaluate_one(n, c, coverage) for n, c in per_pass.items())
    merged = _evaluate_one("merged", merge(list(per_pass.values())), coverage)
    return CoverageReport(coverage.fail_below, coverage.warn_below, passes, merged)


def gate(report: CoverageReport) -> None:
    """Fail when calibration saw no data or an expert got fewer tokens than fail_below."""
    merged = report.merged
    if merged.tokens == 0:
        raise GateFailed("calibration saw no data: 0 tokens went through the model")
    if merged.failing:
        pairs = ", ".join(f"({layer}, {expert})" for layer, expert in merged.failing)
        raise GateFailed(
            f"{len(merged.failing)} routed experts got fewer than {report.fail_below} "
            f"calibration tokens (layer, expert): {pairs}"
        )


# -- reports -----------------------------------------------------------------------------------


def render_markdown(report: CoverageReport) -> str:
    lines = [
        "# Expert coverage",
        "",
        f"Gate: fail below {report.fail_below} tokens per expert, warn below "
        f"{report.warn_below}. Result: **{'ok' if report.ok else 'FAILED'}**.",
        "",
        "| pass | tokens | experts failing | experts warned |",
        "|---|---:|---:|---:|",
    ]
    for p in (*report.passes, report.merged):
        lines.append(f"| {p.name} | {p.tokens} | {len(p.failing)} | {len(p.warning)} |")
    m = report.merged
    lines += [
        "",
        "## Merged, per MoE layer",
        "",
        "| layer | min | median | max | unseen | tokens until all seen |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for s in m.layers:
        until = "never" if s.tokens_until_all_seen is None else str(s.tokens_until_all_seen)
        lines.append(f"| {s.layer} | {s.min} | {s.median:g} | {s.max} | {s.unseen} | {until} |")
    for title, pairs in (("Failing", m.failing), ("Warned", m.warning)):
        if pairs:
            shown = ", ".join(f"({a}, {b})" for a, b in pairs[:200])
            more = f" and {len(pairs) - 200} more" if len(pairs) > 200 else ""
            lines += ["", f"## {title} (layer, expert)", "", shown + more]
    return "\n".join(lines) + "\n"


def plot(report: CoverageReport, path: Path) -> Path:
    """Fraction of a layer's experts seen against tokens fed, one curve per MoE layer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = report.merged.counts
    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    total = max(counts.tokens, 1)
    for i, layer in enumerate(counts.layers):
        seen = np.sort(counts.first_seen[i][counts.first_seen[i] >= 0]) + 1
        xs = np.concatenate([[0], seen, [total]])
        ys = np.concatenate([[0], np.arange(1, len(seen) + 1), [len(seen)]]) / counts.experts
        ax.step(xs, ys, where="post", linewidth=0.8, label=f"layer {layer}")
    offset = 0
    for p in report.passes[:-1]:
        offset += p.tokens
        ax.axvline(offset, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel("calibration tokens (passes in order)")
    ax.set_ylabel("fraction of routed experts seen")
    ax.set_ylim(0, 1.02)
    ax.set_title("Tokens until every expert is seen")
    if len(counts.layers) <= 12:
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path, format="png")
    return path


def write_reports(report: CoverageReport, out_dir: Path | str) -> dict[str, Path]:
    """coverage.json, coverage.md and coverage.png under out_dir."""
    out = Path(out_dir)
    with os_errors(out):
        out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / "coverage.json",
        "md": out / "coverage.md",
        "png": out / "coverage.png",
    }
    write_text(paths["json"], json.dumps(report.as_dict(), indent=2) + "\n")
    write_text(paths["md"], render_markdown(report))
    plot(report, paths["png"])
    return paths
