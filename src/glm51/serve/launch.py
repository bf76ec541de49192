"""Run the rendered sglang command: preflight first, then the server, signals forwarded."""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from glm51 import proc
from glm51.apikey import KeySource, keyless_bind_words
from glm51.checkpoint.hub_cache import resolve_model
from glm51.endpoint.health import health_url, wait_ready
from glm51.errors import InputError, PreflightError
from glm51.preflight.findings import Report, Severity
from glm51.preflight.run import MISSING_FIX, check
from glm51.recipe.schema import Recipe
from glm51.serve.nodes import placements
from glm51.serve.secret import check_passthrough, key_config
from glm51.sglang.command import Placement, render
from glm51.sglang.help import install_hint

out = Console()
err = Console(stderr=True)


@dataclass(frozen=True)
class Options:
    host: str | None = None  # None: the profile's
    port: int | None = None
    dry_run: bool = False
    skip_preflight: bool = False
    ready_timeout: float | None = None  # seconds to wait for /health; None: do not wait
    api_key: KeySource = field(default_factory=KeySource)
    nnodes: int | None = None  # None: the profile's hardware.nodes
    node_rank: int | None = None  # None in a dry run: every node's command
    dist_init_addr: str | None = None  # HOST:PORT of node 0


def checkpoint(recipe: Recipe, model: Path | None, model_id: str | None, revision: str | None):
    """The checkpoint folder to serve. A named one that is wrong is bad input (exit 3); none
    named and the default not cached is the preflight's checkpoint.missing (exit 4)."""
    try:
        return resolve_model(model, model_id, revision, recipe.model.published)
    except InputError as exc:
        if model is not None or model_id is not None:
            raise
        missing = Report()
        missing.add("checkpoint.missing", Severity.ERROR, str(exc), MISSING_FIX)
        missing.raise_for_errors()
        raise  # not reached: raise_for_errors raised


def serve(
    recipe: Recipe,
    profile_name: str | None,
    model_path: Path,
    passthrough: Sequence[str] = (),
    options: Options = Options(),
) -> int:
    """Returns the exit code for the CLI: 0 for a dry run, else the server's own."""
    name, profile = recipe.profile(profile_name)
    host, port, skip_preflight = options.host, options.port, options.skip_preflight
    nodes = placements(name, profile, options)
    key = options.api_key.read()  # a missing or empty key file: bad input, before anything
    check_passthrough(passthrough, key_given=key is not None, env=recipe.deploy.api_key_env)
    words = (
        None
        if key is not None
        else keyless_bind_words(host or profile.server.host, recipe.deploy.api_key_env)
    )
    if words and recipe.deploy.require_api_key:
        raise InputError(f"{words} (the recipe's deploy.require_api_key is true)")
    if words:
        err.print(f"[yellow]glm51: warning: {escape(words)}[/]", soft_wrap=True)

    def spec_for(placement: Placement | None, config: Path | str | None):  # type: ignore[no-untyped-def]
        return render(
            recipe,
            profile,
            model_path=model_path,
            host=host,
            port=port,
            passthrough=passthrough,
            placement=placement,
            key_config=config,
        )

    if options.dry_run:
        # Plain print: the line must stay copy-pasteable (no wrapping, no markup).
        print(f"# profile {name} ({'validated' if profile.validated else 'NOT validated'})")
        if key is not None:
            print(
                f"# api key: from {options.api_key.describe()}; glm51 serve writes it to a 0600 "
                "YAML file in a private temporary folder and passes that as --config "
                "(never in argv); the file is removed when the server exits"
            )
        for placement in nodes:
            if placement is not None:
                print(f"# node {placement.node_rank} of {placement.nnodes}")
            config = "<private-0600-file-with-api-key>" if key is not None else None
            print(spec_for(placement, config).shell())
        return 0
    placement = nodes[0]

    if not skip_preflight:
        report = check(
            recipe,
            name,
            model_path=model_path,
            passthrough=passthrough,
            node=None if placement is None else (placement.node_rank, placement.nnodes),
        )
        for finding in report.warnings:
            err.print(f"[yellow]{escape(finding.line())}[/]", soft_wrap=True)
        report.raise_for_errors()
    if not profile.validated:
        err.print(f"[yellow]profile {name} is not validated on hardware: {profile.evidence}[/]")

    if skip_preflight and find_spec("sglang") is None:  # the preflight would have said so
        raise PreflightError(
            f"sglang is not installed for {sys.executable}: "
            f"{install_hint(profile.sglang_build, recipe.sglang_builds[profile.sglang_build])}"
        )
    with key_config(key) as config:
        spec = spec_for(placement, config)
        child = proc.spawn(spec.argv, env=spec.env)
        proc.forward_signals(child)
        if options.ready_timeout is not None and (placement is None or placement.node_rank == 0):
            _report_when_ready(health_url(spec.host, spec.port), child, options.ready_timeout)
        code = child.wait()
    # Killed by a signal: report it the way a shell does (128 + N), not as a negative code.
    return 128 - code if code < 0 else code


def _report_when_ready(url: str, child, timeout: float) -> None:  # type: ignore[no-untyped-def]
    def poll() -> None:
        try:
            took = wait_ready(url, timeout_s=timeout, still_running=lambda: child.poll() is None)
            err.print(f"[green]glm51: server ready at {url} after {took:.0f}s[/]")
        except Exception as exc:  # reported, the server keeps its own exit code
            err.print(f"[red]glm51: {escape(str(exc))}[/]")

    threading.Thread(target=poll, daemon=True, name="wait-ready").start()
