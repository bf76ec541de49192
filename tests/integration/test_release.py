"""`glm51 release --rehearsal`: the whole chain on the CPU, resumable after a kill, and stopped
by a failing gate before anything is published or tagged."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from glm51.records import read_record
from glm51.records.release import RunManifest
from tests.conftest import REPO

GLM51 = [
    sys.executable,
    "-c",
    "import sys; from glm51.cli import main; sys.argv[0] = 'glm51'; main()",
]
STEPS = [
    "tiny-model",
    "quantize",
    "verify",
    "fidelity",
    "serve-copy",
    "smoke-bench",
    "card",
    "publish",
]

pytestmark = pytest.mark.slow


def _env():
    env = {**os.environ}
    env.pop("GLM51_DEBUG", None)
    return env


def _release(run_dir, *extra):
    argv = [
        *GLM51,
        "release",
        "--rehearsal",
        "--version",
        "v1.0.0",
        "--run-dir",
        str(run_dir),
        *extra,
    ]
    return subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=900)


def test_killed_midway_it_resumes_without_redoing_finished_steps(tmp_path):
    run_dir = tmp_path / "run"
    argv = [*GLM51, "release", "--rehearsal", "--version", "v1.0.0", "--run-dir", str(run_dir)]
    child = subprocess.Popen(argv, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = run_dir / "run.json"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and child.poll() is None:
        if (
            manifest.is_file()
            and '"name": "quantize",\n      "status": "running"' in manifest.read_text()
        ):
            break
        time.sleep(0.2)
    assert child.poll() is None, "the rehearsal ended before it could be killed midway"
    child.send_signal(signal.SIGKILL)
    child.wait()
    killed = read_record(manifest, RunManifest)
    assert killed.entry("tiny-model").status == "done"
    assert killed.entry("quantize").status == "running" and killed.entry("publish") is None

    done = _release(run_dir)
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stderr.split())
    assert "tiny-model: done already" in said and "quantize: running" in said
    finished = read_record(manifest, RunManifest)
    assert [s.name for s in finished.steps] == STEPS
    assert all(s.status == "done" for s in finished.steps)
    assert finished.entry("tiny-model").started_at == killed.entry("tiny-model").started_at
    # It says where the card, the reports and the checkpoint are.
    printed = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    assert (run_dir / "card" / "README.md").is_file() and printed["card"].endswith("README.md")
    assert printed["checkpoint"] == str(run_dir / "checkpoint")
    tag = run_dir / "hub" / "lukealonso" / "GLM-5.1-NVFP4" / "tags" / "v1.0.0"
    assert set(json.loads(tag.read_text())) >= {"README.md", "glm51-manifest.json", "config.json"}
    # The card's plot link resolves where the card is written, and in the published copy.
    card = (run_dir / "card" / "README.md").read_text()
    assert "![Throughput](assets/bench.png)" in card
    for where in (run_dir / "card", tag.parents[1]):
        assert (where / "assets" / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (where / "assets" / "fidelity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The fidelity table, from the fidelity step's record, and its plot.
    fidelity = card.split("## Fidelity vs BF16")[1].split("## Smoke tests")[0]
    assert "| KL mean | KL median | KL P95 | KL P99 | KL max | Top-1 agreement |" in fidelity
    assert "1,024 positions" in fidelity and "![Fidelity vs BF16](assets/fidelity.png)" in fidelity
    # The calibration table is what ran (the rehearsal's `local` pass), not the recipe's plan.
    assert "| local | not one of the recipe's passes |" in card
    # Everything it wrote is readable by another user (the image runs as uid 1000).
    for path in run_dir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert path.stat().st_mode & 0o004, path

    again = _release(run_dir)
    assert again.returncode == 0
    assert " ".join(again.stderr.split()).count("done already") == len(STEPS)


# (the recipe's text, the replacement that forces the gate to fail, the step it stops at)
FORCED = {
    "coverage": (
        "fail_below = 1\nwarn_below = 8\n",
        "fail_below = 1000000\nwarn_below = 1000001\n",
        "quantize",
    ),
    "throughput": ("short_tg_tok_s = 1.0\n", "short_tg_tok_s = 1000000000.0\n", "smoke-bench"),
    "fidelity": ("kl_mean_max = 0.001\n", "kl_mean_max = 0.0\n", "fidelity"),
}


@pytest.mark.parametrize("gate", sorted(FORCED))
def test_a_failed_gate_publishes_and_tags_nothing_and_exits_with_the_gates_code(tmp_path, gate):
    release = tmp_path / "release"
    shutil.copytree(REPO / "release", release)
    recipe = release / "glm51.toml"
    text, forced, step = FORCED[gate]
    assert text in recipe.read_text()
    recipe.write_text(recipe.read_text().replace(text, forced, 1))
    run_dir = tmp_path / "run"
    done = _release(run_dir, "--recipe", str(recipe))
    assert done.returncode == 5, done.stderr
    assert "gate failed" in done.stderr
    recorded = read_record(run_dir / "run.json", RunManifest)
    assert recorded.entry(step).status == "failed" and recorded.entry(step).exit_code == 5
    assert recorded.entry("card") is None and recorded.entry("publish") is None
    assert not (run_dir / "hub").exists() and not (run_dir / "card").exists()


def test_a_planted_bad_scale_stops_the_rehearsal_at_fidelity_before_anything_is_published(
    tmp_path,
):
    from safetensors.torch import load_file, save_file

    run_dir = tmp_path / "run"
    first = _release(run_dir, "--steps", "tiny-model,quantize,verify")
    assert first.returncode == 0, first.stderr
    from glm51.quantize.artifact import Artifact

    # The expert of layer 2 that calibration routed the most tokens to: used often enough in
    # the fidelity text that a bad scale moves the mean KL, not only its tail.
    counts = Artifact.load(run_dir / "quantize-work" / "merged.safetensors").counts
    expert = int(counts.counts[counts.layers.index(2)].argmax())
    checkpoint = run_dir / "checkpoint"
    name = f"model.layers.2.mlp.experts.{expert}.down_proj.weight_scale_2"
    index = json.loads((checkpoint / "model.safetensors.index.json").read_text())
    shard = checkpoint / index["weight_map"][name]
    tensors = load_file(str(shard))
    tensors[name] = tensors[name] * 64  # one expert's global scale, 64 times too large
    save_file(tensors, str(shard), {"format": "pt"})

    done = _release(run_dir)
    assert done.returncode == 5, done.stderr
    assert "kl_mean" in done.stderr.split("gate failed")[1]
    recorded = read_record(run_dir / "run.json", RunManifest)
    assert recorded.entry("fidelity").status == "failed"
    assert recorded.entry("fidelity").exit_code == 5
    assert recorded.entry("card") is None and recorded.entry("publish") is None
    assert not (run_dir / "hub").exists() and not (run_dir / "card").exists()
    # The reports were written before the exit; they name the planted layer and expert.
    from glm51.records.fidelity import FidelityRecord

    record = read_record(run_dir / "fidelity" / "fidelity.json", FidelityRecord)
    assert (run_dir / "fidelity" / "fidelity.md").is_file()
    assert record.worst_layer.layer == 2
    assert (record.worst_experts[0].layer, record.worst_experts[0].expert) == (2, expert)
