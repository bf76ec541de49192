"""`glm51 router`: smg (the Shepherd Model Gateway) in front of replicas, from the recipe."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from glm51.options import SECONDS_MAX, ApiKeyFileOption, RecipeOption

err = Console(stderr=True)


def router_command(
    worker_url: Annotated[
        list[str] | None,
        typer.Option(
            "--worker-url",
            help="A replica's base URL, e.g. http://10.0.0.1:5000 (repeat per replica; "
            "default: the recipe's deploy.router.worker_urls).",
        ),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default: the recipe's).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: the recipe's).")] = None,
    prometheus_port: Annotated[
        int | None, typer.Option(help="smg's /metrics port (default: the recipe's).")
    ] = None,
    served_name: Annotated[
        str | None,
        typer.Option(help="Model each replica must serve (default: the recipe's served_name)."),
    ] = None,
    preflight_timeout: Annotated[
        float,
        typer.Option(max=SECONDS_MAX, help="Seconds a replica may take to answer the preflight."),
    ] = 10.0,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the command (the key's source, never the key).")
    ] = False,
    api_key_file: ApiKeyFileOption = None,
    recipe: RecipeOption = None,
) -> None:
    """Start smg in front of replicas: each must answer /health and serve the model first.

    The policy, health thresholds, retries and ports come from the recipe's \\[deploy.router].
    The API key (--api-key-file or $GLM51_API_KEY) reaches smg on a pipe, never in argv.
    Exit 3, nothing started, for a replica that does not answer or serves another model.
    """
    from glm51 import proc
    from glm51.apikey import KeySource
    from glm51.recipe.load import load_recipe
    from glm51.router.stage import RouterRequest, start_router, url_of

    rec = load_recipe(recipe)
    request = RouterRequest(
        worker_urls=tuple(worker_url or ()),
        host=host,
        port=port,
        prometheus_port=prometheus_port,
        served_name=served_name,
        api_key=KeySource(file=api_key_file, env=rec.deploy.api_key_env),
        dry_run=dry_run,
        preflight_timeout_s=preflight_timeout,
    )
    say = lambda m: err.print(escape(m), highlight=False)  # noqa: E731
    child = start_router(request, rec, log=say)
    if child is None:
        raise typer.Exit(0)
    say(f"glm51 router: smg starting at {url_of(request, rec)}")
    proc.forward_signals(child)
    code = child.wait()
    raise typer.Exit(128 - code if code < 0 else code)


def register(app: typer.Typer) -> None:
    app.command("router")(router_command)
