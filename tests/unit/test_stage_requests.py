"""The CLI and the release build the same request for the same inputs: each stage's options
map to one request, captured here without running the stage (cibuildwheel's
`intercepted_build_args` pattern)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from glm51.cli import app
from glm51.release import measure
from glm51.release.request import ReleaseRequest
from glm51.release.runner import Context


@pytest.fixture
def intercepted(monkeypatch):
    """The requests run_smoke and run_bench were called with, wherever they were called."""
    seen: dict[str, list] = {"smoke": [], "bench": []}

    def capture(name):
        def run(req, recipe, **kw):
            seen[name].append(req)
            return SimpleNamespace(checks=(), figures=(), endpoint=req.endpoint)

        return run

    import glm51.bench.stage as bench_stage
    import glm51.smoke.stage as smoke_stage

    for module, name in ((smoke_stage, "smoke"), (measure, "smoke")):
        monkeypatch.setattr(module, "run_smoke", capture(name))
    for module, name in ((bench_stage, "bench"), (measure, "bench")):
        monkeypatch.setattr(module, "run_bench", capture(name))
    monkeypatch.setattr(smoke_stage, "raise_for", lambda record: None)
    monkeypatch.setattr(bench_stage, "raise_for", lambda record: None)
    monkeypatch.setattr(measure, "smoke_raise_for", lambda record: None)
    monkeypatch.setattr(measure, "bench_raise_for", lambda record: None)
    monkeypatch.setattr("glm51.bench.report.markdown", lambda record: "")  # no real record
    return seen


def test_the_rehearsals_smoke_and_bench_requests_are_the_clis(tmp_path, recipe, intercepted):
    endpoint, r = "http://127.0.0.1:8000", recipe.rehearsal
    context = Context(tmp_path / "run", ReleaseRequest(rehearsal=True))
    measure.smoke_and_bench(
        recipe,
        context,
        endpoint,
        bench=measure.rehearsal_bench(recipe),
        tiers=("protocol",),
        served_name=r.served_name,
    )
    (release_smoke,), (release_bench,) = intercepted["smoke"], intercepted["bench"]
    runner = CliRunner()
    smoke = ["smoke", "--endpoint", endpoint, "--out", str(tmp_path / "run" / "smoke")]
    done = runner.invoke(app, [*smoke, "--tier", "protocol", "--served-name", r.served_name])
    assert done.exit_code == 0, done.output
    bench = ["bench", "--endpoint", endpoint, "--out", str(tmp_path / "run" / "bench")]
    bench += ["--figures", ",".join(r.figures), "--hardware", "CPU (rehearsal)"]
    bench += ["--warmup", str(r.warmup_s), "--duration", str(r.duration_s)]
    bench += ["--max-tokens", str(r.max_tokens), "--served-name", r.served_name]
    done = runner.invoke(app, [*bench, "--gates", "rehearsal"])
    assert done.exit_code == 0, done.output
    assert intercepted["smoke"][1] == release_smoke
    assert intercepted["bench"][1] == release_bench


def test_the_release_gates_requests_are_the_clis(tmp_path, recipe, intercepted):
    endpoint = "http://127.0.0.1:5000"
    context = Context(tmp_path / "run", ReleaseRequest(checkpoint=Path("c")))
    measure.smoke_and_bench(recipe, context, endpoint, bench=measure.release_bench(recipe))
    gpus = recipe.profiles[recipe.gates.profile].hardware
    runner = CliRunner()
    done = runner.invoke(
        app, ["smoke", "--endpoint", endpoint, "--out", str(tmp_path / "run" / "smoke")]
    )
    assert done.exit_code == 0, done.output
    bench = ["bench", "--endpoint", endpoint, "--out", str(tmp_path / "run" / "bench")]
    bench += ["--profile", recipe.gates.profile]
    bench += ["--hardware", f"{gpus.gpu_count}x NVIDIA {gpus.gpu_name}"]
    done = runner.invoke(app, bench)
    assert done.exit_code == 0, done.output
    assert intercepted["smoke"][0] == intercepted["smoke"][1]
    assert intercepted["bench"][0] == intercepted["bench"][1]


def test_the_release_fidelity_request_is_the_clis(tmp_path, recipe, monkeypatch):
    import glm51.fidelity.report as fidelity_report
    import glm51.fidelity.stage as fidelity_stage
    from glm51.release import production

    seen = []

    def run(req, recipe, **kw):
        seen.append(req)
        return SimpleNamespace(kl=SimpleNamespace(mean=0.0), positions=0, top1_agreement=1.0)

    for module in (fidelity_stage, production):
        monkeypatch.setattr(module, "run_fidelity", run)
    monkeypatch.setattr(fidelity_stage, "raise_for", lambda record: None)
    monkeypatch.setattr(production, "fidelity_gates", lambda record: None)
    monkeypatch.setattr(fidelity_report, "markdown", lambda record: "")  # no real record
    request = ReleaseRequest(checkpoint=tmp_path / "nvfp4", source=tmp_path / "bf16")
    production.step_fidelity(recipe)(Context(tmp_path / "run", request))
    done = CliRunner().invoke(
        app,
        [
            "fidelity",
            "--source",
            str(tmp_path / "bf16"),
            "--checkpoint",
            str(tmp_path / "nvfp4"),
            "--out",
            str(tmp_path / "run" / "fidelity"),
            "--device",
            request.fidelity_device,
        ],
    )
    assert done.exit_code == 0, done.output
    assert len(seen) == 2 and seen[0] == seen[1]
    assert seen[0].gate_set == "release" and seen[0].out_dir == tmp_path / "run" / "fidelity"
