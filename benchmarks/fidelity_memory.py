"""Peak host memory and time of `glm51 fidelity`: tiny-family models of increasing depth, or
one fidelity layer at GLM-5.1's real geometry with a projection of the full model.

Not a test: a measurement. Each measured run is a fresh process, so its peak RSS is its own;
the models are built and quantized beforehand, in other processes.

--geometry tiny (default): depths 2 and 8 (`--depths`), hidden 1024, 16 experts, the same
synthetic text at every depth. Both streams and one decoder layer at a time: the peak must
not grow with depth. Prints each depth's peak RSS and the deepest/shallowest ratio (the issue's
bound: <= 1.1). `nox -s bench_fidelity`, or `python benchmarks/fidelity_memory.py`.

--geometry glm51: GLM-5.1's layer geometry (benchmarks/quantize_memory.py GLM51_LAYER),
`--experts` routed experts, `--layers` decoder layers (the first dense), on `--device`
(default: cuda when there is one). Reports per layer the time and peak GPU memory of the
fidelity walk, and projects the full model (78 layers, 256 experts) on one GPU: a layer's
load and candidate build scale with its bytes, its forwards with the tokens. Without a GPU it
runs on the CPU at a smaller size and says so. `nox -s bench_fidelity -- --geometry glm51`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quantize_memory import FULL, GLM51_LAYER, peak_rss_kib

BOUND = 1.1  # peak RSS, deepest / shallowest (issue 19)


def _samples(n: int, length: int, vocab: int) -> list[list[int]]:
    import torch

    g = torch.Generator().manual_seed(0)
    return [torch.randint(1, vocab, (length,), generator=g).tolist() for _ in range(n)]


def quantize_child(model: str, out: str, device: str) -> None:
    """Quantize ``model`` (bounded memory) on fixed random tokens: the checkpoint measured."""
    from transformers.utils import logging as hf_logging

    from glm51.calib.data import CalibSet
    from glm51.quantize.pipeline import quantize
    from glm51.recipe.load import load_recipe

    hf_logging.set_verbosity_error()
    vocab = json.loads((Path(model) / "config.json").read_text())["vocab_size"]
    data = CalibSet("bench", _samples(8, 128, vocab))
    quantize(
        model,
        out,
        {"bench": [data]},
        load_recipe().quantize,
        work_dir=Path(out + ".work"),
        bounded=True,
        device=device,
    )


def measure_child(model: str, checkpoint: str, device: str, samples: int, length: int) -> None:
    """One fidelity walk; per-layer events and the peaks as JSON on the last line."""
    import torch
    from transformers.utils import logging as hf_logging

    from glm51.checkpoint.folder import Checkpoint
    from glm51.fidelity.walk import measure

    hf_logging.set_verbosity_error()
    cuda = device.startswith("cuda")
    vocab = json.loads((Path(model) / "config.json").read_text())["vocab_size"]
    text = _samples(samples, length, vocab)
    events: list[dict] = []
    t0 = time.perf_counter()

    def progress(_what: str, done: int, total: int) -> None:
        if cuda:
            torch.cuda.synchronize()
        events.append(
            {
                "done": done,
                "t": time.perf_counter() - t0,
                "gpu_peak": torch.cuda.max_memory_allocated() if cuda else None,
            }
        )
        if cuda:
            torch.cuda.reset_peak_memory_stats()

    m = measure(Checkpoint(model), Checkpoint(checkpoint), text, device=device, progress=progress)
    result = {
        "seconds": time.perf_counter() - t0,
        "peak_rss": peak_rss_kib() * 1024,
        "events": events,
        "positions": int(m.kl.shape[0]),
        "kl_mean": float(m.kl.mean()),
    }
    print(json.dumps(result))


def _run(*argv: str) -> dict | None:
    done = subprocess.run(
        [sys.executable, __file__, *argv], capture_output=True, text=True, check=False
    )
    if done.returncode:
        sys.exit(f"{argv[0]} failed:\n{done.stderr[-3000:]}")
    last = done.stdout.strip().splitlines()
    return json.loads(last[-1]) if last and last[-1].startswith("{") else None


def _gib(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**30:.2f} GiB"


def run_tiny(args) -> None:
    from glm51.quantize.tiny import build_tiny_model

    rows = []
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for depth in args.depths:
            model = build_tiny_model(
                Path(tmp) / f"d{depth}", num_layers=depth, hidden=args.hidden, experts=args.experts
            )
            checkpoint = str(Path(tmp) / f"d{depth}-nvfp4")
            _run("--quantize-child", str(model), checkpoint, "cpu")
            size = sum(p.stat().st_size for p in model.glob("*.safetensors"))
            r = _run(
                "--measure-child",
                str(model),
                checkpoint,
                "cpu",
                str(args.samples),
                str(args.length),
            )
            rows.append((depth, size, r))
            print(
                f"depth {depth}: BF16 model {size / 2**20:.0f} MiB, peak RSS "
                f"{r['peak_rss'] / 2**20:.0f} MiB, {r['seconds']:.1f} s, "
                f"{r['positions']} positions",
                flush=True,
            )
    (d0, s0, r0), (d1, s1, r1) = rows[0], rows[-1]
    ratio = r1["peak_rss"] / r0["peak_rss"]
    print(
        f"\nhidden {args.hidden}, {args.experts} experts, {args.samples} x {args.length} tokens "
        f"on the CPU. Peak RSS at {d1} layers / at {d0} layers: {ratio:.3f} "
        f"({'within' if ratio <= BOUND else 'ABOVE'} the bound {BOUND}; the BF16 model grew "
        f"{s1 / s0:.2f}x: {s0 / 2**20:.0f} -> {s1 / 2**20:.0f} MiB)"
    )


def run_glm51(args) -> None:
    import torch

    from glm51.checkpoint.folder import load_model_config
    from glm51.fidelity import estimate as fest
    from glm51.quantize.tiny import build_tiny_model

    gpu = torch.cuda.is_available() and args.device.startswith("cuda")
    device = args.device if gpu else "cpu"
    experts, layers, samples, length = args.experts, args.layers, args.samples, args.length
    if not gpu:
        experts, layers, samples, length = args.cpu_experts, 2, 2, args.cpu_length
        print(
            f"no GPU: the CPU at a smaller size ({experts} experts, {samples} x {length} tokens); "
            "the per-layer geometry is GLM-5.1's. These are CPU figures, not GPU ones.",
            flush=True,
        )
    name = torch.cuda.get_device_name(0) if gpu else "CPU"
    overrides = {**GLM51_LAYER, "n_routed_experts": experts}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        model = build_tiny_model(
            Path(tmp) / "glm51-geometry",
            num_layers=layers,
            experts=experts,
            overrides=overrides,
            init_dtype="bfloat16",
        )
        checkpoint = str(Path(tmp) / "nvfp4")
        t0 = time.perf_counter()
        _run("--quantize-child", str(model), checkpoint, device)
        print(f"built and quantized in {time.perf_counter() - t0:.0f} s", flush=True)
        r = _run("--measure-child", str(model), checkpoint, device, str(samples), str(length))
        config, _ = load_model_config(model)
    est = fest.estimate(config, [length] * samples, device)
    previous = 0.0
    per_layer = []
    for e in r["events"]:
        per_layer.append((e["done"], e["t"] - previous, e["gpu_peak"]))
        previous = e["t"]
    print(f"\n{'step':>10} {'s':>8} {'peak GPU':>11}")
    for done, seconds, peak in per_layer:
        what = "head" if done == len(per_layer) else f"layer {done - 1}"
        print(f"{what:>10} {seconds:>8.2f} {_gib(peak):>11}")
    print(
        f"\nwall {r['seconds']:.1f} s on {name}; {r['positions']} positions; host peak RSS "
        f"{_gib(r['peak_rss'])}; mean KL {r['kl_mean']:.3g} (random weights: not a quality figure)"
    )
    print(
        f"estimate (what glm51 fidelity prints): device {_gib(est.device_bytes)}, host "
        f"{_gib(est.host_bytes)}"
    )
    # The full model: 3 dense + 75 MoE layers of 256 experts, the recipe's 204,800 positions.
    moe_s = per_layer[-2][1] if layers > 1 else 0.0
    dense_s = per_layer[0][1]
    tokens = samples * length
    full_tokens = 204_800
    scale = FULL["experts"] / experts
    # Bounds: build-bound (loading and unit-scaling the experts grows with their count) and
    # token-bound (the forwards grow with the tokens, top-8 routing whatever the count).
    low = moe_s * max(scale, full_tokens / tokens) * (FULL["layers"] - FULL["dense"])
    high = moe_s * (scale + full_tokens / tokens) * (FULL["layers"] - FULL["dense"])
    dense = dense_s * (full_tokens / tokens) * FULL["dense"]
    peak = max((p or 0) for _, _, p in per_layer)
    peak_full = _gib(peak * scale) if peak else "-"
    print(
        f"projection, full model on one {name}: {FULL['layers']} layers, {FULL['experts']} "
        f"experts, {full_tokens:,} positions: {(low + dense) / 3600:.1f} to "
        f"{(high + dense) / 3600:.1f} h; peak device memory about {peak_full} (the MoE "
        "layer's peak scaled by the expert count: an upper bound, attention does not grow)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--geometry", choices=("tiny", "glm51"), default="tiny")
    ap.add_argument("--depths", type=int, nargs="+", default=[2, 8])
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--experts", type=int, default=16)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--length", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2, help="glm51 geometry: decoder layers")
    ap.add_argument("--device", default="cuda", help="glm51 geometry: cuda, cuda:N or cpu")
    ap.add_argument("--cpu-experts", type=int, default=8, help="glm51 without a GPU (>= top-8)")
    ap.add_argument("--cpu-length", type=int, default=128, help="glm51 without a GPU")
    ap.add_argument("--tmp", default=os.environ.get("TMPDIR"), help="where models are built")
    ap.add_argument("--quantize-child", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--measure-child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quantize_child:
        quantize_child(*args.quantize_child)
    elif args.measure_child:
        model, ckpt, device, samples, length = args.measure_child
        measure_child(model, ckpt, device, int(samples), int(length))
    elif args.geometry == "glm51":
        if args.experts == 16:
            args.experts = 32  # the GPU default: 32 of the 256 experts
        run_glm51(args)
    else:
        run_tiny(args)


if __name__ == "__main__":
    main()
