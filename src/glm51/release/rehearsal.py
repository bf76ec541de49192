"""The rehearsal: the whole release chain on the CPU with the embedded default, the tiny
`glm_moe_dsa` model. Real code paths end to end (ModelOpt, verify, fidelity against BF16, the
card, a publish that is verified before it is tagged); only the Hub is a local folder."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

from glm51 import proc
from glm51.calib.rehearsal_data import write_jsonl
from glm51.checkpoint.dequant import to_bf16
from glm51.checkpoint.verify import verify
from glm51.endpoint.health import wait_ready
from glm51.errors import InputError
from glm51.fidelity.request import FidelityRequest
from glm51.fidelity.stage import raise_for as fidelity_gates
from glm51.fidelity.stage import run_fidelity
from glm51.outputs import copy_file, is_marked, write_text
from glm51.publish.card import Records, render_card
from glm51.publish.local import publish_to_folder
from glm51.quantize import stage
from glm51.quantize.tiny import build_tiny_model
from glm51.recipe.schema import Recipe
from glm51.records import BenchRecord, FidelityRecord, QuantizeRecord, SmokeRecord, read_record
from glm51.release.measure import BENCH as BENCH_RECORD
from glm51.release.measure import SMOKE as SMOKE_RECORD
from glm51.release.measure import rehearsal_bench, smoke_and_bench
from glm51.release.runner import Context, Outcome, Step

TINY, CALIB, CHECKPOINT = "tiny-bf16", "calib.jsonl", "checkpoint"
SERVED_CACHE, CACHE_REVISION, SERVER_LOG = "served-hub-cache", "0" * 40, "server.log"
PLOT, FIDELITY_PLOT = "assets/bench.png", "assets/fidelity.png"
FIDELITY, FIDELITY_TEXT = "fidelity", "fidelity-text.jsonl"
QUANTIZE_RECORD, VERIFY_REPORT, CARD = "quantize.json", "verify.json", "card/README.md"
HUB = "hub"


def _tiny(context: Context) -> Outcome:
    build_tiny_model(context.path(TINY), overwrite=True, seed=context.request.seed)
    write_jsonl(context.path(CALIB), context.request.samples, context.request.seed)
    return Outcome(None, f"{context.path(TINY)} and {context.request.samples} conversations")


def _quantize(recipe: Recipe):
    def run(context: Context) -> Outcome:
        calibration = stage.Calibration(files=(context.path(CALIB),))
        request = stage.Request(
            context.path(TINY),
            context.path(CHECKPOINT),
            context.path("quantize-work"),
            calibration,
            overwrite=True,
        )
        outcome = stage.quantize(request, recipe, log=context.log)
        copy_file(outcome.record_path, context.path(QUANTIZE_RECORD))
        return Outcome(QUANTIZE_RECORD, f"{outcome.output}")

    return run


def _verify(recipe: Recipe):
    def run(context: Context) -> Outcome:
        report = verify(context.path(CHECKPOINT), recipe)
        write_text(context.path(VERIFY_REPORT), report.to_json())
        if not report.ok:
            raise InputError(f"{context.path(CHECKPOINT)}: verify failed: {report.problems[0]}")
        return Outcome(VERIFY_REPORT, "checkpoint verified (manifest, layout)")

    return run


def _fidelity(recipe: Recipe):
    """KL of the tiny NVFP4 checkpoint against its BF16 source, on synthetic text of another
    seed than the calibration set's; [rehearsal.gates.fidelity] decides (a miss: exit 5,
    nothing served, carded or published)."""

    def run(context: Context) -> Outcome:
        sequences = recipe.rehearsal.fidelity.sequences
        text = write_jsonl(context.path(FIDELITY_TEXT), sequences, context.request.seed + 1)
        request = FidelityRequest(
            source=context.path(TINY),
            checkpoint=context.path(CHECKPOINT),
            out_dir=context.path(FIDELITY),
            text_files=(text,),
            coverage=context.path("quantize-work") / "merged.safetensors",
            gate_set="rehearsal",
        )
        record = run_fidelity(request, recipe, log=context.log)
        fidelity_gates(record)
        return Outcome(
            f"{FIDELITY}/fidelity.json",
            f"KL mean {record.kl.mean:.3g}, top-1 {record.top1_agreement:.2%} over "
            f"{record.positions} positions: gates passed",
        )

    return run


def _served_copy(recipe: Recipe):
    """The NVFP4 export dequantized to BF16 (no CPU server runs NVFP4), in a Hub cache layout:
    `transformers serve` finds its models by repo id."""

    def run(context: Context) -> Outcome:
        owner, name = recipe.rehearsal.served_name.split("/")
        repo = context.path(SERVED_CACHE) / f"models--{owner}--{name}"
        if repo.exists():  # ours (inside the run directory): a re-run replaces it
            shutil.rmtree(repo)
        to_bf16(context.path(CHECKPOINT), repo / "snapshots" / CACHE_REVISION)
        (repo / "refs").mkdir()
        write_text(repo / "refs" / "main", CACHE_REVISION)
        return Outcome(None, f"BF16 copy for serving in {context.path(SERVED_CACHE)}")

    return run


def _transformers_serve() -> list[str]:
    beside = Path(sys.executable).with_name("transformers")
    return [str(beside) if beside.exists() else "transformers", "serve"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _measure(recipe: Recipe):
    """Serve the BF16 copy with `transformers serve` on the CPU, run the smoke suite's protocol
    tier and the bench (gated on [rehearsal.gates]), stop the server."""

    def run(context: Context) -> Outcome:
        port, rehearsal = _free_port(), recipe.rehearsal
        env = {"HF_HUB_CACHE": str(context.path(SERVED_CACHE)), "HF_HUB_OFFLINE": "1"}
        argv = [*_transformers_serve(), rehearsal.served_name, "--device", "cpu"]
        argv += ["--host", "127.0.0.1", "--port", str(port)]
        endpoint = f"http://127.0.0.1:{port}"
        with context.path(SERVER_LOG).open("wb") as server_log:
            server = proc.spawn(argv, env=env, output=server_log)
            try:
                alive = lambda: server.poll() is None  # noqa: E731
                wait_ready(f"{endpoint}/health", timeout_s=300, interval_s=0.5, still_running=alive)
                smoke_and_bench(
                    recipe,
                    context,
                    endpoint,
                    bench=rehearsal_bench(recipe),
                    tiers=("protocol",),
                    served_name=rehearsal.served_name,
                )
            finally:
                server.terminate()
                try:
                    server.wait(30)
                except subprocess.TimeoutExpired:
                    server.kill()
        return Outcome(
            BENCH_RECORD, f"served on the CPU, smoke (protocol) and bench passed: {endpoint}"
        )

    return run


def _card(recipe: Recipe):
    def run(context: Context) -> Outcome:
        records = Records(
            quantize=read_record(context.path(QUANTIZE_RECORD), QuantizeRecord),
            smoke=read_record(context.path(SMOKE_RECORD), SmokeRecord),
            bench=read_record(context.path(BENCH_RECORD), BenchRecord),
            fidelity=read_record(context.path(FIDELITY) / "fidelity.json", FidelityRecord),
        )
        text = render_card(
            recipe,
            records,
            version=context.request.version,
            plot=PLOT,
            fidelity_plot=FIDELITY_PLOT,
        )
        card = context.path(CARD)
        card.parent.mkdir(exist_ok=True)
        write_text(card, text)
        # The card links its plot relative to itself: put it there, so the link resolves.
        (card.parent / PLOT).parent.mkdir(parents=True, exist_ok=True)
        copy_file(context.path("bench") / "bench.png", card.parent / PLOT)
        copy_file(context.path(FIDELITY) / "fidelity.png", card.parent / FIDELITY_PLOT)
        return Outcome(CARD, f"{card}")

    return run


def _publish(recipe: Recipe):
    def run(context: Context) -> Outcome:
        tag = publish_to_folder(
            context.path(CHECKPOINT),
            context.path(CARD).read_text(),
            context.path(HUB),
            repo=recipe.model.published,
            version=context.request.version,
            extra={
                PLOT: context.path("bench") / "bench.png",
                FIDELITY_PLOT: context.path(FIDELITY) / "fidelity.png",
            },
        )
        return Outcome(str(tag.relative_to(context.run_dir)), f"published and tagged: {tag}")

    return run


def _folder_still_there(name: str):
    return lambda context, entry: is_marked(context.path(name))


def steps(recipe: Recipe) -> list[Step]:
    rehearsal = recipe.rehearsal
    tiny_inputs = lambda c: {"seed": c.request.seed, "samples": c.request.samples}  # noqa: E731
    return [
        Step("tiny-model", _tiny, tiny_inputs, _folder_still_there(TINY)),
        Step(
            "quantize",
            _quantize(recipe),
            lambda c: {"quantize": recipe.quantize.model_dump(mode="json")},
            _folder_still_there(CHECKPOINT),
        ),
        Step("verify", _verify(recipe)),
        Step(
            "fidelity",
            _fidelity(recipe),
            lambda c: {
                "fidelity": rehearsal.fidelity.model_dump(mode="json"),
                "gates": rehearsal.gates.fidelity.model_dump(mode="json"),
            },
        ),
        Step(
            "serve-copy",
            _served_copy(recipe),
            lambda c: {"served": rehearsal.served_name},
            lambda c, entry: c.path(SERVED_CACHE).is_dir(),
        ),
        Step(
            "smoke-bench",
            _measure(recipe),
            lambda c: {"rehearsal": rehearsal.model_dump(mode="json")},
        ),
        Step("card", _card(recipe), lambda c: {"version": c.request.version}),
        Step("publish", _publish(recipe), lambda c: {"repo": recipe.model.published}),
    ]


def where(run_dir: Path) -> dict[str, Path]:
    """What a finished rehearsal leaves, for the closing message."""
    return {
        "checkpoint": run_dir / CHECKPOINT,
        "card": run_dir / CARD,
        "reports": run_dir / "bench",
        "fidelity": run_dir / FIDELITY,
        "smoke": run_dir / SMOKE_RECORD,
        "published": run_dir / HUB,
        "run": run_dir / "run.json",
    }
