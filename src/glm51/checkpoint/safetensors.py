"""Read a safetensors header without torch: 8-byte little-endian length, then JSON.

Only the header is read (a few MB at most), so checking a 400 GB checkpoint stays cheap;
the data is checked by length against the largest declared ``data_offsets`` end.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

# A header over this is not a real checkpoint's (they are a few MB); refuse to read it.
MAX_HEADER_BYTES = 100 * 1024 * 1024


class ShardError(Exception):
    """A shard whose header or data cannot be what it declares."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind  # "header" (unreadable or truncated header) or "data" (truncated data)
        super().__init__(message)


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class ShardHeader:
    path: Path
    header_len: int
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]
    file_size: int

    @property
    def data_end(self) -> int:
        """Bytes the file must have: length prefix + header + the furthest tensor end."""
        furthest = max((t.end for t in self.tensors.values()), default=0)
        return 8 + self.header_len + furthest


def read_header(path: Path) -> ShardHeader:
    """Parse ``path``'s header; raises ShardError when it is truncated or malformed."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        prefix = fh.read(8)
        if len(prefix) < 8:
            raise ShardError("header", f"{size} bytes: shorter than the 8-byte header length")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > MAX_HEADER_BYTES:
            raise ShardError("header", f"declares a {header_len}-byte header: not safetensors")
        raw = fh.read(header_len)
    if len(raw) < header_len:
        raise ShardError(
            "header", f"header declares {header_len} bytes but the file has {size - 8} after it"
        )
    try:
        parsed = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ShardError("header", f"header is not valid JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise ShardError("header", "header is not a JSON object")
    metadata = parsed.pop("__metadata__", {}) or {}
    tensors: dict[str, TensorInfo] = {}
    for name, entry in parsed.items():
        try:
            begin, end = entry["data_offsets"]
            tensors[name] = TensorInfo(str(entry["dtype"]), tuple(entry["shape"]), begin, end)
        except (KeyError, TypeError, ValueError):
            raise ShardError(
                "header", f"tensor {name!r} has no valid dtype/shape/data_offsets"
            ) from None
    header = ShardHeader(path, header_len, tensors, metadata, size)
    if size < header.data_end:
        raise ShardError(
            "data",
            f"tensors end at byte {header.data_end} but the file has only {size} bytes "
            f"({header.data_end - size} missing)",
        )
    return header
