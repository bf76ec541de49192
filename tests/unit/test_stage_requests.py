"""The CLI and the release build the same request for the same inputs: each stage's options
map to one request, captured here without running the stage (cibuildwheel's
`intercepted_build_args` pattern)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from glm51.cli import app
from glm51.outputs import mark
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


# ---------------------------------------------------------------- verify, card, publish, quantize


@pytest.fixture
def intercepted_stages(monkeypatch):
    """The requests run_verify, run_card, run_publish and quantize were called with, from the
    CLI or from a release step (the stages themselves do not run)."""
    from glm51.checkpoint.verify import Report
    from glm51.checkpoint.verify import stage as verify_stage
    from glm51.publish import stage as publish_stage
    from glm51.publish.run import Outcome
    from glm51.quantize import stage as quantize_stage
    from glm51.release import steps

    seen: dict[str, list] = {"verify": [], "card": [], "publish": [], "quantize": []}

    def run_verify(req, recipe, **kw):
        seen["verify"].append(req)
        return Report(req.checkpoint)

    def run_card(req, recipe, **kw):
        seen["card"].append(req)
        return "card\n"

    def run_publish(req, recipe, **kw):
        seen["publish"].append(req)
        return Outcome(req.repo, req.version, "published", "plan")

    def quantize(req, recipe, **kw):
        seen["quantize"].append(req)
        record = req.work_dir.parent / "intercepted-record.json"
        record.write_text("{}")
        report = SimpleNamespace(merged=SimpleNamespace(warning=()), warn_below=0)
        return SimpleNamespace(
            report=report, output=req.output, reports={"md": ""}, record_path=record
        )

    for module in (verify_stage, steps):
        monkeypatch.setattr(module, "run_verify", run_verify)
    for module in (publish_stage, steps):
        monkeypatch.setattr(module, "run_card", run_card)
        monkeypatch.setattr(module, "run_publish", run_publish)
    monkeypatch.setattr(quantize_stage, "quantize", quantize)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    return seen


def _cli(*args: str) -> None:
    done = CliRunner().invoke(app, [str(a) for a in args])
    assert done.exit_code == 0, done.output


@pytest.fixture
def production_run(tmp_path, monkeypatch):
    from glm51.release import production

    checkpoint, run = tmp_path / "ckpt", tmp_path / "run"
    checkpoint.mkdir()
    (run / "smoke").mkdir(parents=True)
    (run / "bench").mkdir()
    (run / "fidelity").mkdir()
    mark(run, "release")  # a run folder, as `glm51 release` claims it
    records = ("smoke/smoke.json", "bench/bench.json", "bench/bench.png")
    for record in (*records, "fidelity/fidelity.json", "fidelity/fidelity.png"):
        (run / record).write_text("{}")  # the card step names the records the run holds
    image = SimpleNamespace(tags=("ghcr.io/o/glm51:build-1",), image="cu130", digest="sha256:d")
    monkeypatch.setattr(production, "_image", lambda context: image)
    monkeypatch.setattr(production, "tag_points_to", lambda tag, digest: True)
    return Context(run, ReleaseRequest(version="v1.2.3", checkpoint=checkpoint))


def test_the_releases_verify_card_and_publish_requests_are_the_clis(
    production_run, recipe, intercepted_stages
):
    from glm51.release import production

    context, seen = production_run, intercepted_stages
    run, checkpoint = context.run_dir, context.request.checkpoint
    for step in ("verify", "card", "publish"):
        getattr(production, f"step_{step}")(recipe)(context)
    (run / "README.md").write_text("card\n")  # what the card step wrote, for publish's --card
    _cli("verify", checkpoint, "--report", run / "verify.json")
    _cli(
        *("card", "--output", run / "README.md", "--version", "v1.2.3"),
        *("--smoke-record", run / "smoke/smoke.json", "--bench-record", run / "bench/bench.json"),
        *("--plot", run / "bench/bench.png", "--fidelity-record", run / "fidelity/fidelity.json"),
        *("--fidelity-plot", run / "fidelity/fidelity.png"),
    )
    _cli(
        *("publish", checkpoint, "--repo", recipe.model.published, "--version", "v1.2.3"),
        *("--card", run / "README.md", "--report", run / "publish.json"),
        *("--plot", run / "bench/bench.png", "--fidelity-plot", run / "fidelity/fidelity.png"),
    )
    for stage in ("verify", "card", "publish"):
        release, cli = seen[stage]
        assert cli == release, stage


def test_the_rehearsals_quantize_verify_card_and_publish_requests_are_the_clis(
    tmp_path, recipe, intercepted_stages
):
    from glm51.release import rehearsal

    run, seen = tmp_path / "run", intercepted_stages
    context = Context(run, ReleaseRequest(rehearsal=True, version="v0.1.0"))
    for folder in ("tiny-bf16", "checkpoint", "bench", "smoke", "fidelity"):
        (run / folder).mkdir(parents=True)
    mark(run, "release")
    records = ("calib.jsonl", "smoke/smoke.json", "bench/bench.json", "bench/bench.png")
    for record in (*records, "fidelity/fidelity.json", "fidelity/fidelity.png"):
        (run / record).write_text("{}")
    chain = {step.name: step.run for step in rehearsal.steps(recipe)}
    for step in ("quantize", "verify", "card", "publish"):
        chain[step](context)
    (run / "card" / "README.md").write_text("card\n")
    _cli(
        *("quantize", "--model", run / "tiny-bf16", "--output", run / "checkpoint"),
        *("--work-dir", run / "quantize-work", "--calib-file", run / "calib.jsonl", "--overwrite"),
    )
    _cli("verify", run / "checkpoint", "--report", run / "verify.json")
    _cli(
        *("card", "--output", run / "card/README.md", "--version", "v0.1.0"),
        *("--quantize-record", run / "quantize.json", "--smoke-record", run / "smoke/smoke.json"),
        *("--bench-record", run / "bench/bench.json", "--plot", run / "bench/bench.png"),
        *("--fidelity-record", run / "fidelity/fidelity.json"),
        *("--fidelity-plot", run / "fidelity/fidelity.png"),
    )
    _cli(
        *("publish", run / "checkpoint", "--repo", recipe.model.published, "--version", "v0.1.0"),
        *("--card", run / "card/README.md", "--plot", run / "bench/bench.png", "--to", run / "hub"),
        *("--fidelity-plot", run / "fidelity/fidelity.png"),
    )
    for stage in ("quantize", "verify", "card", "publish"):
        release, cli = seen[stage]
        assert cli == release, stage


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
