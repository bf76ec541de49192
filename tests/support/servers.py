"""Real local servers for the gateway tests: `transformers serve` workers (the tiny model on
the CPU, as the rehearsal serves it) and `glm51 router` (the real smg) in front of them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from glm51.endpoint.health import wait_ready

SERVED = "glm51/tiny"
GLM51 = [sys.executable, "-c", "import sys; from glm51.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hub_cache(model: Path, root: Path) -> Path:
    """The tiny model as `glm51/tiny` in a Hub cache layout (how `transformers serve` finds it)."""
    rev = "0" * 40
    repo = root / "models--glm51--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(rev)
    shutil.copytree(model, repo / "snapshots" / rev)
    return root


def start_worker(cache: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """`transformers serve` on a free loopback port; returns it and its base URL (not yet up)."""
    port = free_port()
    exe = Path(sys.executable).with_name("transformers")
    cmd = [str(exe)] if exe.exists() else [shutil.which("transformers") or "transformers"]
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    argv = [*cmd, "serve", SERVED, "--device", "cpu", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("w") as sink:
        child = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT)
    return child, f"http://127.0.0.1:{port}"


def wait_up(child: subprocess.Popen, url: str, log: Path, timeout_s: float = 300) -> None:
    try:
        wait_ready(
            f"{url}/health",
            timeout_s=timeout_s,
            interval_s=0.5,
            still_running=lambda: child.poll() is None,
        )
    except Exception:
        child.kill()
        raise AssertionError(log.read_text()[-3000:]) from None


def stop(child: subprocess.Popen, timeout_s: float = 30) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout_s)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
