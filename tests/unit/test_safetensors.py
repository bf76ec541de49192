"""The safetensors header reader on hand-written shards: every boundary of what it accepts."""

import json
import struct

import pytest

from glm51.checkpoint.safetensors import MAX_HEADER_BYTES, ShardError, read_header


def write_shard(path, header: dict, data: int, *, cut: int = 0, raw: bytes | None = None):
    """A shard with `header` (JSON) and `data` bytes after it, `cut` bytes short."""
    body = raw if raw is not None else json.dumps(header).encode()
    blob = struct.pack("<Q", len(body)) + body + b"\0" * data
    path.write_bytes(blob[: len(blob) - cut])
    return path, len(body)


TWO = {
    "a": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]},
    "b": {"dtype": "F32", "shape": [1], "data_offsets": [12, 16]},
}


def test_reads_tensors_metadata_and_sizes(tmp_path):
    header = {"__metadata__": {"format": "pt"}, **TWO}
    path, hlen = write_shard(tmp_path / "s.safetensors", header, 16)
    got = read_header(path)
    assert got.path == path
    assert got.header_len == hlen
    assert got.file_size == 8 + hlen + 16
    assert got.metadata == {"format": "pt"}
    assert set(got.tensors) == {"a", "b"}
    a = got.tensors["a"]
    assert (a.dtype, a.shape, a.begin, a.end) == ("BF16", (2, 3), 0, 12)
    assert got.data_end == 8 + hlen + 16


def test_data_end_is_the_furthest_tensor_not_the_last_listed(tmp_path):
    header = {"b": TWO["b"], "a": TWO["a"]} | {
        "c": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}
    }
    path, hlen = write_shard(tmp_path / "s.safetensors", header, 16)
    assert read_header(path).data_end == 8 + hlen + 16


def test_no_tensors_ends_at_the_header(tmp_path):
    path, hlen = write_shard(tmp_path / "s.safetensors", {"__metadata__": None}, 0)
    got = read_header(path)
    assert got.metadata == {}
    assert got.tensors == {}
    assert got.data_end == 8 + hlen


@pytest.mark.parametrize("short_by", [1, 2, 16])
def test_data_short_by_any_bytes_is_flagged(tmp_path, short_by):
    path, hlen = write_shard(tmp_path / "s.safetensors", TWO, 16, cut=short_by)
    with pytest.raises(ShardError) as err:
        read_header(path)
    assert err.value.kind == "data"
    end, size = 8 + hlen + 16, 8 + hlen + 16 - short_by
    assert str(err.value) == (
        f"tensors end at byte {end} but the file has only {size} bytes ({short_by} missing)"
    )


def test_exact_and_longer_files_pass(tmp_path):
    for extra in (0, 1):
        path, hlen = write_shard(tmp_path / f"s{extra}.safetensors", TWO, 16 + extra)
        assert read_header(path).file_size == 8 + hlen + 16 + extra


@pytest.mark.parametrize("length", [0, 7])
def test_shorter_than_the_length_prefix(tmp_path, length):
    path = tmp_path / "s.safetensors"
    path.write_bytes(b"\1" * length)
    with pytest.raises(ShardError) as err:
        read_header(path)
    assert err.value.kind == "header"
    assert str(err.value) == f"{length} bytes: shorter than the 8-byte header length"


def test_header_length_over_the_cap_is_refused_unread(tmp_path):
    path = tmp_path / "s.safetensors"
    path.write_bytes(struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{}")
    with pytest.raises(ShardError) as err:
        read_header(path)
    assert err.value.kind == "header"
    assert str(err.value) == f"declares a {MAX_HEADER_BYTES + 1}-byte header: not safetensors"


def test_header_length_is_unsigned(tmp_path):
    # the top bit set is a huge length (refused), not a negative one (read to the end)
    path = tmp_path / "s.safetensors"
    path.write_bytes(b"\xff" * 8 + b"{}")
    with pytest.raises(ShardError) as err:
        read_header(path)
    assert str(err.value) == f"declares a {2**64 - 1}-byte header: not safetensors"


def test_header_length_at_the_cap_is_read(tmp_path):
    # exactly the cap is allowed: it is read (and here found truncated), not refused
    path = tmp_path / "s.safetensors"
    path.write_bytes(struct.pack("<Q", MAX_HEADER_BYTES) + b"{}")
    with pytest.raises(ShardError) as err:
        read_header(path)
    assert str(err.value) == f"header declares {MAX_HEADER_BYTES} bytes but the file has 2 after it"


def test_header_one_byte_short(tmp_path):
    path, hlen = write_shard(tmp_path / "s.safetensors", TWO, 0, cut=1)
    # no data and one header byte gone: the header itself is short
    with pytest.raises(ShardError) as err:
        read_header(path)
    assert err.value.kind == "header"
    assert str(err.value) == f"header declares {hlen} bytes but the file has {hlen - 1} after it"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"{not json", "header is not valid JSON ("),
        (b"\xff\xfe{}", "header is not valid JSON ("),
        (b"[1, 2]", "header is not a JSON object"),
    ],
)
def test_malformed_header(tmp_path, raw, words):
    path, _ = write_shard(tmp_path / "s.safetensors", {}, 0, raw=raw)
    with pytest.raises(ShardError) as err:
        read_header(path)
    assert err.value.kind == "header"
    assert str(err.value).startswith(words)


@pytest.mark.parametrize(
    "entry",
    [
        {"shape": [1], "data_offsets": [0, 1]},
        {"dtype": "U8", "data_offsets": [0, 1]},
        {"dtype": "U8", "shape": [1]},
        {"dtype": "U8", "shape": 3, "data_offsets": [0, 1]},
        {"dtype": "U8", "shape": [1], "data_offsets": [0, 1, 2]},
        "not an object",
    ],
)
def test_tensor_entry_without_dtype_shape_or_offsets(tmp_path, entry):
    path, _ = write_shard(tmp_path / "s.safetensors", {"w": entry}, 1)
    with pytest.raises(ShardError) as err:
        read_header(path)
    assert err.value.kind == "header"
    assert str(err.value) == "tensor 'w' has no valid dtype/shape/data_offsets"
