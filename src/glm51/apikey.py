"""The API key: where it comes from (a file, or an environment variable the recipe names),
read once, checked, and never shown. Everything that prints a command or a source shows
`KeySource.describe()`, never the key."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from glm51.errors import InputError

# What a dry run or a log shows where the key would be.
REDACTED = "<api-key>"


@dataclass(frozen=True, kw_only=True)
class KeySource:
    """A key from ``file`` (``--api-key-file``) or else from the variable ``env`` names."""

    file: Path | None = None
    env: str | None = None  # the recipe's [deploy].api_key_env
    option: str = "--api-key-file"

    @property
    def given(self) -> bool:
        """Whether a key is asked for: a file named, or the recipe's variable set."""
        return self.file is not None or bool(self.env and os.environ.get(self.env))

    def describe(self) -> str:
        if self.file is not None:
            return f"the file {self.file} ({self.option})"
        if self.env and os.environ.get(self.env):
            return f"the environment variable {self.env}"
        return "none"

    def read(self) -> str | None:
        """The key, or None when none is given. A file that is missing, unreadable or empty,
        or a key with whitespace inside, is bad input naming the file or variable."""
        if self.file is not None:
            where = f"{self.option} {self.file}"
            try:
                text = self.file.read_text(encoding="utf-8")
            except FileNotFoundError:
                raise InputError(f"{where}: the API key file does not exist") from None
            except IsADirectoryError:
                raise InputError(f"{where}: is a folder; expected a file holding the key") from None
            except PermissionError:
                raise InputError(f"{where}: permission denied reading the API key file") from None
            except UnicodeDecodeError:
                raise InputError(f"{where}: not UTF-8 text; expected the key on one line") from None
            return _checked(text, where)
        if self.env and os.environ.get(self.env):
            return _checked(os.environ[self.env], f"${self.env}")
        return None


def _checked(text: str, where: str) -> str:
    key = text.strip()
    if not key:
        raise InputError(f"{where}: the API key is empty")
    if any(c.isspace() for c in key):
        raise InputError(f"{where}: the API key has whitespace inside; expected one token")
    return key


def redact(text: str, key: str | None) -> str:
    """``text`` with every occurrence of ``key`` replaced (for a server's words in an error)."""
    return text.replace(key, REDACTED) if key else text


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def keyless_bind_words(host: str, env: str | None) -> str | None:
    """What to say when ``host`` is reachable from other machines and no key guards it."""
    if is_loopback(host):
        return None
    return (
        f"binding {host} (not loopback) without an API key: anyone who reaches it can use it; "
        f"give --api-key-file FILE or set ${env or '<deploy.api_key_env>'}"
    )
