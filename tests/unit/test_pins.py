"""`glm51 image update-pins`: what it re-resolves, through the recipe, and what it says it
could not refresh (no GitHub, no registry here)."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest

from glm51.errors import InputError
from glm51.image import pins
from tests.conftest import REPO


@pytest.fixture
def repo(tmp_path):
    shutil.copytree(REPO / "images", tmp_path / "images")
    shutil.copyfile(REPO / "Dockerfile.cu130", tmp_path / "Dockerfile.cu130")
    return tmp_path


def test_offline_it_relocks_from_pypi_and_names_what_it_could_not_refresh(
    repo, recipe, monkeypatch
):
    calls = []

    def run(argv, **kw):
        calls.append(list(argv))
        if argv[:2] == ["docker", "buildx"]:
            raise InputError("no registry answered")
        return SimpleNamespace(returncode=0, stdout="", stderr="")

    monkeypatch.setattr(pins.proc, "run", run)
    report = pins.update_pins(recipe, repo, is_reachable=lambda url: False)
    compiled = [
        (c[c.index("--python-version") + 1], c[-3])
        for c in calls
        if c[:3] == ["uv", "pip", "compile"]
    ]
    stacks = [p.rsplit("/", 1)[-1] for _, p in compiled]
    assert sorted(stacks) == sorted(["upstream.in", "slim.in", "build.in"] * 2)
    assert {py for py, _ in compiled} == {"3.11", "3.12"}
    assert "blackwell-fork" not in " ".join(" ".join(c) for c in calls)  # GitHub unreachable
    said = " ".join(report.not_refreshed)
    assert "blackwell-fork locks (github.com is not reachable" in said
    assert "base image digest" in said and "kept as committed" in said
    assert len(report.refreshed) == 6


def test_a_new_base_digest_is_written_to_the_pins_and_the_dockerfile(repo, recipe, monkeypatch):
    digest = "sha256:" + "e" * 64

    def run(argv, **kw):
        out = json.dumps({"digest": digest}) if argv[:2] == ["docker", "buildx"] else ""
        return SimpleNamespace(returncode=0, stdout=out, stderr="")

    monkeypatch.setattr(pins.proc, "run", run)
    report = pins.update_pins(recipe, repo, is_reachable=lambda url: False)
    assert f"@{digest}" in (repo / "images" / "cu130" / "pins.toml").read_text()
    assert f"@{digest}" in (repo / "Dockerfile.cu130").read_text()
    assert any("base nvidia/cuda" in r for r in report.refreshed)
