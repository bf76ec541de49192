"""TOML file -> frozen pydantic model, with errors that name the file, the key and what was
expected. The recipe and the calibration manifests both load through here."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from glm51.errors import InputError

M = TypeVar("M", bound=BaseModel)


class CrossReferenceError(ValueError):
    """Raised by a model validator with (key, message) pairs spanning several sections."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{loc}: {msg}" for loc, msg in problems))


def describe(error: dict) -> str:
    """One pydantic error as `key: what was expected (got value)`."""
    loc = ".".join(str(part) for part in error["loc"] if not str(part).startswith("function-"))
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{loc}: unknown key"
    if kind == "missing":
        return f"{loc}: missing required key"
    if kind == "value_error" and isinstance(error.get("ctx", {}).get("error"), CrossReferenceError):
        return "\n".join(f"{where}: {msg}" for where, msg in error["ctx"]["error"].problems)
    msg = error["msg"].removeprefix("Value error, ")
    if kind == "value_error":
        return f"{loc}: {msg}" if loc else msg
    value = error.get("input")
    shown = "" if isinstance(value, dict) else f" (got {value!r})"
    return f"{loc}: expected {msg[0].lower()}{msg[1:]}{shown}"


def parse_toml(text: str, path: Path | str, model: type[M], what: str) -> M:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = "\n  ".join(describe(err) for err in exc.errors())
        raise InputError(f"{path}: invalid {what}\n  {lines}") from None


def load_toml(path: Path | str, model: type[M], what: str) -> M:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc.strerror})") from exc
    return parse_toml(text, path, model, what)
