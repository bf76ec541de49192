"""`--launch`: start `glm51 serve` in this container, wait for /health, stop it afterwards."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from glm51 import proc
from glm51.endpoint.client import base_url
from glm51.endpoint.health import wait_ready

log = logging.getLogger("glm51.endpoint")


@contextmanager
def launched(
    url: str, serve_args: Sequence[str], *, ready_timeout: float, stop_timeout: float = 60.0
) -> Iterator[str]:
    """Run `glm51 serve SERVE_ARGS` until the block ends; yields the endpoint's base URL."""
    child = proc.spawn([sys.executable, "-m", "glm51", "serve", *serve_args])
    try:
        wait_ready(
            base_url(url) + "/health",
            timeout_s=ready_timeout,
            still_running=lambda: child.poll() is None,
            interval_s=1.0,
        )
        yield base_url(url)
    finally:
        stop(child, stop_timeout)


def stop(child: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM (glm51 serve forwards it to sglang), then SIGKILL after `timeout`."""
    if child.poll() is not None:
        return
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("glm51 serve did not stop within %.0fs of SIGTERM; killing it", timeout)
        child.kill()
        child.wait()
