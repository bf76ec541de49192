"""The bench's outputs besides the JSON record: the card's Markdown table and a PNG plot."""

from __future__ import annotations

from pathlib import Path

from glm51.errors import InfraError
from glm51.outputs import save_figure
from glm51.records.bench import BenchFigure, BenchRecord

TITLES = {
    "short_tg": "Short TG",
    "tg_32k": "32K TG",
    "tg_128k": "128K TG",
    "c32": "c=32",
    "c64": "c=64",
}


def _title(f: BenchFigure) -> str:
    return f.title(TITLES)


def markdown(record: BenchRecord) -> str:
    """The model card's throughput table, then how each figure was measured."""
    figs = record.figures
    head = "| | " + " | ".join(_title(f) for f in figs) + " |"
    rule = "|---|" + "---:|" * len(figs)
    rate = "| decode tok/s | " + " | ".join(f"{f.tokens_per_s:.1f}" for f in figs) + " |"
    gate = "| gate | " + " | ".join(_gate(f) for f in figs) + " |"
    lines = [head, rule, rate, gate, ""]
    lines.append(
        "| figure | streams | prompt tokens | tokens in window | window s | requests "
        "| TTFT s (cold) | prefill tok/s | accept length |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for f in figs:
        lines.append(
            f"| {_title(f)} | {f.concurrency} | {f.context_tokens} | {f.output_tokens} "
            f"| {f.duration_s:.1f} | {f.requests} | {_num(f.ttft_s, '.3f')} "
            f"| {_num(f.prefill_tokens_per_s, '.0f')} | {_num(f.accept_length, '.2f')} |"
        )
    lines.append("")
    where = f" on {record.hardware}" if record.hardware else ""
    profile = f", profile `{record.profile}`" if record.profile else ""
    lines.append(
        f"Measured by `glm51 bench` {record.glm51_version}{where}{profile} against "
        f"`{record.served_model}` at {record.endpoint}, {record.created_at}. Single-stream "
        "figures: decode tokens/s after a warmed prefix; c=N: aggregate decode tokens/s with N "
        "streams kept busy. Token counts are the server's `usage`."
    )
    for note in record.notes:
        lines.append(f"\nNote: {note}.")
    for f in figs:
        if f.failed_requests:
            lines.append(
                f"\n{_title(f)} lost {len(f.failed_requests)} request(s) (not counted; "
                "--max-failed-requests allowed them):"
            )
            lines += [
                f"- at {r.at_s:.1f}s: {r.error} (not retried: {r.why_not_retried})"
                for r in f.failed_requests
            ]
    return "\n".join(lines) + "\n"


def _gate(f: BenchFigure) -> str:
    if f.gate is None:
        return "-"
    mark = "pass" if f.gate.passed else "**FAIL**"
    return f"{mark} (>= {f.gate.threshold * (1 - f.gate.tolerance):.1f})"


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def plot(record: BenchRecord, path: Path) -> Path:
    """Throughput against concurrency (short prompt) and against context length (c=1)."""
    try:
        import matplotlib
    except ImportError:
        raise InfraError("bench.png needs matplotlib: pip install 'glm51[bench]'") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_conc = sorted(
        (
            f
            for f in record.figures
            if f.name in ("short_tg", "c32", "c64")
            or (f.context_tokens <= 1024 and f.concurrency > 1)
        ),
        key=lambda f: f.concurrency,
    )
    by_ctx = sorted(
        (f for f in record.figures if f.concurrency == 1), key=lambda f: f.context_tokens
    )
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, figs, x, label in (
        (axes[0], by_conc, lambda f: f.concurrency, "concurrent streams"),
        (axes[1], by_ctx, lambda f: f.context_tokens / 1024, "context (K tokens)"),
    ):
        ax.set_xlabel(label)
        ax.set_ylabel("decode tokens/s")
        ax.grid(alpha=0.3)
        if not figs:  # an empty panel says so instead of showing a bare unit square
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        xs = [x(f) for f in figs]
        ys = [f.tokens_per_s for f in figs]
        ax.plot(xs, ys, "o-", label="measured")
        gated = [(x(f), f.gate.threshold) for f in figs if f.gate is not None]
        if gated:
            ax.plot(*zip(*gated, strict=True), "r_", markersize=18, mew=2, label="gate")
        for f, xv in zip(figs, xs, strict=True):
            ax.annotate(
                f"{f.title(TITLES)}: {f.tokens_per_s:.3g}",
                (xv, f.tokens_per_s),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                fontsize=8,
            )
        # Sane axes for one point too: from 0, with room above the highest value or gate.
        top = max([*ys, *(g for _, g in gated)])
        ax.set_ylim(0, top * 1.3 if top > 0 else 1)
        if min(xs) == max(xs):
            ax.set_xlim(0, max(xs) * 2 if max(xs) > 0 else 1)
        ax.legend(loc="lower right")
    axes[0].set_title("throughput vs concurrency")
    axes[1].set_title("single-stream decode vs context")
    fig.suptitle(f"glm51 bench: {record.served_model} {record.hardware}".strip())
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    return path
