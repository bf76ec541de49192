"""Every refusal issue 2 must show, through `glm51 doctor` (CliRunner) and `glm51 serve`
(a subprocess that must stop with exit 4 before the sglang double starts).

The GPUs come from recorded nvidia-smi outputs printed by tests/doubles/bin/nvidia-smi, and
sglang is the tests/doubles/sglang package (its --help prints a recorded help text).
"""

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from glm51.cli import app
from glm51.errors import InputError
from tests.support import checkpoint as ckpt
from tests.support.fakes import fake_env

GLM51 = [
    sys.executable,
    "-c",
    "import sys; from glm51.cli import main; sys.argv[0] = 'glm51'; main()",
]

# name, how to build/break the checkpoint, nvidia-smi recording, pass-through, check, words
REFUSALS = [
    (
        "missing-shard",
        lambda p: ckpt.drop_shard(p, 2),
        "rtx-pro-6000-x8-595",
        (),
        "checkpoint.shard-missing",
        "shard(s) named in model.safetensors.index.json are missing",
    ),
    (
        "truncated-header",
        lambda p: ckpt.truncate_shard(p, 1, part="header"),
        "rtx-pro-6000-x8-595",
        (),
        "checkpoint.shard-header",
        "truncated or corrupt header",
    ),
    (
        "truncated-data",
        lambda p: ckpt.truncate_shard(p, 4, part="data"),
        "rtx-pro-6000-x8-595",
        (),
        "checkpoint.shard-data",
        "truncated or corrupt data",
    ),
    (
        "not-glm-moe-dsa",
        {"model_type": "deepseek_v32"},
        "rtx-pro-6000-x8-595",
        (),
        "checkpoint.model-type",
        "model_type is 'deepseek_v32', not 'glm_moe_dsa'",
    ),
    (
        "not-nvfp4",
        {"quant_algo": "FP8"},
        "rtx-pro-6000-x8-595",
        (),
        "checkpoint.quant-algo",
        "quant_algo is 'FP8', not 'NVFP4'",
    ),
    (
        "nextn-without-mtp",
        {"mtp": False},
        "rtx-pro-6000-x8-595",
        (),
        "checkpoint.mtp-missing",
        "uses NEXTN speculative decoding but",
    ),
    (
        "too-few-gpus",
        None,
        "rtx-pro-6000-x4-595",
        (),
        "gpu.count",
        "too few GPUs: found 4, the profile needs 8",
    ),
    (
        "not-cc-12",
        None,
        "h100-x8",
        (),
        "gpu.compute-capability",
        "compute capability 9.0, the profile is for 12.0",
    ),
    (
        "old-driver",
        None,
        "rtx-pro-6000-x8-580",
        (),
        "gpu.driver",
        "driver 580.95.05 is older than the profile's minimum 595",
    ),
    (
        "enforce-fusion",
        None,
        "rtx-pro-6000-x8-595",
        ("--enforce-shared-experts-fusion",),
        "flags.enforce-shared-experts-fusion",
        "pass-through --enforce-shared-experts-fusion is refused",
    ),
]


def _checkpoint(tmp_path, breaker):
    path = ckpt.build(tmp_path / "ckpt", **(breaker if isinstance(breaker, dict) else {}))
    if callable(breaker):
        breaker(path)
    return path


def _use(monkeypatch, **kwargs):
    for name, value in fake_env(**kwargs).items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize(
    ("case", "breaker", "smi", "extra", "check", "words"), REFUSALS, ids=[r[0] for r in REFUSALS]
)
def test_doctor_refuses(tmp_path, monkeypatch, case, breaker, smi, extra, check, words):
    _use(monkeypatch, nvidia_smi=smi)
    path = _checkpoint(tmp_path, breaker)
    argv = ["doctor", "--model", str(path), "--json", *(["--", *extra] if extra else [])]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 4, result.output
    report = json.loads(result.stdout)
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    # Its own message: exactly this refusal, nothing else.
    assert [f["check"] for f in errors] == [check]
    assert words in errors[0]["message"]
    assert errors[0]["fix"]


@pytest.mark.parametrize(
    ("case", "breaker", "smi", "extra", "check", "words"), REFUSALS, ids=[r[0] for r in REFUSALS]
)
def test_serve_stops_before_sglang_starts(tmp_path, case, breaker, smi, extra, check, words):
    path = _checkpoint(tmp_path, breaker)
    marker = tmp_path / "sglang-started"
    argv = [
        *GLM51,
        "serve",
        "--model",
        str(path),
        "--host",
        "127.0.0.1",
        "--port",
        "9",
        *(["--", *extra] if extra else []),
    ]
    done = subprocess.run(
        argv,
        env={**_environ(), **fake_env(nvidia_smi=smi, marker=marker)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 4, done.stderr
    assert "preflight failed" in done.stderr and check in done.stderr and words in done.stderr
    assert not marker.exists()


def test_doctor_ok_table(tmp_path, monkeypatch):
    _use(monkeypatch)
    result = CliRunner().invoke(app, ["doctor", "--model", str(ckpt.build(tmp_path / "m"))])
    assert result.exit_code == 0, result.output
    assert "ready to serve: 0 error(s), 0 warning(s)" in result.output


def test_doctor_no_gpu_and_upstream_sglang(tmp_path, monkeypatch):
    _use(monkeypatch, nvidia_smi="failed-no-driver", smi_rc=9, help_name="upstream-0.5.23")
    result = CliRunner().invoke(
        app, ["doctor", "--model", str(ckpt.build(tmp_path / "m")), "--json"]
    )
    assert result.exit_code == 4
    found = {f["check"]: f for f in json.loads(result.stdout)["findings"]}
    assert "couldn't communicate with the NVIDIA driver" in found["gpu.none"]["message"]
    assert "--moe-runner-backend b12x" in found["sglang.choice"]["message"]


def test_doctor_bad_model_path_is_bad_input(tmp_path):
    done = subprocess.run(
        [*GLM51, "doctor", "--model", str(tmp_path / "nope")],
        env={**_environ(), "COLUMNS": "300"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3
    assert "must be a checkpoint folder" in done.stderr


def _environ():
    return dict(os.environ)


def test_doctor_resolves_model_id_from_the_hub_cache(tmp_path, monkeypatch):
    _use(monkeypatch)
    repo = tmp_path / "hub" / "models--lukealonso--GLM-5.1-NVFP4"
    sha = "0123456789abcdef0123456789abcdef01234567"
    ckpt.build(repo / "snapshots" / sha)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    # huggingface_hub reads HF_HUB_CACHE at import (before this test): set what it read.
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    result = CliRunner().invoke(app, ["doctor", "--json"])  # the recipe's published repo
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model_path"].endswith(f"snapshots/{sha}")


def test_doctor_without_any_checkpoint_still_checks_gpus(tmp_path, monkeypatch):
    # No --model and the published repo not cached (a fresh container): a finding, not a crash.
    _use(monkeypatch, nvidia_smi="failed-no-driver", smi_rc=9)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    result = CliRunner().invoke(app, ["doctor", "--json"])
    assert result.exit_code == 4, result.output
    report = json.loads(result.stdout)
    found = {f["check"]: f for f in report["findings"]}
    assert report["model_path"] is None
    assert "is not in the Hugging Face cache" in found["checkpoint.missing"]["message"]
    assert "couldn't communicate with the NVIDIA driver" in found["gpu.none"]["message"]


def test_doctor_only_reports_the_groups_asked_for(tmp_path, monkeypatch):
    _use(monkeypatch, nvidia_smi="failed-no-driver", smi_rc=9)
    model = str(ckpt.build(tmp_path / "m"))
    result = CliRunner().invoke(app, ["doctor", "--model", model, "--only", "checkpoint"])
    assert result.exit_code == 0, result.output
    assert "checkpoint: ok" in result.output and "gpu" not in result.output
    result = CliRunner().invoke(app, ["doctor", "--model", model, "--only", "gpu", "--json"])
    assert result.exit_code == 4
    assert [f["check"] for f in json.loads(result.stdout)["findings"]] == ["gpu.none"]
    result = CliRunner().invoke(app, ["doctor", "--model", model, "--only", "gpus"])
    assert result.exit_code == InputError.exit_code == 3
    assert "--only gpus: expected one of" in " ".join(result.stderr.split())
