"""`glm51 router` as one library call: a request, checked once (options, the key, and every
replica answering /health and serving the recipe's model), then smg started in front of the
replicas with the key handed over on a pipe. The dry run prints the command and starts nothing."""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.util import find_spec

import httpx

from glm51 import proc
from glm51.apikey import REDACTED, KeySource, keyless_bind_words
from glm51.endpoint.client import (
    Endpoint,
    EndpointError,
    RequestRejected,
    Unauthorized,
    base_url,
    sync_client,
)
from glm51.errors import InputError, PreflightError
from glm51.recipe.schema import Recipe
from glm51.router.command import keyed_argv, smg_args


@dataclass(frozen=True, kw_only=True)
class RouterRequest:
    worker_urls: tuple[str, ...] = ()  # empty: the recipe's deploy.router.worker_urls
    host: str | None = None  # None: the recipe's
    port: int | None = None
    prometheus_port: int | None = None
    served_name: str | None = None  # None: the recipe's served_name
    api_key: KeySource = field(default_factory=KeySource)
    dry_run: bool = False
    preflight_timeout_s: float = 10.0  # one worker's /health or /v1/models

    def workers(self, recipe: Recipe) -> tuple[str, ...]:
        return self.worker_urls or recipe.deploy.router.worker_urls

    def check(self, recipe: Recipe) -> None:
        """Every option, before any worker is asked (each refusal names its option)."""
        urls = self.workers(recipe)
        if not urls:
            raise InputError(
                "--worker-url: no replicas; name each replica's base URL (repeat the option) "
                "or list them in the recipe's deploy.router.worker_urls"
            )
        where = "--worker-url" if self.worker_urls else "recipe deploy.router.worker_urls"
        seen = [base_url(u, option=where) for u in urls]  # or exit 3 naming where it came from
        twice = sorted({u for u in seen if seen.count(u) > 1})
        if twice:
            raise InputError(f"--worker-url: {', '.join(twice)} named twice")
        for option, value in (("--port", self.port), ("--prometheus-port", self.prometheus_port)):
            if value is not None and not 1 <= value <= 65535:
                raise InputError(f"{option} {value}: expected a port, 1 to 65535")
        r = recipe.deploy.router
        port, metrics = self.port or r.port, self.prometheus_port or r.prometheus_port
        if port == metrics:
            raise InputError(
                f"--port {port} and --prometheus-port {metrics}: the same port; smg serves "
                "requests and /metrics on two ports (defaults: the recipe's deploy.router)"
            )
        if self.preflight_timeout_s <= 0:
            raise InputError(f"--preflight-timeout {self.preflight_timeout_s}: expected > 0")
        self.api_key.read()  # a missing or empty key file: exit 3, nothing started
        words = self.keyless(recipe)
        if words and recipe.deploy.require_api_key:
            raise InputError(f"{words} (the recipe's deploy.require_api_key is true)")

    def keyless(self, recipe: Recipe) -> str | None:
        """The warning for a gateway reachable from other machines without a key, if so."""
        if self.api_key.given:
            return None
        host = self.host or recipe.deploy.router.host
        return keyless_bind_words(host, recipe.deploy.api_key_env)

    def args(self, recipe: Recipe) -> list[str]:
        r = recipe.deploy.router
        return smg_args(
            r,
            [base_url(u) for u in self.workers(recipe)],
            host=self.host or r.host,
            port=self.port or r.port,
            prometheus_port=self.prometheus_port or r.prometheus_port,
        )


def dry_run_lines(req: RouterRequest, recipe: Recipe) -> list[str]:
    """The exact command, the key shown as where it comes from."""
    argv = keyed_argv(req.args(recipe))
    lines = [
        f"# smg {len(req.workers(recipe))} replica(s); policy {recipe.deploy.router.policy}",
        f"# api key: {req.api_key.describe()}"
        + (
            f"; read from stdin by glm51.router.keyed and passed to smg in memory as "
            f"--api-key {REDACTED} (never in argv)"
            if req.api_key.given
            else " (smg then accepts every request: give --api-key-file or "
            f"${recipe.deploy.api_key_env or 'GLM51_API_KEY'})"
        ),
        shlex.join(argv),
    ]
    return lines


def check_workers(
    req: RouterRequest, recipe: Recipe, key: str | None, log: Callable[[str], None]
) -> None:
    """Each replica answers /health and lists the served model; otherwise bad input (exit 3)
    naming the URL, before smg starts."""
    name = req.served_name or recipe.model.served_name
    with sync_client(req.preflight_timeout_s, key) as http:
        for url in req.workers(recipe):
            worker = Endpoint(url, name, http)
            try:
                status = worker.health()
                if status != 200:
                    raise InputError(f"--worker-url {url}: /health answered HTTP {status}")
                models = worker.models()
            except Unauthorized as exc:
                raise InputError(f"--worker-url {url}: {exc}") from None
            except RequestRejected as exc:
                raise InputError(
                    f"--worker-url {url}: answers, but not as an OpenAI-compatible server ({exc})"
                ) from None
            except EndpointError as exc:
                raise InputError(f"--worker-url {url}: does not answer ({exc})") from None
            if name not in models:
                raise InputError(
                    f"--worker-url {url}: serves {models}, not {name!r} (the recipe's "
                    "served_name; --served-name to ask for another)"
                )
            log(f"glm51 router: {base_url(url)} healthy, serves {name}")


def start_router(
    req: RouterRequest, recipe: Recipe, *, log: Callable[[str], None] = lambda _: None
) -> subprocess.Popen[bytes] | None:
    """Check, then start smg (None for a dry run, which prints and starts nothing)."""
    req.check(recipe)
    if req.dry_run:
        for line in dry_run_lines(req, recipe):
            print(line)  # plain: copy-pasteable
        return None
    if find_spec("smg") is None:
        raise PreflightError(
            f"smg is not installed for {sys.executable}: pip install 'glm51[router]' "
            "(smg==1.13.0, the Shepherd Model Gateway)"
        )
    key = req.api_key.read()
    words = req.keyless(recipe)
    if words:
        log(f"glm51 router: warning: {words}")
    check_workers(req, recipe, key, log)
    return proc.spawn(keyed_argv(req.args(recipe)), secret_stdin=key or "")


def url_of(req: RouterRequest, recipe: Recipe) -> str:
    r = recipe.deploy.router
    host = req.host or r.host
    host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    return f"http://{host}:{req.port or r.port}"


def is_up(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
