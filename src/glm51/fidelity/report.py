"""fidelity.md (the card's table) and fidelity.png (error by layer, the KL distribution, the
worst experts against their calibration tokens)."""

from __future__ import annotations

from pathlib import Path

from glm51.errors import InfraError
from glm51.outputs import save_figure
from glm51.records.fidelity import FidelityGate, FidelityRecord, LayerError

GATE_TITLES = {"kl_mean": "KL mean", "kl_p99": "KL P99", "top1": "top-1 agreement"}


def _gate(g: FidelityGate) -> str:
    mark = "pass" if g.passed else "**FAIL**"
    return f"{mark} ({'<=' if g.bound == 'max' else '>='} {g.threshold:g})"


def _experts(record: FidelityRecord, layer: LayerError) -> str:
    if str(layer.layer) in record.expert_errors:
        return "routed: NVFP4"
    return "routed: BF16" if layer.moe else "dense MLP: BF16"


def markdown(record: FidelityRecord) -> str:
    k = record.kl
    gates = {g.name: g for g in record.gates}
    lines = [
        "| KL mean | KL median | KL P95 | KL P99 | KL max | top-1 agreement |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {k.mean:.3g} | {k.median:.3g} | {k.p95:.3g} | {k.p99:.3g} | {k.max:.3g} "
        f"| {record.top1_agreement:.2%} |",
        f"| {_gate(gates['kl_mean'])} | | | {_gate(gates['kl_p99'])} | | {_gate(gates['top1'])} |",
        "",
        f"KL(BF16 ‖ NVFP4) of the full next-token distribution (nats), over "
        f"{record.positions:,} positions ({record.sequences} sequences of up to "
        f"{record.tokens_per_sequence} tokens) of {record.text.description} "
        f"(`{record.text.path}`, token digest `{record.text.digest[:16]}`). Reference: the BF16 "
        "source; candidate: the same layers with the routed experts computed from the "
        "checkpoint's NVFP4 bytes, activations quantized to NVFP4 with the stored input scales "
        f"(W4A4). Measured by `glm51 fidelity` {record.glm51_version} on {record.device}"
        f"{f' ({record.device_name})' if record.device_name else ''}, {record.created_at}.",
        "",
        "| layer | experts | hidden-state rel. error | cosine | this layer alone |",
        "|---:|---|---:|---:|---:|",
    ]
    for x in record.layers:
        lines.append(
            f"| {x.layer} | {_experts(record, x)} | {x.relative_error:.3g} "
            f"| {x.cosine:.6f} | {x.local_relative_error:.3g} |"
        )
    if record.worst_experts:
        lines += [
            "",
            "| worst experts (layer.expert) | weight rel. error | calibration tokens |",
            "|---|---:|---:|",
        ]
        for e in record.worst_experts:
            tokens = "not given" if e.calibration_tokens is None else f"{e.calibration_tokens:,}"
            lines.append(f"| {e.layer}.{e.expert} | {e.relative_error:.4g} | {tokens} |")
    return "\n".join(lines) + "\n"


def plot(record: FidelityRecord, path: Path) -> Path:
    try:
        import matplotlib
    except ImportError:
        raise InfraError("fidelity.png needs matplotlib: pip install 'glm51[bench]'") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ax = axes[0]
    layers = [x.layer for x in record.layers]
    ax.plot(layers, [x.relative_error for x in record.layers], "o-", label="stream")
    ax.plot(layers, [x.local_relative_error for x in record.layers], "s--", label="layer alone")
    ax.set_xlabel("decoder layer")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel("hidden-state relative error")
    ax.set_title("error by layer")
    ax.grid(alpha=0.3)
    ax.legend()

    ax = axes[1]
    kl = np.array(record.kl_percentiles)
    shown = np.maximum(kl, kl[kl > 0].min() if (kl > 0).any() else 1e-12)
    ax.plot(shown, np.arange(101), "-", color="tab:blue", label="positions at or below")
    for g in record.gates:
        if g.name in ("kl_mean", "kl_p99"):
            label = "mean gate" if g.name == "kl_mean" else "P99 gate"
            style = "r--" if g.name == "kl_mean" else "r:"
            ax.axvline(g.threshold, color="r", ls=style[1:], label=label)
    ax.axvline(max(record.kl.mean, shown.min()), color="tab:green", label="mean")
    if (kl > 0).any():
        ax.set_xscale("log")
    ax.set_xlabel("KL(BF16 ‖ NVFP4), nats")
    ax.set_ylabel("% of positions")
    ax.set_title(f"KL distribution over {record.positions:,} positions")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")

    ax = axes[2]
    errors = [
        (int(layer), e, v)
        for layer, errs in record.expert_errors.items()
        for e, v in enumerate(errs)
    ]
    counted = {(w.layer, w.expert): w.calibration_tokens for w in record.worst_experts}
    if errors and all(v is not None for v in counted.values()) and counted:
        xs = [counted[(w.layer, w.expert)] for w in record.worst_experts]
        ys = [w.relative_error for w in record.worst_experts]
        ax.scatter(xs, ys, color="tab:red")
        for w, x, y in zip(record.worst_experts, xs, ys, strict=True):
            ax.annotate(
                f"{w.layer}.{w.expert}",
                (x, y),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        ax.set_xlabel("calibration tokens")
    elif errors:
        ax.hist(np.array([v for *_, v in errors]), bins=30, color="tab:gray")
        ax.set_xlabel("expert weight relative error (no calibration counts given)")
    else:
        ax.text(0.5, 0.5, "no NVFP4 experts", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("weight relative error" if counted else "experts")
    ax.set_title("worst experts")
    ax.grid(alpha=0.3)
    fig.suptitle(f"glm51 fidelity: {Path(record.checkpoint).name} vs BF16")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    return path
