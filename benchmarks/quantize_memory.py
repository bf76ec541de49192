"""Peak memory and time of `glm51 quantize` on tiny-family models of increasing depth.

Not a test: a measurement. Each (depth, mode) runs in a fresh process, so its peak RSS is
its own. In the bounded-memory mode the peak must not grow with depth (one decoder layer at
a time); in the resident mode it grows with the model. Run: `nox -s bench_quantize`, or
`python benchmarks/quantize_memory.py --depths 2 4 8`.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(model: str, mode: str, out: str, samples: int, length: int) -> None:
    import torch
    from transformers.utils import logging as hf_logging

    from glm51.calib.data import CalibSet
    from glm51.quantize.pipeline import quantize
    from glm51.recipe import load_recipe

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    g = torch.Generator().manual_seed(0)
    data = CalibSet("bench", [torch.randint(20, 110, (length,), generator=g).tolist()
                              for _ in range(samples)])  # fmt: skip
    start = time.perf_counter()
    quantize(model, Path(out) / "out", {"bench": [data]}, load_recipe().quantize,
             work_dir=Path(out) / "work", bounded=mode == "bounded")  # fmt: skip
    seconds = time.perf_counter() - start
    print(json.dumps({"peak_rss_mib": peak_rss_kib() / 1024, "seconds": seconds}))


def peak_rss_kib() -> int:
    """This process's own peak RSS. Not getrusage's ru_maxrss: Linux carries that across
    exec from the forking parent, which here holds the freshly built models."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depths", type=int, nargs="+", default=[2, 4, 8])
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--experts", type=int, default=16)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--child", nargs=3, metavar=("MODEL", "MODE", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child, args.samples, args.length)
        return

    from glm51.quantize.tiny import build_tiny_model

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for depth in args.depths:
            model = build_tiny_model(Path(tmp) / f"d{depth}", num_layers=depth,
                                     hidden=args.hidden, experts=args.experts)  # fmt: skip
            size = sum(p.stat().st_size for p in model.glob("*.safetensors")) / 2**20
            for mode in ("resident", "bounded"):
                out = Path(tmp) / f"d{depth}-{mode}"
                done = subprocess.run(
                    [sys.executable, __file__, "--child", str(model), mode, str(out),
                     "--samples", str(args.samples), "--length", str(args.length)],
                    capture_output=True, text=True, check=False,
                )  # fmt: skip
                if done.returncode:
                    sys.exit(f"depth {depth} {mode} failed:\n{done.stderr[-3000:]}")
                r = json.loads(done.stdout.strip().splitlines()[-1])
                rows.append({"depth": depth, "mode": mode, "checkpoint_mib": size, **r})
                print(f"depth {depth:3d}  {mode:8s}  checkpoint {size:7.1f} MiB  "
                      f"peak RSS {r['peak_rss_mib']:8.1f} MiB  "
                      f"{r['seconds'] / depth:6.2f} s/layer", flush=True)  # fmt: skip
    lo, hi = min(args.depths), max(args.depths)
    for mode in ("resident", "bounded"):
        peak = {r["depth"]: r["peak_rss_mib"] for r in rows if r["mode"] == mode}
        print(f"{mode:8s}: peak RSS depth {hi} / depth {lo} = {peak[hi] / peak[lo]:.3f}")


if __name__ == "__main__":
    main()
