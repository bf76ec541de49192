"""Run an image build through the subprocess chokepoint and record what it produced."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from glm51 import __version__, proc, source_url
from glm51.errors import CommandFailed, InfraError
from glm51.image.build import BuildSpec, buildx_argv
from glm51.records import ImageRecord, write_record


def git_sha(repo: Path) -> str:
    return proc.run(["git", "rev-parse", "HEAD"], cwd=repo).stdout.strip()


def git_source(repo: Path) -> str | None:
    """The origin's URL when it is a remote one (without any credentials in it), else the
    project's own URL from its metadata, else None: no source label (a clone's local path
    says nothing to whoever inspects the image)."""
    done = proc.run(["git", "remote", "get-url", "origin"], cwd=repo, check=False)
    url = done.stdout.strip() if done.returncode == 0 else ""
    if url.startswith("https://"):
        return "https://" + url.removeprefix("https://").rpartition("@")[2]
    if url.startswith(("git@", "ssh://")):
        return url
    return source_url()


def package_version(repo: Path) -> str:
    """glm51's version as hatch-vcs computes it from git (the Docker context has no .git)."""
    done = proc.run([sys.executable, "-m", "hatchling", "version"], cwd=repo, check=False)
    if done.returncode == 0 and done.stdout.strip():
        return done.stdout.strip().splitlines()[-1]
    return __version__


def created_now() -> str:
    """RFC 3339 UTC; SOURCE_DATE_EPOCH wins so a rebuild can carry the same date."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def build(spec: BuildSpec, *, record: Path, local_base: bool = False) -> ImageRecord:
    """Build (and load or push) the image; write `record` (JSON) for the release to read."""
    spec.metadata_file.parent.mkdir(parents=True, exist_ok=True)
    spec.metadata_file.unlink(missing_ok=True)
    start = time.monotonic()
    # Output streams to the terminal: a full build runs for minutes.
    try:
        proc.run(buildx_argv(spec), capture=False)
    except CommandFailed as exc:
        if local_base:
            raise
        # The most common cause where no registry is reachable: the base cannot be pulled.
        raise CommandFailed(
            exc.argv,
            exc.returncode,
            f"if the base image {spec.base_image} could not be pulled (no registry reachable), "
            "build on a local Debian base instead: `bash ci/base-image.sh glm51-base:bookworm` "
            "then `nox -s image -- --local-base` (Debian bookworm + Python 3.11 instead of the "
            "CUDA 13.0 Ubuntu base; the same locks and checks)",
        ) from None
    seconds = time.monotonic() - start
    try:
        metadata = json.loads(spec.metadata_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InfraError(f"buildx wrote no metadata to {spec.metadata_file}: {exc}") from exc
    result = ImageRecord(
        glm51_version=__version__,
        image=spec.image,
        tags=spec.tags,
        digest=metadata.get("containerimage.digest"),
        config_digest=metadata.get("containerimage.config.digest"),
        pushed=spec.push,
        build_seconds=round(seconds, 1),
        version=spec.version,
        sglang_build=spec.sglang_build,
        stack=spec.stack,
        base_image=spec.base_image,
        lock=spec.lock,
        labels=dict(spec.labels),
        buildx_metadata=metadata,
    )
    write_record(result, record)
    return result
