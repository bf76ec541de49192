"""`glm51 deploy k8s`: Kubernetes manifests rendered from the recipe."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from glm51.options import ProfileOption, RecipeOption

err = Console(stderr=True)
deploy_app = typer.Typer(help="Deploy past one box (Kubernetes manifests from the recipe).")


@deploy_app.command("k8s")
def k8s_command(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for the YAML manifests.", file_okay=False)
    ],
    image_record: Annotated[
        Path,
        typer.Option(
            help="image.json of the pushed image (`glm51 image build --push`): the pods run it "
            "by digest.",
            dir_okay=False,
        ),
    ],
    profile: ProfileOption = None,
    replicas: Annotated[
        int | None, typer.Option(help="Replicas behind the gateway (default: the recipe's).")
    ] = None,
    router_image: Annotated[
        str | None,
        typer.Option(help="The gateway's image, with glm51\\[router] (default: the recipe's)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the manifests; write nothing.")
    ] = False,
    recipe: RecipeOption = None,
) -> None:
    """Render the replicas (Deployment, or LeaderWorkerSet when a replica spans nodes) and the
    smg gateway (Deployment, Service, RBAC to list pods) into OUT/*.yaml.

    The API key comes from the Secret the recipe's deploy.kubernetes.api_key_secret names
    (create it with kubectl; the manifests never hold the key).
    """
    from glm51.deploy.stage import K8sRequest, run_k8s
    from glm51.recipe.load import load_recipe

    rec = load_recipe(recipe)
    request = K8sRequest(
        out_dir=out_dir,
        image_record=image_record,
        profile=profile,
        replicas=replicas,
        router_image=router_image,
        dry_run=dry_run,
    )
    files = run_k8s(request, rec)
    if dry_run:
        for name, text in files.items():
            print(f"# ---- {name}\n{text}", end="")
        return
    err.print(f"glm51 deploy k8s: wrote {', '.join(files)} to {out_dir}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(deploy_app, name="deploy")
