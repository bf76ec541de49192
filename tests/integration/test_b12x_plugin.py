"""The glm51-sglang-b12x plugin in the built image (its real sglang 0.5.23 and b12x 1.5.1).

GLM51_TEST_IMAGE names the image under test (default glm51:ci). Needs a full-stack image of
the upstream build, which installs the plugin after the lock.
"""

from __future__ import annotations

import re

import pytest

from glm51 import proc
from tests.support.checkpoint import build as build_checkpoint
from tests.support.docker import CA_BUNDLE, REPO, docker_run

PLUGIN = REPO / "plugins" / "glm51-sglang-b12x"
PROFILE = "rtx-pro-6000-x8-b12x"

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def upstream_image(image, labels):
    if (
        labels.get("org.glm51.stack") != "full"
        or labels.get("org.glm51.sglang.build") != "upstream"
    ):
        pytest.skip("needs the full-stack image of the upstream sglang build")
    listed = docker_run(image, "sh", "-c", "cat /opt/glm51/packages.txt").stdout
    if "glm51-sglang-b12x==" not in listed and "glm51_sglang_b12x==" not in listed:
        pytest.fail(f"{image} was built without the glm51-sglang-b12x plugin")
    return image


def test_launch_server_help_lists_b12x_for_both_flags(upstream_image):
    text = " ".join(
        docker_run(upstream_image, "python", "-m", "sglang.launch_server", "--help").stdout.split()
    )
    for flag in ("--fp4-gemm-backend", "--moe-runner-backend"):
        choices = re.search(re.escape(flag) + r" \{([^}]*)\}", text)
        assert choices and "b12x" in choices[1].split(","), flag


def test_b12x_profile_dry_run_and_doctors_flag_and_sglang_checks(upstream_image, tmp_path):
    ckpt = build_checkpoint(tmp_path / "ckpt")
    mount = (f"{ckpt}:/models/ckpt:ro",)
    out = docker_run(
        upstream_image,
        "glm51",
        "serve",
        "--dry-run",
        "--profile",
        PROFILE,
        "--model",
        "/models/ckpt",
        mounts=mount,
    ).stdout
    assert f"# profile {PROFILE} (NOT validated)" in out
    assert "--fp4-gemm-backend b12x" in out and "--moe-runner-backend b12x" in out
    done = docker_run(
        upstream_image,
        "glm51",
        "doctor",
        "--profile",
        PROFILE,
        "--model",
        "/models/ckpt",
        "--only",
        "flags",
        "--only",
        "sglang",
        "--json",
        mounts=mount,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"severity": "error"' not in done.stdout


@pytest.mark.slow
def test_the_plugins_cpu_tests_pass_in_the_image(upstream_image):
    """The plugin's own suite (registration, hooks, weight preparation, the MoE data path
    against b12x's reference, plans and scratch) against the installed plugin."""
    mounts = [f"{PLUGIN}:/plugin:ro"]
    env = []
    if CA_BUNDLE.is_file():  # pytest is not in the image: pip needs the proxy's CA here
        mounts.append(f"{CA_BUNDLE}:/tmp/ca.pem:ro")
        env = ["-e", "PIP_CERT=/tmp/ca.pem"]
    volumes = [a for m in mounts for a in ("-v", m)]
    script = (
        "pip install -q pytest && cd /tmp && "
        "python -m pytest /plugin/tests -q -s -p no:cacheprovider -W ignore"
    )
    argv = ["docker", "run", "--rm", "--network", "host", "--user", "root", *volumes, *env]
    done = proc.run([*argv, upstream_image, "sh", "-c", script], check=False, timeout=1800)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert re.search(r"\d+ passed", done.stdout)
    errors = [float(e) for e in re.findall(r"worst abs error ([0-9.e+-]+)", done.stdout)]
    assert errors, "the reference comparison did not run"
    print(f"worst MoE reference error: {max(errors):.6g}")
