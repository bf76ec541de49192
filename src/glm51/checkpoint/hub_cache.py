"""Resolve which checkpoint to use: a local folder, or a repo + revision in the Hub cache.

The cache is read through huggingface_hub's own offline API (`snapshot_download` with
`local_files_only`, `scan_cache_dir`), so its layout is never re-implemented here. Works with
huggingface_hub 1.x (the image's: sglang's tokenizers pin needs <2) and 2.x.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from huggingface_hub import constants, scan_cache_dir, snapshot_download
from huggingface_hub.errors import CacheNotFound, LocalEntryNotFoundError

from glm51.errors import InfraError, InputError


def _cached_refs(repo_id: str, cache_dir: Path | None) -> list[str] | None:
    """The refs cached for ``repo_id`` (None when the repo is not in the cache at all)."""
    try:
        info = scan_cache_dir(cache_dir)
    except CacheNotFound:
        return None
    for repo in info.repos:
        if repo.repo_id == repo_id and repo.repo_type == "model":
            return sorted(ref for rev in repo.revisions for ref in rev.refs)
    return None


def from_hub_cache(repo_id: str, revision: str = "main", cache_dir: Path | None = None) -> Path:
    """The snapshot folder of ``repo_id`` at ``revision`` (a ref or a commit sha), offline."""
    try:
        return Path(
            snapshot_download(
                repo_id, revision=revision, cache_dir=cache_dir, local_files_only=True
            )
        )
    except LocalEntryNotFoundError:
        pass
    where = cache_dir or constants.HF_HUB_CACHE
    refs = _cached_refs(repo_id, cache_dir)
    if refs is None:
        raise InputError(
            f"{repo_id} is not in the Hugging Face cache ({where}); download it first "
            f"(hf download {repo_id} --revision {revision}) or pass --model PATH"
        ) from None
    raise InputError(
        f"{repo_id}: revision {revision!r} has no snapshot in the cache ({where}); "
        f"cached refs: {', '.join(refs) or 'none'}; download it first "
        f"(hf download {repo_id} --revision {revision})"
    ) from None


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


HUB_PROBE_TIMEOUT_S = 5.0


def require_hub(what: str, offline_alternative: str) -> None:
    """Fail fast (InfraError, exit 6) when the Hub cannot be reached, instead of the minute of
    retries a library would spend; ``offline_alternative`` says what to pass instead."""
    hint = f"; {offline_alternative}"
    if constants.HF_HUB_OFFLINE:
        raise InfraError(f"{what} needs the Hugging Face Hub, but HF_HUB_OFFLINE is set{hint}")
    try:
        httpx.head(constants.ENDPOINT, timeout=HUB_PROBE_TIMEOUT_S, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise InfraError(
            f"{what} needs the Hugging Face Hub, and {constants.ENDPOINT} cannot be reached "
            f"({type(exc).__name__}){hint}"
        ) from None
