"""The built image under test, and running commands in it (tests marked `docker`).

GLM51_TEST_IMAGE names the image (default glm51:ci, the tag ci/prepare.sh adds). The
`image` and `labels` fixtures live in tests/integration/conftest.py and skip, with the
reason, where no engine answers or the image is not built.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from glm51 import proc

REPO = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("GLM51_TEST_IMAGE", "glm51:ci")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return proc.run(["docker", "info"], check=False, timeout=30).returncode == 0


def image_missing() -> str | None:
    """Why the image tests cannot run here, or None when they can."""
    if not engine_answers():
        return "no Docker engine answers (start one with ci/docker-engine.sh)"
    if proc.run(["docker", "image", "inspect", IMAGE], check=False).returncode != 0:
        return f"image {IMAGE} not built (run ci/prepare.sh or set GLM51_TEST_IMAGE)"
    return None


def docker_run(
    image: str, *args: str, mounts: tuple[str, ...] = (), check: bool = True, user: str = ""
):
    volumes = [a for m in mounts for a in ("-v", m)]
    as_user = ["--user", user] if user else []
    argv = ["docker", "run", "--rm", "--network", "host", *as_user, *volumes, image, *args]
    return proc.run(argv, check=check, timeout=300)
