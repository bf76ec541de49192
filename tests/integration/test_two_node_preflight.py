"""`glm51 serve` on one node of the two-node profile, with the nvidia-smi and sglang doubles:
the preflight counts this node's GPUs against the per-node count and names the node, and wants
the profile's network variables; with both right, SGLang gets the node's flags."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.support import checkpoint as ckpt
from tests.support.fakes import fake_env

GLM51 = [sys.executable, "-c", "import sys; from glm51.cli import main; main()"]
NODE = ["--profile", "rtx-pro-6000-x4-2node", "--nnodes", "2", "--dist-init-addr", "10.0.0.1:1"]
NETWORK = {"NCCL_SOCKET_IFNAME": "lo", "GLOO_SOCKET_IFNAME": "lo"}


def _serve(model, rank, env_extra, marker=None, timeout=60):
    argv = [*GLM51, "serve", "--model", str(model), *NODE, "--node-rank", str(rank)]
    argv += ["--host", "127.0.0.1", "--port", "1"]
    env = {
        **os.environ,
        **fake_env(
            nvidia_smi="rtx-pro-6000-x4-595", help_name="upstream-0.5.23-b12x", marker=marker
        ),
    }
    env.pop("NCCL_SOCKET_IFNAME", None)
    env.pop("GLOO_SOCKET_IFNAME", None)
    env.update(env_extra)
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_the_preflight_names_the_node_with_too_few_gpus_and_the_missing_variables(tmp_path):
    model = ckpt.build(tmp_path / "GLM-5.1-NVFP4")
    served = _serve(model, 1, {"CUDA_VISIBLE_DEVICES": "0,1,2", "NCCL_SOCKET_IFNAME": "lo"})
    _, err = served.communicate(timeout=120)
    assert served.returncode == 4, err
    assert "node 1 of 2: too few GPUs: found 3, the profile needs 4 per node" in err
    assert "node 1 of 2: GLOO_SOCKET_IFNAME not set" in err


def test_a_node_with_its_gpus_and_variables_starts_with_the_nodes_flags(tmp_path):
    model = ckpt.build(tmp_path / "GLM-5.1-NVFP4")
    marker = tmp_path / "started.json"
    served = _serve(model, 1, NETWORK, marker=marker)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and served.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), served.stderr.read() if served.poll() is not None else "late"
        argv = json.loads(marker.read_text())["argv"]
        at = argv.index("--node-rank")
        assert argv[at - 2 : at + 4] == [
            "--nnodes",
            "2",
            "--node-rank",
            "1",
            "--dist-init-addr",
            "10.0.0.1:1",
        ]
        assert argv[argv.index("--pp-size") + 1] == "2" and argv[argv.index("--tp") + 1] == "4"
    finally:
        served.send_signal(signal.SIGTERM)
        served.wait(30)
