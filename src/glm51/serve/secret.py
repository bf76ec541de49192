"""The API key on its way into SGLang: never argv. SGLang 0.5.23 reads `--api-key` from no
environment variable; its `--config` YAML is read in-process, so the key goes there, in a file
only this user can read, removed when the server exits."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def key_config(key: str | None) -> Iterator[Path | None]:
    """The key as SGLang's `--config` YAML: 0600 in a 0700 folder of its own, removed after."""
    if key is None:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="glm51-key-"))
    path = folder / "api-key.yaml"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            # A JSON string is a YAML double-quoted scalar: the key stays a string, verbatim.
            f.write(f"api-key: {json.dumps(key)}\n")
        yield path
    finally:
        path.unlink(missing_ok=True)
        folder.rmdir()
