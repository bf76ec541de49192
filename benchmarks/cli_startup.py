"""How long `glm51 --help` takes to start, next to `python -c pass` in the same run.

    python benchmarks/cli_startup.py [--runs 15]

Runs the two commands alternately (so both see the same machine load), then prints each
one's minimum and median wall time and what glm51 adds on top of the interpreter. The
minimum is the figure to compare between machines: the least the machine's noise added.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

HELP = [
    sys.executable,
    "-c",
    "import sys; from glm51.cli import main; sys.argv = ['glm51', '--help']; main()",
]
PASS = [sys.executable, "-c", "pass"]


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    timed(HELP)  # warm the file cache and the bytecode
    help_s, pass_s = [], []
    for _ in range(args.runs):
        help_s.append(timed(HELP))
        pass_s.append(timed(PASS))
    print(f"{'command':<16} {'min s':>7} {'median s':>9}   ({args.runs} runs each, alternated)")
    for name, xs in (("glm51 --help", help_s), ("python -c pass", pass_s)):
        print(f"{name:<16} {min(xs):>7.3f} {statistics.median(xs):>9.3f}")
    print(
        f"glm51 adds {min(help_s) - min(pass_s):.3f} s (min) to the interpreter's start; "
        f"ratio {min(help_s) / min(pass_s):.1f}x"
    )


if __name__ == "__main__":
    main()
