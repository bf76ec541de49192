"""The whole recipe, and the checks that span sections."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, model_validator

from glm51.errors import InputError
from glm51.recipe.base import Strict
from glm51.recipe.deploy import DeployRecipe
from glm51.recipe.fidelity import FidelityRecipe
from glm51.recipe.gates import Gates, SmokeFloors
from glm51.recipe.images import ImageRecipe
from glm51.recipe.quantize import QuantizeRecipe
from glm51.recipe.rehearsal import RehearsalRecipe
from glm51.recipe.release import ReleaseRecipe
from glm51.recipe.serving import Profile, ServeDefaults, SGLangBuild
from glm51.recipe.toml_model import CrossReferenceError


class ModelIds(Strict):
    source: str = Field(pattern=r"^[\w.-]+/[\w.-]+$", description="BF16 source repo on the Hub")
    source_revision: str = Field(description="source commit sha (or a ref until pinned)")
    published: str = Field(pattern=r"^[\w.-]+/[\w.-]+$", description="the NVFP4 repo we publish")
    served_name: str = Field(description="--served-model-name")
    model_type: Literal["glm_moe_dsa"] = "glm_moe_dsa"


class Recipe(Strict):
    schema_version: Literal[1]
    model: ModelIds
    serve: ServeDefaults
    sglang_builds: dict[str, SGLangBuild]
    profiles: dict[str, Profile]
    quantize: QuantizeRecipe
    gates: Gates
    smoke: SmokeFloors
    fidelity: FidelityRecipe
    release: ReleaseRecipe
    rehearsal: RehearsalRecipe
    images: dict[str, ImageRecipe] = Field(min_length=1, description="image name -> its recipe")
    deploy: DeployRecipe = Field(default_factory=DeployRecipe)
    # Where the recipe was read from: relative paths in it (manifests) resolve against it.
    _source: Path | None = PrivateAttr(None)

    @property
    def source(self) -> Path | None:
        return self._source

    def located(self, source: Path) -> Recipe:
        """This recipe, knowing the file it came from (set once, by the loader)."""
        self._source = source
        return self

    def pass_manifest(self, pass_name: str) -> Path:
        """The manifest file of a calibration pass (relative to the recipe's folder)."""
        passes = {p.name: p for p in self.quantize.passes}
        where = self._source or Path("<recipe>")
        if pass_name not in passes:
            raise InputError(
                f"{where}: no calibration pass {pass_name!r} (passes: {', '.join(passes)})"
            )
        return (self._source.parent if self._source else Path.cwd()) / passes[pass_name].manifest

    def fidelity_manifest(self) -> Path:
        """The fidelity text's manifest file (relative to the recipe's folder)."""
        return (self._source.parent if self._source else Path.cwd()) / self.fidelity.manifest

    def image(self, name: str | None = None) -> tuple[str, ImageRecipe]:
        """An image recipe by name (default: the first in the recipe)."""
        name = name or next(iter(self.images))
        if name not in self.images:
            raise InputError(f"unknown image {name!r}; expected one of {sorted(self.images)}")
        return name, self.images[name]

    @model_validator(mode="after")
    def _cross_references(self) -> Recipe:
        # Raised as (location, message) pairs so the loader can name the key.
        problems: list[tuple[str, str]] = []
        if self.serve.default_profile not in self.profiles:
            problems.append(("serve.default_profile", f"expected one of {sorted(self.profiles)}"))
        if self.gates.profile not in self.profiles:
            problems.append(("gates.profile", f"expected one of {sorted(self.profiles)}"))
        for name, profile in self.profiles.items():
            build = self.sglang_builds.get(profile.sglang_build)
            if build is None:
                problems.append(
                    (
                        f"profiles.{name}.sglang_build",
                        f"{profile.sglang_build!r} is not a build; "
                        f"expected one of {sorted(self.sglang_builds)}",
                    )
                )
                continue
            offered = {
                "fp4_gemm_backend": build.fp4_gemm_backends,
                "moe_runner_backend": build.moe_runner_backends,
                "attention_backend": build.attention_backends,
            }
            for key, choices in offered.items():
                value = getattr(profile.server, key)
                if value is not None and value not in choices:
                    problems.append(
                        (
                            f"profiles.{name}.server.{key}",
                            f"{value!r} is not a backend of sglang build "
                            f"{profile.sglang_build!r}; expected one of {list(choices)}",
                        )
                    )
            if profile.server.tp > profile.hardware.gpu_count:
                problems.append(
                    (
                        f"profiles.{name}.server.tp",
                        f"tp {profile.server.tp} needs at least that many GPUs; "
                        f"hardware.gpu_count is {profile.hardware.gpu_count}",
                    )
                )
        problems += self._image_problems()
        problems += self._deploy_problems()
        if problems:
            raise CrossReferenceError(problems)
        return self

    def _deploy_problems(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if self.deploy.profile is not None and self.deploy.profile not in self.profiles:
            problems.append(("deploy.profile", f"expected one of {sorted(self.profiles)}"))
        if self.deploy.kubernetes.image not in self.images:
            problems.append(("deploy.kubernetes.image", f"expected one of {sorted(self.images)}"))
        for name, profile in self.profiles.items():
            hw, server = profile.hardware, profile.server
            stages = server.pp_size or 1
            if server.tp <= hw.gpu_count and server.tp * stages > hw.gpu_count * hw.nodes:
                problems.append(
                    (
                        f"profiles.{name}.server",
                        f"tp {server.tp} x pp {stages} needs {server.tp * stages} GPUs; "
                        f"hardware has {hw.nodes} node(s) x {hw.gpu_count}",
                    )
                )
        return problems

    def _image_problems(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        for image_name, image in self.images.items():
            where = f"images.{image_name}"
            if image.default_sglang_build not in self.sglang_builds:
                problems.append(
                    (
                        f"{where}.default_sglang_build",
                        f"expected one of {sorted(self.sglang_builds)}",
                    )
                )
            for build, names in image.profiles.items():
                if build not in self.sglang_builds:
                    problems.append(
                        (
                            f"{where}.profiles.{build}",
                            f"expected one of {sorted(self.sglang_builds)}",
                        )
                    )
                for name in names:
                    profile = self.profiles.get(name)
                    if profile is None:
                        problems.append((f"{where}.profiles.{build}", f"{name!r}: no such profile"))
                    elif profile.sglang_build != build:
                        problems.append(
                            (
                                f"{where}.profiles.{build}",
                                f"{name!r} needs sglang build {profile.sglang_build!r}",
                            )
                        )
        return problems

    def profile(self, name: str | None = None) -> tuple[str, Profile]:
        name = name or self.serve.default_profile
        if name not in self.profiles:
            raise InputError(f"unknown profile {name!r}; expected one of {sorted(self.profiles)}")
        return name, self.profiles[name]
