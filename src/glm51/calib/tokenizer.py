"""The tokenizer that applies the chat template to calibration data: from a local folder, from
the Hub cache, or from the Hub, with errors that say which and what to pass instead."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from glm51.checkpoint.hub_cache import require_hub
from glm51.errors import InfraError, InputError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# What a tokenizer folder holds (one of them is enough for AutoTokenizer).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
OFFLINE_HINT = "pass --tokenizer FOLDER (a local tokenizer), and --data-dir for the sources"


def looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or spec.count("/") != 1 or Path(spec).exists()


def from_folder(folder: Path, option: str = "--tokenizer") -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    if not folder.is_dir():
        raise InputError(f"{option} {folder}: no such folder")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise InputError(
            f"{option} {folder}: no tokenizer in it (expected one of {', '.join(TOKENIZER_FILES)})"
        )
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise InputError(f"{option} {folder}: cannot load its tokenizer ({exc})") from None


def from_hub(repo_id: str, revision: str | None) -> PreTrainedTokenizerBase:
    """From the Hub cache if it is there, else from the Hub (checked to be reachable first)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(repo_id, revision=revision, local_files_only=True)
    except (OSError, ValueError):
        pass  # not cached
    require_hub(f"the tokenizer of {repo_id}@{revision or 'main'}", OFFLINE_HINT)
    try:
        return AutoTokenizer.from_pretrained(repo_id, revision=revision)
    except (OSError, ValueError) as exc:
        raise InfraError(f"cannot load the tokenizer of {repo_id}@{revision}: {exc}") from None


def load_tokenizer(spec: str | None, default_repo: str, default_revision: str):
    """--tokenizer as given (a folder, or a Hub id), else the recipe's source model."""
    if spec is None:
        return from_hub(default_repo, default_revision)
    if looks_like_path(spec):
        return from_folder(Path(spec).expanduser())
    return from_hub(spec, None)
