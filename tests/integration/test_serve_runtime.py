"""`glm51 serve` end to end with doubles: the nvidia-smi double on PATH and the sglang
double on PYTHONPATH (it serves /health and exits 43 on SIGTERM)."""

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from typer.testing import CliRunner

from glm51.cli import app
from tests.support import checkpoint as ckpt
from tests.support.fakes import fake_env
from tests.support.flags import MODEL_CARD_FLAGS

GLM51 = [
    sys.executable,
    "-c",
    "import sys; from glm51.cli import main; sys.argv[0] = 'glm51'; main()",
]


@pytest.fixture
def model(tmp_path):
    return ckpt.build(tmp_path / "GLM-5.1-NVFP4")


def test_dry_run_prints_every_flag_and_variable_of_the_model_card(model):
    result = CliRunner().invoke(app, ["serve", "--dry-run", "--model", str(model)])
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[-1]
    words = shlex.split(line)
    assert words[:2] == ["OMP_NUM_THREADS=16", "SGLANG_ENABLE_SPEC_V2=True"]
    assert words[3:7] == ["-m", "sglang.launch_server", "--model-path", str(model)]
    assert " ".join(words[7:]) == MODEL_CARD_FLAGS


class Served:
    """glm51 serve in a subprocess, its stderr collected line by line."""

    def __init__(self, argv, env):
        self.proc = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for(self, text, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not seen; stderr: {''.join(self.lines)}")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(model, tmp_path, *extra, smi="rtx-pro-6000-x8-595", env_extra=None):
    marker = tmp_path / "sglang-started.json"
    port = _free_port()
    argv = [
        *GLM51,
        "serve",
        "--model",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra,
    ]
    env = {**os.environ, **fake_env(nvidia_smi=smi, marker=marker), **(env_extra or {})}
    return Served(argv, env), marker, port


def test_serve_waits_ready_and_forwards_sigterm(model, tmp_path):
    served, marker, port = _serve(model, tmp_path, "--wait-ready", "--ready-timeout", "60")
    try:
        served.wait_for(f"server ready at http://127.0.0.1:{port}/health")
        started = json.loads(marker.read_text())
        assert started["env"] == {"OMP_NUM_THREADS": "16", "SGLANG_ENABLE_SPEC_V2": "True"}
        assert "--moe-runner-backend" in started["argv"]
        # SIGTERM to glm51 reaches sglang; glm51 exits with the server's own code.
        assert served.stop(signal.SIGTERM) == 43
    finally:
        served.kill()


def test_skip_preflight_starts_the_server_despite_errors(model, tmp_path):
    served, marker, _ = _serve(model, tmp_path, "--skip-preflight", smi="rtx-pro-6000-x4-595")
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists(), "".join(served.lines)
        assert not any("preflight" in line for line in served.lines)
        assert served.stop(signal.SIGINT) == 43
    finally:
        served.kill()


def test_a_server_killed_by_a_signal_exits_128_plus_the_signal(model, tmp_path):
    served, marker, _ = _serve(
        model, tmp_path, "--skip-preflight", env_extra={"FAKE_SGLANG_DIE_BY_SIGNAL": "1"}
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert served.stop(signal.SIGTERM) == 128 + signal.SIGTERM
    finally:
        served.kill()
