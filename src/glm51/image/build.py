"""The exact `docker buildx build` argv for one image build (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from glm51.errors import InputError
from glm51.image import locks
from glm51.image.tags import docker_version, image_tags, short_sha
from glm51.recipe.schema import Recipe

Stack = Literal["full", "slim"]
TARGET = "final"


@dataclass(frozen=True)
class BuildSpec:
    """Everything one build needs; `buildx_argv` turns it into the command."""

    context: Path
    dockerfile: Path
    tags: tuple[str, ...]
    base_image: str
    stack: Stack
    sglang_build: str
    version: str
    build_id: str
    metadata_file: Path
    image: str = ""  # the recipe's image name
    default_profile: str = ""
    lock: str = ""  # the lock the build installs, relative to the context
    sglang_plugins: tuple[str, ...] = ()  # plugins/<name> folders installed after the lock
    serve_port: int = 5000  # the default profile's port: GLM51_PORT, EXPOSE, the healthcheck
    labels: Mapping[str, str] = field(default_factory=dict)
    ca_bundle: Path | None = None
    push: bool = False
    no_cache: bool = False


def buildx_argv(spec: BuildSpec) -> list[str]:
    argv = [
        "docker",
        "buildx",
        "build",
        "--file",
        str(spec.dockerfile),
        "--target",
        TARGET,
        "--progress",
        "plain",
        "--metadata-file",
        str(spec.metadata_file),
    ]
    for tag in spec.tags:
        argv += ["--tag", tag]
    build_args = {
        "BASE_IMAGE": spec.base_image,
        "STACK": spec.stack,
        "SGLANG_BUILD": spec.sglang_build,
        "GLM51_VERSION": spec.version,
        "BUILD_ID": spec.build_id,
        "DEFAULT_PROFILE": spec.default_profile,
        "SERVE_PORT": str(spec.serve_port),
        "GLM51_SGLANG_PLUGINS": " ".join(spec.sglang_plugins),
    }
    for name, value in build_args.items():
        argv += ["--build-arg", f"{name}={value}"]
    for name, value in sorted(spec.labels.items()):
        argv += ["--label", f"{name}={value}"]
    if spec.ca_bundle is not None:
        # A BuildKit secret: mounted only by the RUN steps that ask for it, never in a layer.
        argv += ["--secret", f"id=ca_bundle,src={spec.ca_bundle}"]
    if spec.no_cache:
        argv.append("--no-cache")
    argv.append("--push" if spec.push else "--load")
    argv.append(str(spec.context))
    return argv


def oci_labels(
    *,
    version: str,
    revision: str,
    source: str | None,
    created: str,
    base_image: str,
    stack: Stack,
    sglang_build: str,
    sglang_version: str,
    b12x_version: str,
    lock_digest: str,
) -> dict[str, str]:
    return {
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.revision": revision,
        **({"org.opencontainers.image.source": source} if source else {}),
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.base.name": base_image,
        "org.glm51.stack": stack,
        "org.glm51.sglang.build": sglang_build,
        "org.glm51.sglang.version": sglang_version,
        "org.glm51.b12x.version": b12x_version,
        "org.glm51.lock.digest": lock_digest,
    }


def plan(
    recipe: Recipe,
    repo: Path,
    *,
    version: str,
    sha: str,
    created: str,
    source: str | None,
    metadata_file: Path,
    base_image: str | None = None,
    python: str | None = None,
    stack: Stack = "full",
    sglang_build: str | None = None,
    ca_bundle: Path | None = None,
    push: bool = False,
    no_cache: bool = False,
    image_name: str | None = None,
    registry: str | None = None,
) -> BuildSpec:
    """Resolve the recipe's image section into a BuildSpec; refuse unresolved or missing locks."""
    image_name, image = recipe.image(image_name)
    pins = locks.base_pins(repo, image)
    base_image = base_image or pins["base"]["ref"]
    if python is None:
        by_ref = {table.get("ref"): table.get("python") for table in pins.values()}
        python = by_ref.get(base_image) or image.python_versions[0]
    if python not in image.python_versions:
        raise InputError(f"python {python!r}: the locks exist for {list(image.python_versions)}")
    sglang_build = sglang_build or image.default_sglang_build
    if sglang_build not in recipe.sglang_builds:
        raise InputError(
            f"sglang build {sglang_build!r}: expected one of {sorted(recipe.sglang_builds)}"
        )
    lock = locks.lock_path(repo, image, "slim" if stack == "slim" else sglang_build, python)
    if not lock.is_file():
        raise InputError(f"{lock}: no such lock; run `nox -s update_pins`")
    if locks.is_unresolved(lock):
        raise InputError(
            f"{lock} is not resolved yet (sglang build {sglang_build!r} needs GitHub): "
            "run `nox -s update_pins` where github.com is reachable, commit the locks, rebuild"
        )
    pinned = locks.pinned_versions(lock)
    build = recipe.sglang_builds[sglang_build]
    if stack == "slim":
        sglang_version = b12x_version = "none"
    else:
        sglang_version = build.version or f"{build.git_url}@{build.commit}"
        b12x_version = pinned.get("b12x", "none")
    default_profile = next(iter(image.profiles.get(sglang_build, ())), "")
    labels = oci_labels(
        version=version,
        revision=sha,
        source=source,
        created=created,
        base_image=base_image,
        stack=stack,
        sglang_build=sglang_build,
        sglang_version=sglang_version,
        b12x_version=b12x_version,
        lock_digest=locks.locks_digest(locks.lock_files(repo, image)),
    )
    return BuildSpec(
        context=repo,
        dockerfile=repo / image.dockerfile,
        tags=tuple(
            f"{registry}/{tag}" if registry else tag
            for tag in image_tags(image, version=version, sha=sha, slim=stack == "slim")
        ),
        base_image=base_image,
        stack=stack,
        sglang_build=sglang_build,
        version=version,
        build_id=f"{docker_version(version)}-{short_sha(sha)}-{stack}",
        metadata_file=metadata_file,
        image=image_name,
        default_profile=default_profile,
        lock=str(lock.relative_to(repo)),
        sglang_plugins=() if stack == "slim" else build.plugins,
        serve_port=recipe.profiles[default_profile].server.port if default_profile else 5000,
        labels=labels,
        ca_bundle=ca_bundle,
        push=push,
        no_cache=no_cache,
    )
