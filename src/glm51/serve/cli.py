"""`glm51 serve`: the validated launch configuration, preflighted, then run."""

from __future__ import annotations

from typing import Annotated

import typer

from glm51 import env
from glm51.options import (
    SECONDS_MAX,
    ApiKeyFileOption,
    ModelIdOption,
    ModelOption,
    ProfileOption,
    RecipeOption,
    RevisionOption,
    dry_run_option,
)


def serve_command(
    extra: Annotated[
        list[str] | None,
        typer.Argument(
            help="Pass-through sglang flags (after --).", show_default=False, metavar="SGLANG_FLAGS"
        ),
    ] = None,
    model: ModelOption = None,
    model_id: ModelIdOption = None,
    revision: RevisionOption = None,
    profile: ProfileOption = None,
    host: Annotated[str | None, typer.Option(help="Override the profile's host.")] = None,
    port: Annotated[
        int | None,
        typer.Option(envvar=env.PORT, min=1, max=65535, help="Override the profile's port."),
    ] = None,
    dry_run: Annotated[
        bool, dry_run_option("Print the environment and command, shell-quoted, and exit.")
    ] = False,
    skip_preflight: Annotated[
        bool, typer.Option("--skip-preflight", help="Start sglang without the preflight checks.")
    ] = False,
    wait_ready: Annotated[
        bool, typer.Option("--wait-ready", help="Poll /health and report when the server is up.")
    ] = False,
    ready_timeout: Annotated[
        float,
        typer.Option(min=0.1, max=SECONDS_MAX, help="Seconds --wait-ready waits for /health."),
    ] = 1800.0,
    api_key_file: ApiKeyFileOption = None,
    nnodes: Annotated[
        int | None,
        typer.Option(
            min=1, help="Nodes this replica spans (a multi-node profile: its hardware.nodes)."
        ),
    ] = None,
    node_rank: Annotated[
        int | None,
        typer.Option(
            help="This node's rank, 0 to nnodes-1 (a dry run without it prints every node)."
        ),
    ] = None,
    dist_init_addr: Annotated[
        str | None,
        typer.Option(help="HOST:PORT of node 0, where a multi-node replica's ranks meet."),
    ] = None,
    recipe: RecipeOption = None,
) -> None:
    """Run SGLang with a recipe profile (the validated launch configuration).

    The API key (--api-key-file, or the variable the recipe's deploy.api_key_env names)
    reaches SGLang in a private 0600 --config file, never in argv or a log.
    """
    from glm51.apikey import KeySource
    from glm51.recipe.load import load_recipe
    from glm51.serve import launch

    loaded = load_recipe(recipe)
    options = launch.Options(
        host,
        port,
        dry_run,
        skip_preflight,
        ready_timeout if wait_ready else None,
        api_key=KeySource(file=api_key_file, env=loaded.deploy.api_key_env),
        nnodes=nnodes,
        node_rank=node_rank,
        dist_init_addr=dist_init_addr,
    )
    model_path = launch.checkpoint(loaded, model, model_id, revision)
    code = launch.serve(loaded, profile, model_path, tuple(extra or ()), options)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command(
        "serve",
        context_settings={"allow_interspersed_args": False},
        epilog="Everything after `--` goes to sglang unchanged, e.g. "
        "`glm51 serve --model /models/GLM-5.1-NVFP4 -- --log-level debug`.",
    )(serve_command)
