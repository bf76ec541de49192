"""`glm51 deploy k8s` as one library call: a request checked once (the image record pushed and
by digest, the profile, the replica count, the gateway's image, the output folder), then the
manifests rendered from the recipe and written as YAML (nothing written in a dry run)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from glm51.deploy.k8s import Target, render
from glm51.errors import InputError
from glm51.outputs import check_no_overlap, claim_output_folder, write_text
from glm51.recipe.schema import Recipe
from glm51.records import ImageRecord, read_record

HEADER = "# Rendered by `glm51 deploy k8s` from {recipe} (profile {profile}); do not edit.\n"


@dataclass(frozen=True, kw_only=True)
class K8sRequest:
    out_dir: Path
    image_record: Path  # image.json of `glm51 image build --push` (or the release's run)
    profile: str | None = None  # None: the recipe's deploy.profile, else serve.default_profile
    replicas: int | None = None  # None: the recipe's deploy.replicas
    router_image: str | None = None  # None: the recipe's deploy.kubernetes.router_image
    dry_run: bool = False

    def profile_name(self, recipe: Recipe) -> str:
        name = self.profile or recipe.deploy.profile
        return recipe.profile(name)[0]  # an unknown name is exit 3, naming the choices

    def check(self, recipe: Recipe) -> Target:
        """Every option checked, before anything is written (each refusal names its option)."""
        replicas = recipe.deploy.replicas if self.replicas is None else self.replicas
        if replicas < 1:
            raise InputError(f"--replicas {replicas}: expected at least 1")
        router_image = self.router_image or recipe.deploy.kubernetes.router_image
        if not router_image:
            raise InputError(
                "--router-image: the gateway needs an image with `pip install 'glm51[router]'` "
                "(smg 1.13.0); name it here or in the recipe's deploy.kubernetes.router_image"
            )
        record = read_record(self.image_record, ImageRecord)
        wanted = recipe.deploy.kubernetes.image
        if record.image != wanted:
            raise InputError(
                f"--image-record {self.image_record}: image {record.image!r}, the recipe's "
                f"deploy.kubernetes.image is {wanted!r}"
            )
        image = record.by_digest()
        if image is None:
            raise InputError(
                f"--image-record {self.image_record}: {record.tags[0]} was not pushed (no "
                "registry digest); a cluster pulls the image by digest: push it first"
            )
        name = self.profile_name(recipe)
        profile = recipe.profiles[name]
        missing = [v for v in profile.node_env if v not in recipe.deploy.kubernetes.node_env]
        if profile.hardware.nodes > 1 and missing:
            raise InputError(
                f"profile {name} names {', '.join(missing)} (node_env): set their values in the "
                "recipe's [deploy.kubernetes.node_env]"
            )
        check_no_overlap(self.out_dir, {"--image-record": self.image_record}, "--out")
        claim_output_folder(self.out_dir, option="--out", command="deploy k8s", create=False)
        return Target(profile_name=name, image=image, router_image=router_image, replicas=replicas)


def manifests_text(recipe: Recipe, target: Target) -> dict[str, str]:
    """File name -> YAML text (several objects as one multi-document file)."""
    head = HEADER.format(recipe=recipe.source or "the recipe", profile=target.profile_name)
    files = {}
    for name, objects in render(recipe, target).items():
        docs = objects if isinstance(objects, list) else [objects]
        files[name] = head + yaml.safe_dump_all(docs, sort_keys=False, explicit_start=True)
    return files


def run_k8s(req: K8sRequest, recipe: Recipe) -> dict[str, str]:
    """Render and write OUT/*.yaml; returns file name -> text (a dry run writes nothing)."""
    files = manifests_text(recipe, req.check(recipe))
    if req.dry_run:
        return files
    claim_output_folder(req.out_dir, option="--out", command="deploy k8s")
    for name, text in files.items():
        write_text(req.out_dir / name, text)
    return files
