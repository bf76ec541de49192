"""Calibration data: token-id sets with a digest, built from manifests or local JSONL.

The digest is sha256 over a canonical encoding of the token ids (see `digest_of`), so it
depends only on the ids and their order: the same manifest, data revision and tokenizer
give the same digest on any machine.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import os
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from glm51.calib.conversations import (
    BadRow,
    Message,
    check_messages,
    rejected,
    to_chat,
    with_system_prompt,
)
from glm51.calib.manifest import Manifest, Source, load_manifest
from glm51.checkpoint.hub_cache import require_hub
from glm51.errors import InfraError, InputError
from glm51.outputs import os_errors, write_bytes

log = logging.getLogger(__name__)

_U32 = 1 << 32


class ChatTokenizer(Protocol):
    """What we need of a transformers tokenizer."""

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any: ...


def digest_of(samples: Iterable[Sequence[int]]) -> str:
    """sha256 over, for each sample in order: its length then its ids, all uint32 LE."""
    import numpy as np

    h = hashlib.sha256()
    for ids in samples:
        arr = np.asarray(ids, dtype=np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= _U32):
            raise ValueError("token ids must fit in uint32")
        h.update(len(arr).to_bytes(4, "little"))
        h.update(arr.astype("<u4").tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class CalibSet:
    """Tokenized calibration samples (one list of token ids per conversation)."""

    name: str
    samples: list[list[int]] = field(repr=False)

    @cached_property
    def digest(self) -> str:
        return digest_of(self.samples)

    @property
    def tokens(self) -> int:
        return sum(len(s) for s in self.samples)

    @property
    def max_len(self) -> int:
        return max((len(s) for s in self.samples), default=0)

    def __len__(self) -> int:
        return len(self.samples)

    def chunks(self, n: int) -> list[CalibSet]:
        """n contiguous sub-sets, sizes differing by at most one (the first ones larger).

        Concatenated in order they are this set again; each has its own digest, so a chunk's
        calibration artifact can be matched to its data.
        """
        if not 1 <= n <= len(self.samples):
            raise InputError(f"{self.name}: cannot split {len(self.samples)} samples into {n}")
        size, extra = divmod(len(self.samples), n)
        out, start = [], 0
        for i in range(n):
            end = start + size + (i < extra)
            out.append(CalibSet(f"{self.name}.{i + 1}of{n}", self.samples[start:end]))
            start = end
        return out

    def save(self, path: Path | str) -> Path:
        """Write an .npz (ids, lengths, name, digest)."""
        import numpy as np

        path = Path(path)
        with os_errors(path.parent):
            path.parent.mkdir(parents=True, exist_ok=True)
        lengths = np.array([len(s) for s in self.samples], dtype=np.int64)
        ids = np.fromiter((t for s in self.samples for t in s), dtype=np.uint32)
        buf = io.BytesIO()
        np.savez(buf, ids=ids, lengths=lengths, name=self.name, digest=self.digest)
        return write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: Path | str) -> CalibSet:
        """Read what `save` wrote, and check its digest."""
        import numpy as np

        try:
            with np.load(path) as npz:
                ids, lengths = npz["ids"], npz["lengths"]
                name, digest = str(npz["name"]), str(npz["digest"])
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(f"{path}: not a calibration set ({exc})") from exc
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        if bounds[-1] != len(ids):
            raise InputError(f"{path}: lengths do not add up to the stored ids")
        samples = [ids[a:b].astype(np.int64).tolist() for a, b in itertools.pairwise(bounds)]
        out = cls(name, samples)
        if out.digest != digest:
            raise InputError(f"{path}: ids have sha256 {out.digest}, the file records {digest}")
        return out


def tokenize_chat(
    tokenizer: ChatTokenizer, messages: list[Message], tools: list[Any] | None = None
) -> list[int]:
    """Apply the model's chat template and return the token ids."""
    kwargs: dict[str, Any] = {"tokenize": True, "add_generation_prompt": False}
    if tools:
        kwargs["tools"] = tools
    out = tokenizer.apply_chat_template(messages, **kwargs)
    # transformers 5 returns a BatchEncoding by default, 4.x a list of ids.
    if hasattr(out, "keys") and "input_ids" in out:
        out = out["input_ids"]
    if hasattr(out, "tolist"):
        out = out.tolist()
    if out and isinstance(out[0], list):
        (out,) = out
    return [int(t) for t in out]


def from_jsonl(
    paths: Sequence[Path | str] | Path | str,
    tokenizer: ChatTokenizer,
    *,
    max_length: int,
    name: str = "local",
) -> CalibSet:
    """Local data: one JSON object per line with a `messages` list (optional `tools`).

    Samples longer than max_length are truncated to their first max_length tokens.
    """
    if max_length < 1:
        raise InputError(f"max_length must be >= 1, got {max_length}")
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    if not paths:
        raise InputError("no calibration files given")
    samples = []
    for path in paths:
        count = 0
        for where, record in _read_jsonl(Path(path)):
            try:
                if not isinstance(record, dict) or "messages" not in record:
                    raise BadRow("expected an object with a 'messages' list")
                messages = check_messages(record["messages"])
                tools = record.get("tools") or None
                if tools is not None and not isinstance(tools, list):
                    raise BadRow("expected 'tools' to be a list")
            except BadRow as exc:
                raise InputError(f"{where}: {exc}") from None
            samples.append(tokenize_chat(tokenizer, messages, tools)[:max_length])
            count += 1
        if not count:
            raise InputError(f"{path}: no records (expected one JSON object per line)")
    return CalibSet(name, samples)


def _read_jsonl(path: Path) -> Iterable[tuple[str, Any]]:
    try:
        fh = path.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    with fh:
        lineno = 0
        try:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    yield f"{path}:{lineno}", json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(
                        f"{path}:{lineno}: not valid JSON ({exc.msg}); expected one JSON "
                        "object per line"
                    ) from None
        except UnicodeDecodeError:
            raise InputError(f"{path}:{lineno + 1}: not UTF-8 text") from None


# -- building a pass from its manifest -------------------------------------------------------


def _local_rows(source: Source, data_dir: Path) -> list[dict[str, Any]]:
    if source.files:
        files = sorted(data_dir.glob(source.files))
    else:
        files = [
            p
            for p in (data_dir / f"{source.name}.{ext}" for ext in ("jsonl", "json", "parquet"))
            if p.is_file()
        ]
    if not files:
        wanted = source.files or f"{source.name}.jsonl|.json|.parquet"
        raise InputError(f"{data_dir}: no data for source {source.name!r} (looked for {wanted})")
    rows: list[dict[str, Any]] = []
    for path in files:
        if path.suffix == ".parquet":
            try:
                import pyarrow.parquet as pq
            except ImportError:
                raise InputError(f"{path}: reading Parquet needs pyarrow") from None
            rows.extend(pq.read_table(path).to_pylist())
        elif path.suffix == ".json" and _starts_with_bracket(path):
            # A JSON array of rows (how llamafactory ships its sets), not JSON Lines.
            try:
                rows.extend(json.loads(path.read_text(encoding="utf-8")))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise InputError(f"{path}: not a JSON array of rows ({exc})") from None
        else:
            rows.extend(record for _, record in _read_jsonl(path))
    return rows


def _starts_with_bracket(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4096).lstrip()[:1] == b"["


def _hub_rows(source: Source) -> Sequence[dict[str, Any]]:
    try:
        import datasets
    except ImportError:
        raise InputError(
            f"source {source.name!r} comes from the Hub ({source.dataset}): install "
            "glm51[calib-hub], or pass --data-dir with local files"
        ) from None
    require_hub(
        f"source {source.name!r} ({source.dataset})",
        "pass --data-dir with local files (NAME.jsonl/.json/.parquet per source)",
    )
    token = os.environ.get("HF_TOKEN") or (True if source.gated else None)
    try:
        return datasets.load_dataset(
            source.dataset,
            name=source.config,
            revision=source.revision,
            split=source.split,
            token=token,
        )
    except Exception as exc:  # the Hub, the network, a gated licence not accepted
        hint = " (gated: accept its licence on the Hub and set HF_TOKEN)" if source.gated else ""
        raise InfraError(f"cannot load {source.dataset}@{source.revision}{hint}: {exc}") from exc


def _draw(
    source: Source,
    rows: Sequence[dict[str, Any]],
    manifest: Manifest,
    tokenizer: ChatTokenizer,
    where: str,
) -> list[list[int]]:
    """Walk the rows in a seeded order; keep the first `samples` that pass every filter."""
    import numpy as np

    # Keyed by the source name too, so adding a source leaves the others' draws alone.
    rng = np.random.default_rng([manifest.seed, zlib.crc32(source.name.encode())])
    skipped: Counter[str] = Counter()
    out: list[list[int]] = []
    first_bad = ""
    for index in rng.permutation(len(rows)):
        row = rows[int(index)]
        try:
            if not isinstance(row, dict):
                raise BadRow("expected an object")
            reason = rejected(row, source.filters)
            if reason is None:
                messages, tools = to_chat(row, source)
        except BadRow as exc:
            first_bad = first_bad or f"row {index}: {exc}"
            reason = "malformed"
        if reason is None:
            ids = tokenize_chat(tokenizer, with_system_prompt(messages, source, int(index)), tools)
            if len(ids) < manifest.min_tokens:
                reason = "too short"
            elif len(ids) > manifest.max_tokens:
                reason = "too long"
        if reason is not None:
            skipped[reason] += 1
            continue
        out.append(ids)
        if len(out) == source.samples:
            break
    log.info("%s: %s: %d samples, skipped %s", where, source.name, len(out), dict(skipped))
    if len(out) < source.samples:
        raise InputError(
            f"{where}: source {source.name!r} gave {len(out)} of {source.samples} samples "
            f"from {len(rows)} rows (skipped: {dict(skipped) or 'none'})"
            + (f"; first malformed {first_bad}" if first_bad else "")
        )
    return out


def build_pass(
    manifest_path: Path | str,
    tokenizer: ChatTokenizer,
    *,
    data_dir: Path | str | None = None,
    check: bool = True,
) -> CalibSet:
    """Build a pass's calibration set from its manifest.

    Rows come from local files under data_dir (NAME.jsonl/.json/.parquet per source, or the
    source's `files` glob) when given, else from the Hub at the pinned revision. With
    check=True a recorded sha256 must match the ids produced.
    """
    import numpy as np

    manifest = load_manifest(manifest_path)
    samples: list[list[int]] = []
    for source in manifest.sources:
        rows = _local_rows(source, Path(data_dir)) if data_dir is not None else _hub_rows(source)
        samples.extend(_draw(source, rows, manifest, tokenizer, str(manifest_path)))
    # Mix the sources, so that any chunk of the pass looks like the whole pass.
    order = np.random.default_rng(manifest.seed).permutation(len(samples))
    result = CalibSet(manifest.name, [samples[int(i)] for i in order])
    if check:
        check_digest(result, manifest, manifest_path)
    return result


def check_digest(calib: CalibSet, manifest: Manifest, manifest_path: Path | str) -> None:
    if manifest.sha256 is not None and manifest.sha256 != calib.digest:
        raise InputError(
            f"{manifest_path}: the token ids of pass {manifest.name!r} have sha256 "
            f"{calib.digest}, the manifest records {manifest.sha256} (different data, "
            "revision or tokenizer; `glm51 calib record` updates it after review)"
        )
