"""The gateway on the CPU, for real: two `transformers serve` workers serving the tiny model,
the real smg started by `glm51 router` in front of them with an API key.

- the smoke suite's protocol tier passes through the router with the key; without it, exit 3;
- `glm51 bench` through the router measures both workers together (each one's log shows the
  requests it served);
- one worker killed in the middle of a bench: the figure finishes on the other; each lost
  request is in the record with why it could not be retried; /workers shows the dead one
  unhealthy;
- no output of any of these runs (stdout, stderr, logs, records, the dry run) holds the key.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from glm51.apikey import KeySource
from glm51.bench.run import Settings
from glm51.bench.stage import BenchRequest, run_bench
from glm51.recipe.load import load_recipe
from glm51.records import BenchRecord, SmokeRecord, read_record
from tests.support.servers import (
    GLM51,
    SERVED,
    free_port,
    hub_cache,
    start_worker,
    stop,
    wait_up,
)

pytestmark = pytest.mark.slow
KEY = "sk-gateway-test-0c4e9a1b"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Gateway:
    url: str
    key_file: Path
    recipe: Path
    workers: list[tuple[subprocess.Popen, str, Path]]
    router: subprocess.Popen
    outputs: Path  # every file a run wrote or printed goes under here
    runs: list[subprocess.CompletedProcess] = field(default_factory=list)

    def glm51(self, *args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "GLM51_API_KEY": ""}  # the key only where a test gives it
        done = subprocess.run([*GLM51, *args], env=env, capture_output=True, text=True, timeout=600)
        self.runs.append(done)
        return done

    def posts(self, log: Path) -> int:
        return log.read_text().count('"POST /v1/chat/completions')


def _recipe(path: Path) -> Path:
    """The recipe with a gateway that notices a dead worker within a second or two."""
    text = (REPO / "release" / "glm51.toml").read_text()
    for old, new in (
        ('policy = "cache_aware"', 'policy = "round_robin"'),
        ("health_failure_threshold = 3", "health_failure_threshold = 1"),
        ("health_check_interval_s = 10", "health_check_interval_s = 1"),
        ("health_check_timeout_s = 5", "health_check_timeout_s = 1"),
    ):
        assert old in text
        text = text.replace(old, new)
    path.mkdir(parents=True)
    shutil.copytree(REPO / "release" / "calibration", path / "calibration")
    (path / "glm51.toml").write_text(text)
    return path / "glm51.toml"


@pytest.fixture(scope="module")
def gateway(tiny_model, tmp_path_factory) -> Gateway:
    root = tmp_path_factory.mktemp("gateway")
    outputs = root / "outputs"
    outputs.mkdir()
    cache = hub_cache(tiny_model, root / "hub")
    key_file = root / "api-key"
    key_file.write_text(KEY + "\n")
    recipe = _recipe(root / "recipe")
    workers = []
    for i in range(2):
        log = outputs / f"worker{i}.log"
        child, url = start_worker(cache, log)
        workers.append((child, url, log))
    router, gw = None, None
    try:
        for child, url, log in workers:
            wait_up(child, url, log)
        port = free_port()
        argv = [*GLM51, "router", "--recipe", str(recipe), "--served-name", SERVED]
        argv += ["--host", "127.0.0.1", "--port", str(port)]
        argv += ["--prometheus-port", str(free_port()), "--api-key-file", str(key_file)]
        for _, url, _ in workers:
            argv += ["--worker-url", url]
        dry = subprocess.run([*argv, "--dry-run"], capture_output=True, text=True, timeout=60)
        assert dry.returncode == 0, dry.stderr
        (outputs / "router-dry-run.txt").write_text(dry.stdout + dry.stderr)
        with (outputs / "router.log").open("w") as sink:
            env = {**os.environ, "GLM51_API_KEY": ""}
            router = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}"
        wait_up(router, url, outputs / "router.log", timeout_s=60)
        gw = Gateway(url, key_file, recipe, workers, router, outputs)
        yield gw
    finally:
        if router is not None:
            stop(router)
        for child, _, _ in workers:
            stop(child)


def test_the_dry_run_shows_the_command_and_where_the_key_comes_from(gateway):
    text = (gateway.outputs / "router-dry-run.txt").read_text()
    assert "-m glm51.router.keyed --host 127.0.0.1" in text
    assert "--policy round_robin" in text and "--health-failure-threshold 1" in text
    assert f"the file {gateway.key_file}" in text and "--api-key <api-key>" in text
    assert KEY not in text


def test_smoke_passes_through_the_router_with_the_key_and_is_exit_3_without(gateway):
    smoke = ["smoke", "--endpoint", gateway.url, "--served-name", SERVED, "--tier", "protocol"]
    smoke += ["--max-tokens", "12", "--timeout", "300"]
    out = gateway.outputs / "smoke"
    ok = gateway.glm51(*smoke, "--out", str(out), "--api-key-file", str(gateway.key_file))
    assert ok.returncode == 0, ok.stderr
    record = read_record(out / "smoke.json", SmokeRecord)
    assert [c.status for c in record.checks] == ["passed"] * 4
    refused = gateway.glm51(*smoke, "--out", str(gateway.outputs / "smoke-nokey"))
    assert refused.returncode == 3, refused.stderr
    assert "answered HTTP 401: no API key was sent" in refused.stderr
    assert not (gateway.outputs / "smoke-nokey" / "smoke.json").exists()


BENCH = ["--served-name", SERVED, "--figures", "c32", "--warmup", "0", "--duration", "8"]
BENCH += ["--max-tokens", "8", "--timeout", "300", "--gates", "rehearsal"]


def test_bench_through_the_router_measures_both_workers_together(gateway):
    before = [gateway.posts(log) for _, _, log in gateway.workers]
    out = gateway.outputs / "bench"
    done = gateway.glm51(
        "bench", "--endpoint", gateway.url, "--out", str(out), *BENCH,
        "--api-key-file", str(gateway.key_file), "--recipe", str(gateway.recipe),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (figure,) = read_record(out / "bench.json", BenchRecord).figures
    assert figure.concurrency == 32 and figure.tokens_per_s > 0 and figure.requests >= 2
    served = [
        gateway.posts(log) - b for (_, _, log), b in zip(gateway.workers, before, strict=True)
    ]
    assert all(n >= 2 for n in served), served  # round robin: each worker took its share


def test_a_worker_killed_mid_bench_the_bench_finishes_on_the_other(gateway):
    (victim, victim_url, _), _ = gateway.workers
    killed: list[float] = []

    def on_start(_spec):
        def tick(seconds: float) -> None:
            if seconds > 3 and not killed:
                victim.kill()
                killed.append(seconds)

        return tick

    request = BenchRequest(
        endpoint=gateway.url,
        out_dir=gateway.outputs / "bench-killed",
        figures=("c32",),
        settings=Settings(
            warmup_s=0, duration_s=10, max_tokens=8, timeout_s=300, max_failed_requests=64
        ),
        served_name=SERVED,
        gate_set="rehearsal",
        api_key=KeySource(file=gateway.key_file),
    )
    record = run_bench(request, load_recipe(gateway.recipe), on_start=on_start)
    assert killed, "the worker was not killed during the figure"
    (figure,) = record.figures
    assert figure.tokens_per_s > 0  # the figure finished, on the worker that lived
    lost = figure.failed_requests
    assert 1 <= len(lost) <= 32
    for r in lost:
        assert r.at_s >= killed[0] - 0.5
        assert "the stream had started" in r.why_not_retried, r
    saved = read_record(request.out_dir / "bench.json", BenchRecord)
    assert len(saved.figures[0].failed_requests) == len(lost)
    assert f"lost {len(lost)} request(s)" in (request.out_dir / "bench.md").read_text()
    (gateway.outputs / "lost-requests.json").write_text(
        json.dumps([r.model_dump() for r in lost], indent=1)
    )
    reasons = sorted({r.why_not_retried for r in lost})
    print(
        f"\nkilled at {killed[0]:.1f}s: {len(lost)} request(s) lost; {figure.requests} in the "
        f"window on the survivor, {figure.tokens_per_s:.2f} tok/s; why: {reasons}"
    )
    workers = _workers(gateway, until=lambda w: not w[victim_url])
    assert workers == {victim_url: False, gateway.workers[1][1]: True}


def _workers(gateway: Gateway, until, timeout_s: float = 15.0) -> dict[str, bool]:
    """The router's /workers as {url: is_healthy}, polled until ``until`` holds."""
    headers = {"Authorization": f"Bearer {KEY}"}
    deadline = time.monotonic() + timeout_s
    while True:
        data = httpx.get(gateway.url + "/workers", headers=headers, timeout=10).json()
        health = {w["url"]: w["is_healthy"] for w in data["workers"]}
        if until(health) or time.monotonic() > deadline:
            return health
        time.sleep(0.5)


def test_workers_needs_the_key(gateway):
    assert httpx.get(gateway.url + "/workers", timeout=10).status_code == 401


def test_no_output_of_these_runs_holds_the_key(gateway):
    texts = {}
    for path in gateway.outputs.rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_bytes().decode("utf-8", "replace")
    for i, done in enumerate(gateway.runs):  # the CLI runs' argv, stdout and stderr
        texts[f"run {i}"] = " ".join(done.args) + done.stdout + done.stderr
    assert len(texts) >= 10 and any("smoke.json" in name for name in texts)
    holding = [name for name, text in texts.items() if KEY in text]
    assert holding == []
    # The router's own process tree never carried it in argv either.
    assert not re.search(KEY, (gateway.outputs / "router.log").read_text())
