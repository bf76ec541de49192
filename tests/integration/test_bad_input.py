"""The bad-input catalogue: every case a new user hit, through the real CLI in a subprocess.

Each case asserts the exit code of its kind (3 bad input, 4 preflight, 6 infrastructure), a
message naming the file, key, tensor or option and what was expected, no traceback, and that
nothing the user owns changed (a digest of every input file before and after).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from glm51.checkpoint.safetensors import read_header
from glm51.outputs import MARKER
from tests.conftest import REPO
from tests.support.fakes import fake_env

GLM51 = [
    sys.executable,
    "-c",
    "import sys; from glm51.cli import main; sys.argv[0] = 'glm51'; main()",
]
SHARD = "model-00001-of-00001.safetensors"
# A Hub that cannot be reached: nothing listens on port 9 (discard) of the loopback.
NO_HUB = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0"}


@dataclass(frozen=True)
class Case:
    name: str
    argv: Callable[[Path], list[str]]  # tmp folder -> glm51 arguments
    code: int
    words: Callable[[Path], list[str]]  # what the message must say
    env: dict[str, str] = field(default_factory=dict)
    needs_tiny: bool = True


def _sharded(tmp: Path) -> Path:
    """The tiny BF16 model as an indexed checkpoint (one shard), as the real one is stored."""
    model = tmp / "bf16"
    single = model / "model.safetensors"
    names = sorted(read_header(single).tensors)
    single.rename(model / "model-00001-of-00001.safetensors")
    index = {"metadata": {}, "weight_map": dict.fromkeys(names, "model-00001-of-00001.safetensors")}
    (model / "model.safetensors.index.json").write_text(json.dumps(index))
    return model


def _quantize(tmp: Path, *extra: str, model: str = "bf16", output: str = "out") -> list[str]:
    return [
        "quantize",
        "--model",
        str(tmp / model),
        "--output",
        str(tmp / output),
        "--calib-file",
        str(tmp / "calib.jsonl"),
        *extra,
    ]


def _truncate(tmp: Path) -> None:
    shard = _sharded(tmp) / "model-00001-of-00001.safetensors"
    with shard.open("r+b") as f:
        f.truncate(shard.stat().st_size - 1)  # one byte short


def _drop(tmp: Path) -> None:
    (_sharded(tmp) / "model-00001-of-00001.safetensors").unlink()


SETUP: dict[str, Callable[[Path], object]] = {
    "overwrite-unrelated": lambda t: (
        (t / "out" / "sub").mkdir(parents=True),
        (t / "out" / "notes.txt").write_text("mine"),
    ),
    "overwrite-file": lambda t: (t / "out").write_text("not a folder"),
    "truncated-shard-resident": _truncate,
    "truncated-shard-bounded": _truncate,
    "missing-shard": _drop,
    "tiny-model-over-file": lambda t: (t / "file").write_text("mine"),
    "tokenizer-empty-folder": lambda t: (t / "empty").mkdir(),
    "image-build-out-foreign": lambda t: (
        (t / "docs").mkdir(),
        (t / "docs" / "cv.pdf").write_text("mine"),
    ),
    "model-empty-folder": lambda t: (t / "empty").mkdir(),
    "model-config-not-json": lambda t: (
        (t / "broken").mkdir(),
        (t / "broken" / "config.json").write_text("{not json"),
    ),
    "output-exists": lambda t: shutil.copytree(t / "bf16", t / "done"),  # glm51's, marked
}

CASES = [
    # -- data loss: --overwrite never deletes what glm51 did not write, nor an input ----------
    Case(
        "overwrite-unrelated",
        lambda t: _quantize(t, "--overwrite"),
        3,
        lambda t: [f"--output {t / 'out'}", "not written by glm51", MARKER],
    ),
    Case(
        "output-is-the-source",
        lambda t: _quantize(t, "--overwrite", output="bf16"),
        3,
        lambda t: [f"--output {t / 'bf16'} is --model {t / 'bf16'}"],
    ),
    Case(
        "output-is-the-sources-parent",
        lambda t: _quantize(t, "--overwrite", output="."),
        3,
        lambda t: ["contains --model", str(t / "bf16")],
    ),
    Case(
        "image-build-out-foreign",
        lambda t: ["image", "build", "--checkout", str(REPO), "--out", str(t / "docs")],
        3,
        lambda t: [f"--out {t / 'docs'}: holds files glm51 did not write"],
        needs_tiny=False,
    ),
    # -- the tracebacks: each is now a named error -------------------------------------------
    Case(
        "calib-build-offline",
        lambda t: ["calib", "build", "coding", "--output", str(t / "c.npz")],
        6,
        lambda t: ["HF_HUB_OFFLINE is set", "--tokenizer FOLDER", "--data-dir"],
        env={"HF_HUB_OFFLINE": "1"},
        needs_tiny=False,
    ),
    Case(
        "calib-build-hub-unreachable",
        lambda t: ["calib", "build", "broad", "--output", str(t / "c.npz")],
        6,
        lambda t: ["http://127.0.0.1:9 cannot be reached", "--tokenizer FOLDER"],
        env=NO_HUB,
        needs_tiny=False,
    ),
    Case(
        "calib-record-offline",
        lambda t: ["calib", "record"],
        6,
        lambda t: ["HF_HUB_OFFLINE is set", "--tokenizer FOLDER"],
        env={"HF_HUB_OFFLINE": "1"},
        needs_tiny=False,
    ),
    Case(
        "truncated-shard-resident",
        lambda t: _quantize(t),
        3,
        lambda t: [str(t / "bf16" / SHARD), "truncated or corrupt data"],
    ),
    Case(
        "truncated-shard-bounded",
        lambda t: _quantize(t, "--bounded-memory"),
        3,
        lambda t: [str(t / "bf16" / SHARD), "truncated or corrupt data"],
    ),
    Case(
        "missing-shard",
        lambda t: _quantize(t),
        3,
        lambda t: [
            "shard(s) named in model.safetensors.index.json are missing",
            "model-00001-of-00001.safetensors",
        ],
    ),
    Case(
        "device-cuda-without-cuda",
        lambda t: _quantize(t, "--device", "cuda"),
        3,
        lambda t: ["--device cuda: no CUDA device is available to torch", "--device cpu"],
    ),
    Case(
        "device-banana",
        lambda t: _quantize(t, "--device", "banana"),
        3,
        lambda t: ["--device 'banana': not a device this command runs on", "cuda:N"],
    ),
    Case(
        "overwrite-file",
        lambda t: _quantize(t, "--overwrite"),
        3,
        lambda t: [f"--output {t / 'out'}: exists and is not a folder"],
    ),
    Case(
        "tiny-model-over-file",
        lambda t: ["tiny-model", str(t / "file")],
        3,
        lambda t: [f"OUT {t / 'file'}: exists and is not a folder"],
        needs_tiny=False,
    ),
    Case(
        "tokenizer-missing-path",
        lambda t: [
            "calib",
            "build",
            "coding",
            "--output",
            str(t / "c.npz"),
            "--tokenizer",
            str(t / "nope"),
        ],
        3,
        lambda t: [f"--tokenizer {t / 'nope'}: no such folder"],
        needs_tiny=False,
    ),
    Case(
        "tokenizer-empty-folder",
        lambda t: [
            "calib",
            "build",
            "coding",
            "--output",
            str(t / "c.npz"),
            "--tokenizer",
            str(t / "empty"),
        ],
        3,
        lambda t: [f"--tokenizer {t / 'empty'}: no tokenizer in it", "tokenizer.json"],
        needs_tiny=False,
    ),
    Case(
        "serve-skip-preflight-without-sglang",
        lambda t: ["serve", "--model", str(t / "bf16"), "--skip-preflight"],
        4,
        lambda t: ["sglang is not installed for", "pip install"],
    ),
    # -- misleading messages, now saying what is wrong -----------------------------------------
    Case(
        "model-nonexistent",
        lambda t: _quantize(t, model="nonexistent"),
        3,
        lambda t: [f"--model {t / 'nonexistent'}: no such folder"],
    ),
    Case(
        "model-empty-folder",
        lambda t: _quantize(t, model="empty"),
        3,
        lambda t: [f"{t / 'empty'}: not a checkpoint folder (no config.json)"],
    ),
    Case(
        "model-config-not-json",
        lambda t: _quantize(t, model="broken"),
        3,
        lambda t: [f"{t / 'broken' / 'config.json'}: cannot read it as JSON"],
    ),
    Case(
        "model-looks-like-a-hub-id",
        lambda t: [
            "quantize",
            "--model",
            "nosuch/model",
            "--output",
            str(t / "out"),
            "--calib-file",
            str(t / "calib.jsonl"),
        ],
        3,
        lambda t: ["--model nosuch/model: no such folder"],
        env=NO_HUB,
    ),
    Case(
        "output-exists",
        lambda t: _quantize(t, output="done"),
        3,
        lambda t: [f"--output {t / 'done'}: exists (pass --overwrite"],
    ),
    Case(
        "serve-default-checkpoint-missing",
        lambda t: ["serve", "--dry-run"],
        4,
        lambda t: ["checkpoint.missing", "is not in the Hugging Face cache"],
        env={"HF_HUB_CACHE": "/nonexistent-hub-cache"},
        needs_tiny=False,
    ),
    Case(
        "doctor-default-checkpoint-missing",
        lambda t: ["doctor", "--only", "checkpoint"],
        4,
        lambda t: ["checkpoint.missing"],
        env={"HF_HUB_CACHE": "/nonexistent-hub-cache"},
        needs_tiny=False,
    ),
]


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def tiny_bf16(tmp_path_factory) -> Path:
    from glm51.calib.rehearsal_data import write_jsonl
    from glm51.quantize.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("bad-input")
    build_tiny_model(root / "bf16")
    write_jsonl(root / "calib.jsonl", 4, 0)
    return root


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_named_with_its_exit_code_and_nothing_changes(case, tmp_path, tiny_bf16):
    if case.needs_tiny:
        shutil.copytree(tiny_bf16 / "bf16", tmp_path / "bf16")
        shutil.copyfile(tiny_bf16 / "calib.jsonl", tmp_path / "calib.jsonl")
    SETUP.get(case.name, lambda t: None)(tmp_path)
    before = _digests(tmp_path)
    env = {**os.environ, **fake_env(), "HF_HUB_DISABLE_TELEMETRY": "1", **case.env}
    env.pop("GLM51_DEBUG", None)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in env.get("PYTHONPATH", "").split(os.pathsep) if "doubles" not in p
    )  # no sglang double: a real machine without sglang
    done = subprocess.run(
        [*GLM51, *case.argv(tmp_path)], capture_output=True, text=True, env=env, timeout=300
    )
    said = " ".join((done.stdout + done.stderr).split())  # rich may wrap long lines
    assert done.returncode == case.code, done.stderr
    for words in case.words(tmp_path):
        assert words in said, done.stderr
    assert "Traceback" not in done.stderr
    if case.argv(tmp_path)[0] == "quantize":  # refused before any work: no estimate printed
        assert "parameters" not in said and "calibration" not in said.lower().split(":", 1)[0]
    assert _digests(tmp_path) == before  # every input byte for byte, nothing added or removed
