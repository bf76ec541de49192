"""Resolve which checkpoint to serve: a local folder, or a repo + revision in the Hub cache."""

from __future__ import annotations

import os
import re
from pathlib import Path

from glm51.errors import InputError


def hub_cache_dir() -> Path:
    """The same lookup order as huggingface_hub: HF_HUB_CACHE, HF_HOME/hub, ~/.cache."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface"
    )
    return Path(home) / "hub"


def from_hub_cache(repo_id: str, revision: str = "main", cache_dir: Path | None = None) -> Path:
    """The snapshot folder of ``repo_id`` at ``revision`` (a ref or a commit sha), offline."""
    cache = cache_dir or hub_cache_dir()
    repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
    if not repo_dir.is_dir():
        raise InputError(
            f"{repo_id} is not in the Hugging Face cache ({repo_dir} does not exist); "
            f"download it first (hf download {repo_id} --revision {revision}) or pass --model PATH"
        )
    if re.fullmatch(r"[0-9a-f]{40}", revision):
        commit = revision
    else:
        ref = repo_dir / "refs" / revision
        if not ref.is_file():
            known = sorted(p.name for p in (repo_dir / "refs").glob("*")) or ["none"]
            raise InputError(
                f"{repo_id}: revision {revision!r} is not in the cache ({ref} is missing); "
                f"cached refs: {', '.join(known)}"
            )
        commit = ref.read_text().strip()
    snapshot = repo_dir / "snapshots" / commit
    if not snapshot.is_dir():
        raise InputError(f"{repo_id}@{revision}: snapshot {snapshot} is missing from the cache")
    return snapshot


def resolve_model(
    model: Path | None, model_id: str | None, revision: str | None, default_repo: str
) -> Path:
    if model is not None and model_id is not None:
        raise InputError("pass either --model PATH or --model-id REPO, not both")
    if model is not None:
        if not model.is_dir():
            raise InputError(f"{model}: --model must be a checkpoint folder")
        return model
    return from_hub_cache(model_id or default_repo, revision or "main")
