"""The API key on its way into SGLang: never argv. SGLang 0.5.23 reads `--api-key` from no
environment variable; its `--config` YAML is read in-process, so the key goes there, in a file
only this user can read, removed when the server exits."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from glm51.errors import InputError


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


def check_passthrough(passthrough: Sequence[str], *, key_given: bool, env: str | None) -> None:
    """Pass-through flags that would undo the above: `--api-key` puts a key in argv (and in a
    dry run); a second `--config` while glm51 passes the key in its own would leave SGLang
    reading one of the two. Refused by name, never echoing the value (exit 3)."""
    for arg in passthrough:
        name = arg.split("=", 1)[0]
        if name == "--api-key":
            raise InputError(
                "pass-through --api-key: the key would be in argv, where every user of this "
                "machine can read it (ps); give --api-key-file FILE or set "
                f"${env or 'GLM51_API_KEY'}"
            )
        if name == "--config" and key_given:
            raise InputError(
                "pass-through --config: glm51 serve passes the API key to SGLang in its own "
                "--config file; put those settings after `--` as flags instead"
            )
