"""The whole recipe, and the checks that span sections."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from glm51.recipe.base import Strict
from glm51.recipe.gates import Gates, SmokeFloors
from glm51.recipe.images import Images
from glm51.recipe.quantize import QuantizeRecipe
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
    images: Images

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
        if problems:
            raise CrossReferenceError(problems)
        return self

    def _image_problems(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        for image_name, image in self.images:
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
        from glm51.errors import InputError

        name = name or self.serve.default_profile
        if name not in self.profiles:
            raise InputError(f"unknown profile {name!r}; expected one of {sorted(self.profiles)}")
        return name, self.profiles[name]
