"""Run the rendered sglang command: preflight first, then the server, signals forwarded."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from glm51 import proc
from glm51.endpoint.health import health_url, wait_ready
from glm51.recipe import load_recipe
from glm51.serve.command import render
from glm51.serve.model_path import resolve_model

out = Console()
err = Console(stderr=True)


def serve(
    *,
    recipe_path: Path | None,
    profile_name: str | None,
    model: Path | None,
    model_id: str | None,
    revision: str | None,
    host: str | None,
    port: int | None,
    passthrough: Sequence[str],
    dry_run: bool,
    skip_preflight: bool,
    wait_ready: bool,
    ready_timeout: float,
) -> int:
    """Returns the exit code for the CLI: 0 for a dry run, else the server's own."""
    recipe = load_recipe(recipe_path)
    name, profile = recipe.profile(profile_name)
    model_path = resolve_model(model, model_id, revision, recipe.model.published)
    spec = render(
        recipe, profile, model_path=model_path, host=host, port=port, passthrough=passthrough
    )
    if dry_run:
        # Plain print: the line must stay copy-pasteable (no wrapping, no markup).
        print(f"# profile {name} ({'validated' if profile.validated else 'NOT validated'})")
        print(spec.shell())
        return 0

    if not skip_preflight:
        from glm51.preflight.run import check

        report = check(recipe, name, model_path=model_path, passthrough=passthrough)
        for finding in report.warnings:
            err.print(f"[yellow]{escape(finding.line())}[/]", soft_wrap=True)
        report.raise_for_errors()
    if not profile.validated:
        err.print(f"[yellow]profile {name} is not validated on hardware: {profile.evidence}[/]")

    child = proc.spawn(spec.argv, env=spec.env)
    proc.forward_signals(child)
    if wait_ready:
        _report_when_ready(health_url(spec.host, spec.port), child, ready_timeout)
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
