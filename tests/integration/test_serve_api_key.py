"""`glm51 serve --api-key-file` end to end with the doubles: the sglang double reads the key
from the --config file as SGLang 0.5.23 does and then wants `Authorization: Bearer`;
`glm51 smoke` passes with the key and is bad input (exit 3) without it or with a wrong one.
No output of these runs holds the key."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from glm51.endpoint.health import wait_ready
from tests.support import checkpoint as ckpt
from tests.support.fakes import fake_env

KEY = "sk-serve-key-5e1d77"
GLM51 = [sys.executable, "-c", "import sys; from glm51.cli import main; main()"]


def _smoke(endpoint, out, *extra, env=None):
    argv = [*GLM51, "smoke", "--endpoint", endpoint, "--out", str(out), "--tier", "protocol"]
    env = {**os.environ, "GLM51_API_KEY": "", **(env or {})}
    return subprocess.run([*argv, *extra], env=env, capture_output=True, text=True, timeout=120)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_passes_the_key_in_a_private_config_file_and_smoke_sends_it(tmp_path):
    model = ckpt.build(tmp_path / "GLM-5.1-NVFP4")
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    marker, port, log = tmp_path / "started.json", _free_port(), tmp_path / "serve.log"
    argv = [*GLM51, "serve", "--model", str(model), "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, **fake_env(marker=marker), "GLM51_API_KEY": ""}
    with log.open("w") as sink:
        served = subprocess.Popen(
            [*argv, "--api-key-file", str(key_file)], env=env, stdout=sink, stderr=sink
        )
    url = f"http://127.0.0.1:{port}"
    try:
        alive = lambda: served.poll() is None  # noqa: E731
        wait_ready(f"{url}/health", timeout_s=60, interval_s=0.2, still_running=alive)
        started = json.loads(marker.read_text())
        assert started["has_key"] and KEY not in " ".join(started["argv"])
        assert started["config"]["mode"] == "0o600"
        assert started["config"]["folder_mode"] == "0o700"
        with_key = _smoke(url, tmp_path / "ok", "--api-key-file", str(key_file))
        assert with_key.returncode == 0, with_key.stderr
        without = _smoke(url, tmp_path / "nokey")
        assert without.returncode == 3, without.stderr
        assert "answered HTTP 401: no API key was sent" in without.stderr
        (tmp_path / "wrong").write_text("not-the-key")
        wrong = _smoke(url, tmp_path / "wrong-out", "--api-key-file", str(tmp_path / "wrong"))
        assert wrong.returncode == 3 and "a wrong key" in wrong.stderr
        by_env = _smoke(url, tmp_path / "env", env={"GLM51_API_KEY": KEY})
        assert by_env.returncode == 0, by_env.stderr
        served.send_signal(signal.SIGTERM)
        assert served.wait(30) == 43  # the double's exit code, passed on
    finally:
        if served.poll() is None:
            served.kill()
    assert not Path(started["config"]["path"]).exists()  # removed when the server exited
    outputs = [log.read_text(), with_key.stdout, with_key.stderr, without.stderr, wrong.stderr]
    outputs += [p.read_text() for p in tmp_path.rglob("smoke.*")]
    assert all(KEY not in "".join(o) for o in outputs)
