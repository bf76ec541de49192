"""`glm51 serve --api-key-file` end to end with the doubles: the sglang double reads the key
from the --config file as SGLang 0.5.23 does and then wants `Authorization: Bearer`;
`glm51 smoke` passes with the key and is bad input (exit 3) without it or with a wrong one.
No output of these runs holds the key."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from glm51.endpoint.health import wait_ready
from tests.integration.test_serve_runtime import _serve
from tests.support import checkpoint as ckpt

KEY = "sk-serve-key-5e1d77"
GLM51 = [sys.executable, "-c", "import sys; from glm51.cli import main; main()"]


def _smoke(endpoint, out, *extra, env=None):
    argv = [*GLM51, "smoke", "--endpoint", endpoint, "--out", str(out), "--tier", "protocol"]
    env = {**os.environ, "GLM51_API_KEY": "", **(env or {})}
    return subprocess.run([*argv, *extra], env=env, capture_output=True, text=True, timeout=120)


def test_serve_passes_the_key_in_a_private_config_file_and_smoke_sends_it(tmp_path):
    model = ckpt.build(tmp_path / "GLM-5.1-NVFP4")
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    served, marker, port = _serve(
        model, tmp_path, "--api-key-file", str(key_file), env_extra={"GLM51_API_KEY": ""}
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/health", timeout_s=60, interval_s=0.2, still_running=lambda: True)
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
        assert served.stop(signal.SIGTERM) == 43
    finally:
        served.kill()
    assert not Path(started["config"]["path"]).exists()  # removed when the server exited
    outputs = [served.lines, with_key.stdout, with_key.stderr, without.stderr, wrong.stderr]
    outputs += [p.read_text() for p in tmp_path.rglob("smoke.*")]
    assert all(KEY not in "".join(o) for o in outputs)
