"""Calibration manifests (release/calibration/*.toml): what data a pass uses, exactly.

A manifest names its sources (Hub dataset, revision, split, column and its conversion,
filters), how many samples each gives, the token-length window, the seed, and the sha256 of
the token ids the pass produced, so a later build can be reproduced and checked.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from glm51.outputs import write_text
from glm51.recipe.base import Strict
from glm51.recipe.toml_model import load_toml, parse_toml

SHA256 = r"^[0-9a-f]{64}$"
COMMIT = re.compile(r"^[0-9a-f]{40}$")

Conversion = Literal["messages", "conversation", "sharegpt", "xlam"]


class Filters(Strict):
    """Rows dropped before tokenization."""

    moderation: str | None = Field(
        None,
        description="column of OpenAI moderation results (one per message, each with "
        "`flagged`): rows with any flagged message are dropped",
    )
    drop_if_true: tuple[str, ...] = Field(
        (), description="boolean columns that drop the row when true (e.g. `redacted`)"
    )
    languages: tuple[str, ...] = Field(
        (), description="keep only rows whose `language` column is one of these (empty: all)"
    )


class Source(Strict):
    """One dataset a pass draws from."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$", description="short id, unique in the pass")
    dataset: str = Field(description="Hugging Face Hub dataset id")
    config: str | None = Field(None, description="dataset config (subset) name")
    revision: str = Field(
        description="commit sha (40 hex), or a ref that `nox -s update_pins` pins"
    )
    split: str = "train"
    gated: bool = Field(False, description="needs an accepted licence and an HF token")
    column: str = Field("messages", description="the column holding the conversation")
    convert: Conversion = Field(
        "messages",
        description="messages: role/content list as is; conversation: role/content list "
        "with extra keys (WildChat, LMSYS); sharegpt: from/value list; xlam: query + "
        "answers + tools JSON strings",
    )
    tools_column: str | None = Field(
        None, description="column with the tool definitions (JSON list), passed to the template"
    )
    system_prompts: tuple[str, ...] = Field(
        (),
        description="system prompts given, round-robin by row index, to conversations "
        "that have none",
    )
    samples: int = Field(ge=1, description="samples drawn from this source")
    filters: Filters = Filters()
    files: str | None = Field(
        None,
        description="local file name or glob under --data-dir [default: NAME.jsonl, "
        "NAME.json or NAME.parquet]",
    )

    @property
    def pinned(self) -> bool:
        return bool(COMMIT.match(self.revision))


class Manifest(Strict):
    """One calibration pass's data."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    description: str
    seed: int = Field(ge=0)
    min_tokens: int = Field(1, ge=1, description="samples with fewer tokens are dropped")
    max_tokens: int = Field(ge=1, description="samples with more tokens are dropped")
    sha256: str | None = Field(
        None,
        pattern=SHA256,
        description="sha256 of the token ids this pass produced (`glm51 calib record`)",
    )
    sources: tuple[Source, ...]

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if self.max_tokens < self.min_tokens:
            raise ValueError("max_tokens must be >= min_tokens")
        names = [s.name for s in self.sources]
        if not names:
            raise ValueError("at least one source is needed")
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique, got {names}")
        return self

    @property
    def samples(self) -> int:
        return sum(s.samples for s in self.sources)


def parse_manifest(text: str, path: Path | str = "<manifest>") -> Manifest:
    return parse_toml(text, path, Manifest, "manifest")


def load_manifest(path: Path | str) -> Manifest:
    return load_toml(path, Manifest, "manifest")


_SHA_LINE = re.compile(r'^sha256\s*=\s*"[^"]*"[^\n]*$', re.MULTILINE)
_FIRST_TABLE = re.compile(r"^\[", re.MULTILINE)


def record_digest(path: Path | str, digest: str) -> bool:
    """Write `sha256 = "<digest>"` into the manifest's top level; True when it changed.

    A text edit, not a TOML round trip, so the manifest keeps its comments and layout.
    """
    if not re.match(SHA256, digest):
        raise ValueError(f"not a sha256 hex digest: {digest!r}")
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    line = f'sha256 = "{digest}"'
    if _SHA_LINE.search(text):
        new = _SHA_LINE.sub(line, text, count=1)
    else:
        # Top-level keys must come before the first table header.
        match = _FIRST_TABLE.search(text)
        at = match.start() if match else len(text)
        head = text[:at] if text[:at].endswith("\n") or not text[:at] else text[:at] + "\n"
        new = head + line + "\n" + ("\n" if match else "") + text[at:]
    parse_manifest(new, path)  # never write a manifest that no longer parses
    if new != text:
        write_text(path, new)
    return new != text
