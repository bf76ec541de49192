"""Is `glm51 bench`'s measurement right, and is its client light enough?

Starts the scripted double (tests/doubles/openai_double.py) in its own process, emitting
tokens on a fixed schedule (token k of a stream at k / RATE s, TOKENS_PER_CHUNK per chunk,
as speculative decoding chunks them), and measures it with the bench's own code at
c = 1, 32, 64, 128. The true rate is known: RATE per stream, c x RATE in aggregate.
Prints the measured rate, its error, and the client process's CPU time per 1M tokens
and as a share of one core. A Markdown table, for docs/bench.md.

    python benchmarks/bench_accuracy.py [--rate 30] [--duration 20] [--concurrency 1,32,64,128]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from glm51.bench import measure
from glm51.bench.run import (
    FigureSpec,
    Session,
    Settings,
    measure_streams,
    probe_options,
    sized_prompt,
)
from glm51.endpoint.client import Endpoint, sync_client
from glm51.endpoint.health import wait_ready

REPO = Path(__file__).resolve().parents[1]
DOUBLE = REPO / "tests" / "doubles" / "openai_double.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one(concurrency: int, args: argparse.Namespace) -> dict:
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            str(DOUBLE),
            "--port",
            str(port),
            "--rate",
            str(args.rate),
            "--tokens-per-chunk",
            str(args.tokens_per_chunk),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + "/health", timeout_s=30, interval_s=0.1)
        settings = Settings(
            warmup_s=args.warmup, duration_s=args.duration, max_tokens=args.max_tokens, timeout_s=60
        )
        with sync_client(60) as http:
            session = Session(Endpoint(url, "GLM-5.1", http), url, "GLM-5.1", settings)
            probe_options(session)
            spec = FigureSpec(f"c{concurrency}", concurrency, 0)
            messages, prompt_tokens = sized_prompt(session, 0)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            streams, a, b = asyncio.run(
                measure_streams(session, spec, messages, prompt_tokens, lambda _s: None)
            )
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            # What the double really sent inside the window (its own clock, the same one).
            sent = http.get(f"{url}/debug/emitted", params={"a": a, "b": b}).json()["tokens"]
    finally:
        server.terminate()
        server.wait()
    window = (measure.single_stream if concurrency == 1 else measure.aggregate)(streams, a, b)
    nominal = args.rate * (1 if concurrency == 1 else concurrency)
    # c = 1 measures the decode rate (the schedule's); c > 1 what was sent in the window.
    true = nominal if concurrency == 1 else sent / (b - a)
    tokens = sum(s.usage.completion_tokens for s in streams if s.usage)
    return {
        "c": concurrency,
        "nominal": nominal,
        "true": true,
        "measured": window.tokens_per_s,
        "error": window.tokens_per_s / true - 1,
        "cpu_per_1m": cpu / tokens * 1e6,
        "core_share": cpu / wall,
        "tokens": tokens,
        "chunks": sum(s.chunks for s in streams),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=30.0, help="tokens/s per stream")
    parser.add_argument("--tokens-per-chunk", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--max-tokens", type=int, default=600)
    parser.add_argument("--concurrency", default="1,32,64,128")
    args = parser.parse_args()
    print(
        f"# double: {args.rate:g} tok/s per stream, {args.tokens_per_chunk} tokens per chunk; "
        f"warmup {args.warmup:g} s, window {args.duration:g} s, {args.max_tokens} tokens per "
        f"request; {os.cpu_count()} CPUs"
    )
    print(
        "| streams | configured tok/s | sent in window, tok/s | measured tok/s | error "
        "| client CPU s per 1M tokens | client CPU, share of one core | tokens (chunks) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in (int(x) for x in args.concurrency.split(",")):
        r = one(c, args)
        print(
            f"| {r['c']} | {r['nominal']:.0f} | {r['true']:.1f} | {r['measured']:.1f} "
            f"| {r['error']:+.2%} "
            f"| {r['cpu_per_1m']:.0f} | {r['core_share']:.1%} | {r['tokens']} ({r['chunks']}) |",
            flush=True,
        )


if __name__ == "__main__":
    main()
