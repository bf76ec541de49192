"""Wait until an OpenAI-compatible server answers /health."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from glm51.errors import InfraError


def health_url(host: str, port: int) -> str:
    # A server bound to every interface is reached on loopback.
    host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    return f"http://{host}:{port}/health"


def wait_ready(
    url: str,
    *,
    timeout_s: float,
    still_running: Callable[[], bool] = lambda: True,
    interval_s: float = 2.0,
    client: httpx.Client | None = None,
) -> float:
    """Poll ``url`` until it answers 200; returns the seconds it took."""
    start = time.monotonic()
    client = client or httpx.Client(timeout=5.0)
    while True:
        if not still_running():
            raise InfraError(f"the server exited before {url} answered")
        try:
            if client.get(url).status_code == 200:
                return time.monotonic() - start
        except httpx.TransportError:
            pass
        if time.monotonic() - start > timeout_s:
            raise InfraError(f"{url} did not answer 200 within {timeout_s:.0f}s")
        time.sleep(interval_s)
