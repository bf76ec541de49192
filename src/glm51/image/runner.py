"""Run an image build through the subprocess chokepoint and record what it produced."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from glm51 import proc
from glm51.errors import InfraError
from glm51.image.build import BuildSpec, buildx_argv


def git_sha(repo: Path) -> str:
    return proc.run(["git", "rev-parse", "HEAD"], cwd=repo).stdout.strip()


def git_source(repo: Path) -> str:
    done = proc.run(["git", "remote", "get-url", "origin"], cwd=repo, check=False)
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "unknown"


def package_version(repo: Path) -> str:
    """glm51's version as hatch-vcs computes it from git (the Docker context has no .git)."""
    done = proc.run([sys.executable, "-m", "hatchling", "version"], cwd=repo, check=False)
    if done.returncode == 0 and done.stdout.strip():
        return done.stdout.strip().splitlines()[-1]
    from glm51 import __version__

    return __version__


def created_now() -> str:
    """RFC 3339 UTC; SOURCE_DATE_EPOCH wins so a rebuild can carry the same date."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def build(spec: BuildSpec, *, record: Path) -> dict:
    """Build (and load or push) the image; write `record` (JSON) for the release to read."""
    spec.metadata_file.parent.mkdir(parents=True, exist_ok=True)
    spec.metadata_file.unlink(missing_ok=True)
    start = time.monotonic()
    # Output streams to the terminal: a full build runs for minutes.
    proc.run(buildx_argv(spec), capture=False)
    seconds = time.monotonic() - start
    try:
        metadata = json.loads(spec.metadata_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InfraError(f"buildx wrote no metadata to {spec.metadata_file}: {exc}") from exc
    result = {
        "tags": list(spec.tags),
        "digest": metadata.get("containerimage.digest"),
        "config_digest": metadata.get("containerimage.config.digest"),
        "pushed": spec.push,
        "build_seconds": round(seconds, 1),
        "labels": dict(spec.labels),
        "spec": {k: str(v) for k, v in asdict(spec).items() if k not in ("labels", "tags")},
        "buildx_metadata": metadata,
    }
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(result, indent=2) + "\n")
    return result
