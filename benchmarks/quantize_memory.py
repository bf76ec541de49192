"""Peak memory and time of `glm51 quantize`: tiny-family models of increasing depth, or
GLM-5.1's real layer geometry with fewer experts and layers.

Not a test: a measurement. Each run is a fresh process, so its peak RSS is its own.

--geometry tiny (default): depths 2, 4, 8, both modes. In the bounded-memory mode the peak
must not grow with depth (one decoder layer at a time); in the resident mode it grows with
the model. `nox -s bench_quantize`, or `python benchmarks/quantize_memory.py --depths 2 4 8`.

--geometry glm51: hidden 6144, MLA (q_lora_rank 2048, kv_lora_rank 512, 64 heads of
192 + 64 qk and 256 v dims), the DSA indexer (32 heads of 128, index_topk 2048), experts of
width 2048 with top-8 routing and one shared expert, dense MLP width 12288; `--experts`
routed experts (default 32) and `--layers` decoder layers (default 3, the first dense),
bounded-memory mode on `--device` (default: cuda when there is one). Reports per decoder
layer load, calibration and export time, calibration tokens/s, peak GPU and host memory;
projects the full model (78 layers + MTP, 256 experts, the recipe's calibration tokens) on
1 and 8 GPUs; prints the estimate `glm51 quantize` shows next to the measured peaks.
Without a GPU it runs on the CPU at a smaller size (8 experts, 2 layers, 1,024 tokens) and
says so. `nox -s bench_quantize -- --geometry glm51`.

--nproc N: data-parallel bounded quantize (torchrun; gloo on the CPU, NCCL on GPUs) against
one process, in the same run, on the same model: the tiny family (--layers, --hidden,
--experts; the default) or `--geometry glm51`. Per layer and rank: load, calibration and
export time; per layer: reading the layer on every rank against rank 0 reading it and
broadcasting it; the wall time of both runs and the speed-up; whether the two checkpoints
are byte-identical; and the full model on 8 GPUs projected from the measured speed-up.
`nox -s bench_quantize -- --nproc 2`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# GLM-5.1's config (ENVIRONMENT.md "Model facts", tests/unit/test_estimate.py): what one
# decoder layer looks like. Experts, layers and vocabulary are the benchmark's own.
GLM51_LAYER = {
    "hidden_size": 6144,
    "intermediate_size": 12288,
    "moe_intermediate_size": 2048,
    "num_experts_per_tok": 8,
    "n_shared_experts": 1,
    "num_attention_heads": 64,
    "num_key_value_heads": 64,
    "q_lora_rank": 2048,
    "kv_lora_rank": 512,
    "qk_nope_head_dim": 192,
    "qk_rope_head_dim": 64,
    "v_head_dim": 256,
    "index_n_heads": 32,
    "index_head_dim": 128,
    "index_topk": 2048,
    "first_k_dense_replace": 1,
    "max_position_embeddings": 202752,
}
FULL = {"layers": 78, "dense": 3, "experts": 256}


def child(model: str, mode: str, out: str, samples: int, length: int) -> None:
    import torch
    from transformers.utils import logging as hf_logging

    from glm51.calib.data import CalibSet
    from glm51.quantize.pipeline import quantize
    from glm51.recipe.load import load_recipe

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    g = torch.Generator().manual_seed(0)
    data = CalibSet(
        "bench", [torch.randint(20, 110, (length,), generator=g).tolist() for _ in range(samples)]
    )
    start = time.perf_counter()
    quantize(
        model,
        Path(out) / "out",
        {"bench": [data]},
        load_recipe().quantize,
        work_dir=Path(out) / "work",
        bounded=mode == "bounded",
    )
    seconds = time.perf_counter() - start
    print(json.dumps({"peak_rss_mib": peak_rss_kib() / 1024, "seconds": seconds}))


def bounded_quantize(model: str, out: str, samples: int, length: int, **kwargs) -> None:
    """Bounded quantize of ``model`` into OUT/out on ``samples`` random sequences of ``length``
    tokens (seed 0: every run, every rank count, the same set); ``kwargs`` go to quantize()."""
    import torch

    from glm51.calib.data import CalibSet
    from glm51.quantize.pipeline import quantize
    from glm51.recipe.load import load_recipe

    g = torch.Generator().manual_seed(0)
    data = CalibSet(
        "bench", [torch.randint(20, 110, (length,), generator=g).tolist() for _ in range(samples)]
    )
    work_dir = Path(out) / "work"
    recipe = load_recipe().quantize
    quantize(
        model,
        Path(out) / "out",
        {"bench": [data]},
        recipe,
        work_dir=work_dir,
        bounded=True,
        **kwargs,
    )


def peak_rss_kib() -> int:
    """This process's own peak RSS. Not getrusage's ru_maxrss: Linux carries that across
    exec from the forking parent, which here holds the freshly built models."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def glm51_child(model: str, out: str, device: str, samples: int, length: int) -> None:
    """One bounded-memory run at the real layer geometry; per-layer events as JSON."""
    import torch
    from transformers.utils import logging as hf_logging

    from glm51.quantize import calibrate, export

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    cuda = device.startswith("cuda")
    loads: list[dict] = []

    def timed(real, where):
        def load_into(module, ckpt, prefix, dev):
            t0 = time.perf_counter()
            real(module, ckpt, prefix, dev)
            if cuda:
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
            loads.append(
                {"where": where, "prefix": prefix, "start": t0 - t_start, "seconds": seconds}
            )

        return load_into

    t_start = time.perf_counter()
    calibrate.load_into = timed(calibrate.load_into, "calibration")
    export.load_into = timed(export.load_into, "export")
    events: list[dict] = []

    def progress(what: str, done: int, total: int) -> None:
        if cuda:
            torch.cuda.synchronize()
        events.append(
            {
                "what": what,
                "done": done,
                "total": total,
                "t": time.perf_counter() - t_start,
                "gpu_peak": torch.cuda.max_memory_allocated() if cuda else None,
                "rss": rss_kib() * 1024,
            }
        )
        if cuda:
            torch.cuda.reset_peak_memory_stats()

    bounded_quantize(model, out, samples, length, device=device, progress=progress)
    seconds = time.perf_counter() - t_start
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss": peak_rss_kib() * 1024,
                "events": events,
                "loads": loads,
            }
        )
    )


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _per_layer(result: dict, n_layers: int, tokens: int) -> list[dict]:
    """Per decoder layer: calibration load/compute, export (load included), peaks."""
    calib = [e for e in result["events"] if e["what"] == "bench"]
    exp = [e for e in result["events"] if e["what"] == "export"]
    loads = {(x["where"], x["prefix"]): x for x in result["loads"]}
    rows, prev_e = [], calib[-1]["t"]
    for i in range(n_layers):
        c, e = calib[i], exp[i]
        ld = loads[("calibration", f"model.layers.{i}.")]
        load, calib_s = ld["seconds"], c["t"] - ld["start"] - ld["seconds"]
        rows.append(
            {
                "layer": i,
                "load_s": load,
                "calib_s": calib_s,
                "tokens_per_s": tokens / calib_s,
                "export_s": e["t"] - prev_e,
                "export_load_s": loads[("export", f"model.layers.{i}.")]["seconds"],
                "gpu_peak": max(x for x in (c["gpu_peak"], e["gpu_peak"]) if x is not None)
                if c["gpu_peak"] is not None
                else None,
                "rss": max(c["rss"], e["rss"]),
            }
        )
        prev_e = e["t"]
    return rows


def recipe_tokens() -> tuple[int, int, str]:
    """The recipe's calibration (tokens, samples): tokens an upper bound, every sample of
    every pass at its manifest's max_tokens."""
    from glm51.calib.manifest import load_manifest
    from glm51.quantize.estimate import CalibShape
    from glm51.recipe.load import load_recipe

    recipe = load_recipe()
    shapes = [
        CalibShape.of_manifest(load_manifest(recipe.pass_manifest(p.name)))
        for p in recipe.quantize.passes
    ]
    detail = ", ".join(f"{s.name} {s.samples} x {s.max_len}" for s in shapes)
    return sum(s.tokens for s in shapes), sum(s.samples for s in shapes), detail


def _gib(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**30:.2f} GiB"


def run_glm51(args) -> None:
    import torch

    from glm51.quantize import estimate as est
    from glm51.quantize.tiny import build_tiny_model

    gpu = torch.cuda.is_available() and not args.device.startswith("cpu")
    device = args.device if gpu else "cpu"
    experts, layers, tokens = args.experts, args.layers, args.tokens
    if not gpu:
        experts = min(experts, args.cpu_experts)
        layers = min(layers, args.cpu_layers)
        tokens = min(tokens, args.cpu_tokens)
        print(
            f"NO GPU: running on the CPU at a smaller size ({experts} experts, {layers} layers, "
            f"{tokens:,} calibration tokens); the per-layer geometry is GLM-5.1's. "
            "These are CPU figures, not GPU ones.",
            flush=True,
        )
    length = min(args.length, tokens)
    samples = max(1, tokens // length)
    tokens = samples * length
    name = torch.cuda.get_device_name(0) if gpu else "CPU"
    overrides = {**GLM51_LAYER, "n_routed_experts": experts}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        t0 = time.perf_counter()
        model = build_tiny_model(
            Path(tmp) / "glm51-geometry",
            num_layers=layers,
            experts=experts,
            overrides=overrides,
            init_dtype="bfloat16",
        )
        built = time.perf_counter() - t0
        config, index = est.load_model_config(model)
        size = sum(p.stat().st_size for p in model.glob("*.safetensors"))
        shape = est.CalibShape("bench", samples, tokens, length)
        estimate = est.estimate(config, [shape], index=index)
        n_params = estimate.params
        print(
            f"model: {layers} layers (layer 0 dense) + MTP, {experts} experts, "
            f"{n_params / 1e9:.2f}B parameters ({(n_params - estimate.mtp_params) / 1e9:.2f}B "
            f"without the MTP layer), {size / 1e9:.1f} GB BF16 "
            f"(built in {built:.0f} s); {samples} x {length} = {tokens:,} calibration "
            f"tokens; bounded memory on {device} ({name})",
            flush=True,
        )
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--glm51-child",
                str(model),
                str(Path(tmp) / "run"),
                device,
                "--samples",
                str(samples),
                "--length",
                str(length),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            sys.exit(f"glm51-geometry run failed:\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
    rows = _per_layer(result, layers, tokens)
    print(
        f"\n{'layer':>5} {'kind':>5} {'load s':>7} {'calib s':>8} {'tokens/s':>9} "
        f"{'export s':>9} {'peak GPU':>11} {'RSS':>11}"
    )
    for r in rows:
        kind = "dense" if r["layer"] == 0 else "MoE"
        calib, tps = f"{r['calib_s']:.2f}", f"{r['tokens_per_s']:,.0f}"
        print(
            f"{r['layer']:>5} {kind:>5} {r['load_s']:>7.2f} {calib:>8} {tps:>9} "
            f"{r['export_s']:>9.2f} {_gib(r['gpu_peak']):>11} {_gib(r['rss']):>11}"
        )
    peak_gpu = max((r["gpu_peak"] or 0) for r in rows) or None
    print(
        f"\nwall {result['seconds']:.1f} s; peak GPU allocated {_gib(peak_gpu)}; "
        f"host peak RSS {_gib(result['peak_rss'])}"
    )
    print(
        f"estimate (what glm51 quantize prints): bounded memory GPU "
        f"{_gib(estimate.layerwise_gpu_bytes)}, host {_gib(estimate.layerwise_host_bytes)}"
        f" | measured: GPU {_gib(peak_gpu)}, host {_gib(result['peak_rss'])}"
    )
    if not gpu:
        print(
            "  (on the CPU the device memory is host memory: compare the measured host peak "
            "with the estimate's GPU + host, plus about 0.6 GiB of Python and libraries)"
        )
    project(rows, config, experts, tokens, samples, name)


def project(
    rows: list[dict], config: dict, experts: int, tokens: int, samples: int, name: str
) -> None:
    """The full model from the measured MoE and dense layers. The model:
    - a layer's load and export times scale with its BF16 bytes (the export is dominated by
      quantizing the routed experts);
    - calibration time lies between two bounds. Token-bound: it scales with tokens (top-8
      routing: a token's expert work does not depend on the expert count). Loop-bound: the
      eager experts forward runs one small GEMM per expert hit per sample, so where launch
      overhead dominates it scales with samples x experts;
    - 8 GPUs: the calibration split 8 ways (every process loads every layer itself) and the
      per-layer export split 8 ways, as `--nproc 8` does, perfectly: a model, not a
      measurement (`--nproc N` measures the split)."""
    from glm51.quantize import estimate as est

    moe = [r for r in rows if r["layer"] > 0]
    dense = [r for r in rows if r["layer"] == 0]
    if not moe:
        print("projection: needs a measured MoE layer (use --layers >= 2)")
        return
    full_tokens, full_samples, detail = recipe_tokens()
    bench = est.layer_params({**config, "num_nextn_predict_layers": 0})
    full_cfg = {**config, "n_routed_experts": FULL["experts"], "num_nextn_predict_layers": 0}
    full = est.layer_params(full_cfg)
    b_moe = bench[-1].attention + bench[-1].mlp_routed + bench[-1].mlp_other
    f_moe = full[-1].attention + full[-1].mlp_routed + full[-1].mlp_other
    scale_bytes, scale_tokens = f_moe / b_moe, full_tokens / tokens
    hit = min(experts, 8 * tokens // samples)  # experts a sample reaches, at most
    scale_loop = (full_samples * FULL["experts"]) / (samples * hit)

    def mean(key, rs):
        return sum(r[key] for r in rs) / len(rs)

    load_moe, export_moe = mean("load_s", moe) * scale_bytes, mean("export_s", moe) * scale_bytes
    calib_lo = mean("calib_s", moe) * scale_tokens
    calib_hi = mean("calib_s", moe) * max(scale_tokens, scale_loop)
    d = dense[0]
    n_moe, n_dense = FULL["layers"] - FULL["dense"], FULL["dense"]
    load = n_moe * load_moe + n_dense * d["load_s"]
    export = n_moe * export_moe + n_dense * d["export_s"]
    calib = [n_moe * c + n_dense * d["calib_s"] * scale_tokens for c in (calib_lo, calib_hi)]

    def h(x: float) -> str:
        return f"{x / 3600:.1f} h"

    print(
        f"\nprojection to GLM-5.1 (78 layers + MTP copied in BF16, 256 experts, "
        f"{full_tokens:,} calibration tokens in {full_samples:,} samples = the recipe's "
        f"upper bound: {detail}), from this run on {name}:"
    )
    print(
        f"  per MoE layer: load {load_moe:.1f} s, export {export_moe:.1f} s "
        f"(x{scale_bytes:.2f} bytes); calibration {calib_lo:.0f} s token-bound "
        f"(x{scale_tokens:.1f} tokens) to {calib_hi:.0f} s loop-bound "
        f"(x{scale_loop:.1f} samples x experts)"
    )
    print(
        f"  1 GPU: {h(load + calib[0] + export)} to {h(load + calib[1] + export)} "
        f"(load {h(load)}, calibration {h(calib[0])} to {h(calib[1])}, "
        f"export {h(export)})"
    )
    print(
        f"  8 GPUs: {h(load + (calib[0] + export) / 8)} to "
        f"{h(load + (calib[1] + export) / 8)} (calibration and export split 8 ways, "
        "every process loading every layer, as --nproc 8 does; a perfect split: a model)"
    )


def rank_child(model: str, out: str, device: str, samples: int, length: int) -> None:
    """One rank (or the one process) of the --nproc comparison: the layer read against the
    broadcast, then a bounded quantize with per-layer timings; JSON to OUT/rank-K.json."""
    import torch
    from transformers.utils import logging as hf_logging

    from glm51.checkpoint.folder import Checkpoint
    from glm51.quantize import calibrate, export
    from glm51.quantize.ranks import join

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    ranks = join(device)
    device = ranks.device if ranks.world > 1 else device
    cuda = device.startswith("cuda")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    ckpt = Checkpoint(model)
    n_layers = int(ckpt.config["num_hidden_layers"])
    transfer = []
    if ranks.world > 1:
        import torch.distributed as dist

        for i in range(n_layers):
            keys = ckpt.keys(f"model.layers.{i}.")
            dist.barrier()
            t0 = time.perf_counter()
            # copy=True: the bytes are really read (safetensors may hand out a lazy mmap view).
            mine = {k: v.to(device, copy=True) for k, v in ckpt.read(keys).items()}
            sync()
            read_s = time.perf_counter() - t0
            shapes = {k: (v.shape, v.dtype) for k, v in mine.items()}
            del mine
            dist.barrier()
            t0 = time.perf_counter()
            if ranks.leader:  # rank 0 reads the layer, then sends every tensor to every rank
                src = {k: v.to(device, copy=True) for k, v in ckpt.read(keys).items()}
            for k in keys:
                shape, dtype = shapes[k]
                buf = src[k] if ranks.leader else torch.empty(shape, dtype=dtype, device=device)
                dist.broadcast(buf, src=0)
            sync()
            bcast_s = time.perf_counter() - t0
            transfer.append({"layer": i, "read_s": read_s, "broadcast_s": bcast_s})
        dist.barrier()

    loads: list[dict] = []
    t_start = time.perf_counter()

    def timed(real, where):
        def load_into(module, ckpt, prefix, dev):
            t0 = time.perf_counter()
            real(module, ckpt, prefix, dev)
            sync()
            loads.append(
                {
                    "where": where,
                    "prefix": prefix,
                    "start": t0 - t_start,
                    "seconds": time.perf_counter() - t0,
                }
            )

        return load_into

    calibrate.load_into = timed(calibrate.load_into, "calibration")
    export.load_into = timed(export.load_into, "export")
    events: list[dict] = []

    def progress(what: str, done: int, total: int) -> None:
        sync()
        events.append({"what": what, "done": done, "t": time.perf_counter() - t_start})

    bounded_quantize(model, out, samples, length, device=device, progress=progress, ranks=ranks)
    seconds = time.perf_counter() - t_start
    result = {
        "rank": ranks.rank,
        "world": ranks.world,
        "seconds": seconds,
        "events": events,
        "loads": loads,
        "transfer": transfer,
        "threads": torch.get_num_threads(),
    }
    Path(out, f"rank-{ranks.rank}.json").write_text(json.dumps(result))
    ranks.close()


def _rank_rows(result: dict, n_layers: int) -> list[dict]:
    """Per decoder layer on one rank: calibration load and compute, export (its own layers)."""
    calib = [e for e in result["events"] if e["what"] == "bench"]
    exp = [e for e in result["events"] if e["what"] == "export"]
    loads = {(x["where"], x["prefix"]): x for x in result["loads"]}
    rows = []
    for i in range(n_layers):
        ld = loads[("calibration", f"model.layers.{i}.")]
        rows.append(
            {
                "layer": i,
                "load_s": ld["seconds"],
                "calib_s": calib[i]["t"] - ld["start"] - ld["seconds"],
            }
        )
    prev = calib[-1]["t"]
    owned = [i for i in range(n_layers) if i % result["world"] == result["rank"]]
    for i, e in zip(owned, exp, strict=False):
        rows[i]["export_s"] = e["t"] - prev
        prev = e["t"]
    return rows


def run_parallel(args) -> None:
    import torch

    from glm51.quantize.tiny import build_tiny_model

    gpu = torch.cuda.is_available() and args.device.startswith("cuda")
    device = "cuda" if gpu else "cpu"
    if gpu and torch.cuda.device_count() < args.nproc:
        sys.exit(f"--nproc {args.nproc}: torch sees {torch.cuda.device_count()} GPU(s)")
    name = torch.cuda.get_device_name(0) if gpu else f"CPU ({os.cpu_count()} cores)"
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        if args.geometry == "glm51":
            overrides = {**GLM51_LAYER, "n_routed_experts": args.experts}
            model = build_tiny_model(
                Path(tmp) / "model",
                num_layers=args.layers,
                experts=args.experts,
                overrides=overrides,
                init_dtype="bfloat16",
            )
        else:
            model = build_tiny_model(
                Path(tmp) / "model",
                num_layers=args.layers,
                hidden=args.hidden,
                experts=args.experts,
            )
        size = sum(p.stat().st_size for p in model.glob("*.safetensors"))
        print(
            f"model: {args.geometry} geometry, {args.layers} layers, {args.experts} experts, "
            f"{size / 1e6:.1f} MB BF16; {args.samples} x {args.length} calibration tokens; "
            f"bounded memory on {device} ({name}); 1 process, then {args.nproc} ranks",
            flush=True,
        )
        reps = []  # (1 process, N ranks) in turns, so a busy moment hits both alike
        for rep in range(args.repeat):
            runs = {}
            for world in (1, args.nproc):
                out = Path(tmp) / f"ranks-{world}-{rep}"
                out.mkdir()
                child = [__file__, "--rank-child", str(model), str(out), device]
                child += ["--samples", str(args.samples), "--length", str(args.length)]
                launcher = ["-m", "torch.distributed.run", "--standalone"]
                launcher += ["--nproc-per-node", str(world)]
                t0 = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, *(launcher if world > 1 else []), *child],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                wall = time.perf_counter() - t0
                if done.returncode:
                    sys.exit(f"{world} rank(s) failed:\n{done.stderr[-3000:]}")
                ranks = [json.loads((out / f"rank-{r}.json").read_text()) for r in range(world)]
                runs[world] = {"wall": wall, "ranks": ranks, "out": out / "out"}
                print(
                    f"run {rep + 1}, {world} rank(s): quantize "
                    f"{max(r['seconds'] for r in ranks):.1f} s ({ranks[0]['threads']} threads "
                    f"per rank); process wall {wall:.1f} s",
                    flush=True,
                )
            runs["same"] = _same_files(runs[1]["out"], runs[args.nproc]["out"])
            reps.append(runs)
    print_parallel(reps, args.nproc, args.layers, name)


def _same_files(a: Path, b: Path) -> bool:
    names = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    if names != sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()):
        return False
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def print_parallel(reps: list[dict], nproc: int, n: int, name: str) -> None:
    runs = reps[-1]
    print(
        f"\nthe last run, per layer and rank:\n{'layer':>5} {'rank':>6} {'load s':>7} "
        f"{'calib s':>8} {'export s':>9}"
    )
    for world in (1, nproc):
        for r in runs[world]["ranks"]:
            for row in _rank_rows(r, n):
                label = "1 proc" if world == 1 else f"{r['rank']}/{world}"
                exp = f"{row['export_s']:.2f}" if "export_s" in row else "-"
                print(
                    f"{row['layer']:>5} {label:>6} {row['load_s']:>7.2f} "
                    f"{row['calib_s']:>8.2f} {exp:>9}"
                )
    transfer = runs[nproc]["ranks"][0]["transfer"]
    print("\nthe layer on every rank (the last run, rank 0's clock, warm page cache):")
    for t in transfer:
        print(
            f"  layer {t['layer']}: every rank reads it {t['read_s']:.3f} s; rank 0 reads it "
            f"and broadcasts it {t['broadcast_s']:.3f} s"
        )
    read = sum(t["read_s"] for r in reps for t in r[nproc]["ranks"][0]["transfer"])
    bcast = sum(t["broadcast_s"] for r in reps for t in r[nproc]["ranks"][0]["transfer"])
    print(
        f"  every layer of every run: read {read:.3f} s, broadcast {bcast:.3f} s: "
        f"{'every rank reading' if read <= bcast else 'the broadcast'} is faster "
        f"(x{max(read, bcast) / max(min(read, bcast), 1e-9):.1f})"
    )

    def quantize_s(run) -> float:
        return max(r["seconds"] for r in run["ranks"])

    def calib_s(run) -> float:
        return max(max(e["t"] for e in r["events"] if e["what"] == "bench") for r in run["ranks"])

    speedups = [quantize_s(r[1]) / quantize_s(r[nproc]) for r in reps]
    calib = [calib_s(r[1]) / calib_s(r[nproc]) for r in reps]
    median = sorted(speedups)[len(speedups) // 2]
    print(
        f"\nspeed-up, {nproc} ranks against 1 process on {name}, per run (quantize call): "
        + ", ".join(f"x{x:.2f}" for x in speedups)
        + f"; median x{median:.2f}"
    )
    print(
        "  calibration alone: "
        + ", ".join(f"x{x:.2f}" for x in calib)
        + "; quantize s, 1 process: "
        + ", ".join(f"{quantize_s(r[1]):.1f}" for r in reps)
        + f"; {nproc} ranks: "
        + ", ".join(f"{quantize_s(r[nproc]):.1f}" for r in reps)
    )
    efficiency = min(median / nproc, 1.0)
    print(f"  parallel efficiency (median, at most 100%): {efficiency:.0%}")
    print(
        f"checkpoints byte-identical, 1 process against {nproc} ranks: "
        + ", ".join("yes" if r["same"] else "NO" for r in reps)
    )
    project_ranks(efficiency, nproc)


# Issue 21, measured on an NVIDIA H200 with main's code (one process, bounded mode): one
# full-size GLM-5.1 MoE layer calibrated on 131,072 tokens in about 50 s, exported in 33 s.
H200_LAYER_S = {"calibration": 50.0, "export": 33.0}


def project_ranks(efficiency: float, measured_ranks: int, gpus: int = 8) -> None:
    """GLM-5.1 on `gpus` GPUs: the H200's one-process per-layer times split over the ranks,
    ideally and at the parallel efficiency this run measured."""
    layers = FULL["layers"]
    one = layers * sum(H200_LAYER_S.values())
    ideal = one / gpus
    print(
        f"\nprojection, GLM-5.1 ({layers} layers) from issue 21's H200 figures (one process: "
        f"{H200_LAYER_S['calibration']:.0f} s calibration + {H200_LAYER_S['export']:.0f} s export "
        f"per MoE layer = {one / 3600:.1f} h): on {gpus} GPUs {ideal / 60:.0f} min if the "
        f"calibration and the export split {gpus} ways perfectly; "
        f"{ideal / max(efficiency, 1e-9) / 60:.0f} min at the {efficiency:.0%} efficiency "
        f"{measured_ranks} ranks measured here (a model: the efficiency of {measured_ranks} "
        f"ranks on this machine carried to {gpus} GPUs; reading 1.5 TB of BF16 not included)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depths", type=int, nargs="+", default=[2, 4, 8])
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--experts", type=int, default=16)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--geometry", choices=("tiny", "glm51"), default="tiny")
    ap.add_argument("--layers", type=int, default=3, help="glm51 geometry: decoder layers")
    ap.add_argument("--tokens", type=int, default=131072, help="glm51: calibration tokens")
    ap.add_argument("--device", default="cuda", help="glm51 geometry: cuda, cuda:N or cpu")
    ap.add_argument("--cpu-experts", type=int, default=8, help="glm51 without a GPU")
    ap.add_argument("--cpu-layers", type=int, default=2, help="glm51 without a GPU")
    ap.add_argument("--cpu-tokens", type=int, default=1024, help="glm51 without a GPU")
    ap.add_argument("--tmp", default=os.environ.get("TMPDIR"), help="where the model is built")
    ap.add_argument("--child", nargs=3, metavar=("MODEL", "MODE", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--glm51-child", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--nproc", type=int, default=0, help="ranks against 1 process")
    ap.add_argument("--repeat", type=int, default=3, help="--nproc: runs of each, in turns")
    ap.add_argument("--rank-child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rank_child:
        rank_child(*args.rank_child, args.samples, args.length)
        return
    if args.nproc:
        if args.nproc < 2:
            sys.exit(f"--nproc {args.nproc}: compare 2 or more ranks with one process")
        if "--samples" not in sys.argv:
            args.samples = 8
        if "--length" not in sys.argv:
            args.length = 256
        if args.geometry == "glm51" and "--experts" not in sys.argv:
            args.experts = 32
        run_parallel(args)
        return
    if args.child:
        child(*args.child, args.samples, args.length)
        return
    if args.glm51_child:
        glm51_child(*args.glm51_child, args.samples, args.length)
        return
    if args.geometry == "glm51":
        if "--experts" not in sys.argv:
            args.experts = 32
        if "--length" not in sys.argv:
            args.length = 2048
        run_glm51(args)
        return

    from glm51.quantize.tiny import build_tiny_model

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for depth in args.depths:
            model = build_tiny_model(
                Path(tmp) / f"d{depth}", num_layers=depth, hidden=args.hidden, experts=args.experts
            )
            size = sum(p.stat().st_size for p in model.glob("*.safetensors")) / 2**20
            for mode in ("resident", "bounded"):
                out = Path(tmp) / f"d{depth}-{mode}"
                done = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        str(model),
                        mode,
                        str(out),
                        "--samples",
                        str(args.samples),
                        "--length",
                        str(args.length),
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if done.returncode:
                    sys.exit(f"depth {depth} {mode} failed:\n{done.stderr[-3000:]}")
                r = json.loads(done.stdout.strip().splitlines()[-1])
                rows.append({"depth": depth, "mode": mode, "checkpoint_mib": size, **r})
                print(
                    f"depth {depth:3d}  {mode:8s}  checkpoint {size:7.1f} MiB  "
                    f"peak RSS {r['peak_rss_mib']:8.1f} MiB  "
                    f"{r['seconds'] / depth:6.2f} s/layer",
                    flush=True,
                )
    lo, hi = min(args.depths), max(args.depths)
    for mode in ("resident", "bounded"):
        peak = {r["depth"]: r["peak_rss_mib"] for r in rows if r["mode"] == mode}
        print(f"{mode:8s}: peak RSS depth {hi} / depth {lo} = {peak[hi] / peak[lo]:.3f}")


if __name__ == "__main__":
    main()
