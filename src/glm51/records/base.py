"""The record base: frozen, strict, JSON with a kind and a schema version."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from glm51.errors import InputError
from glm51.outputs import os_errors, write_text

R = TypeVar("R", bound="Record")


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Record(BaseModel):
    """Base of every stage record. Subclasses set `kind` (a Literal) and `SCHEMA_VERSION`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    SCHEMA_VERSION: ClassVar[int] = 1

    kind: str
    schema_version: int = 1
    glm51_version: str = ""
    created_at: str = Field(default_factory=utc_now)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"


class ToolVersions(BaseModel):
    """The versions of what produced a record (absent tools stay None)."""

    model_config = ConfigDict(frozen=True, extra="allow")
    python: str | None = None
    torch: str | None = None
    cuda: str | None = None
    transformers: str | None = None
    modelopt: str | None = None
    sglang: str | None = None
    huggingface_hub: str | None = None


def write_record(record: Record, path: Path | str) -> Path:
    """Write atomically (temp file + rename), so a reader never sees half a record."""
    path = Path(path)
    with os_errors(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
    return write_text(path, record.to_json())


M = TypeVar("M", bound=BaseModel)


def read_versioned_json(
    path: Path, cls: type[M], *, kind: str, schema_version: int, what: str, missing_hint: str = ""
) -> M:
    """A JSON file with a `kind` and a `schema_version`, validated as ``cls``; every error
    names the file and, for a bad value, the key."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no {what}{missing_hint}") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied; the {what} cannot be read") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a JSON {what} ({exc})") from None
    if not isinstance(data, dict) or data.get("kind") != kind:
        got = data.get("kind") if isinstance(data, dict) else None
        raise InputError(f"{path}: kind is {got!r}, expected {kind!r}")
    if data.get("schema_version") != schema_version:
        raise InputError(
            f"{path}: schema_version {data.get('schema_version')!r}, "
            f"this glm51 reads {schema_version}"
        )
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise InputError(f"{path}: {where}: {first['msg']}") from None


def read_record(path: Path | str, cls: type[R]) -> R:
    """Read and validate a record; errors name the file and the offending key."""
    kind = cls.model_fields["kind"].default
    return read_versioned_json(
        Path(path), cls, kind=kind, schema_version=cls.SCHEMA_VERSION, what="record"
    )
