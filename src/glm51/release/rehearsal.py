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
from glm51.checkpoint.verify.stage import VerifyRequest
from glm51.endpoint.health import wait_ready
from glm51.fidelity.request import FidelityRequest
from glm51.fidelity.stage import raise_for as fidelity_gates
from glm51.fidelity.stage import run_fidelity
from glm51.outputs import copy_file, is_marked, write_text
from glm51.publish.request import CardRequest, PublishRequest, RunRecords
from glm51.quantize import stage
from glm51.quantize.tiny import build_tiny_model
from glm51.recipe.schema import Recipe
from glm51.release import steps as shared
from glm51.release.measure import BENCH as BENCH_RECORD
from glm51.release.measure import SMOKE as SMOKE_RECORD
from glm51.release.measure import rehearsal_bench, smoke_and_bench
from glm51.release.runner import Context, Outcome, Step

TINY, CALIB, CHECKPOINT = "tiny-bf16", "calib.jsonl", "checkpoint"
SERVED_CACHE, CACHE_REVISION, SERVER_LOG = "served-hub-cache", "0" * 40, "server.log"
PLOT = "bench/bench.png"  # the bench's; the card links it as assets/bench.png
FIDELITY, FIDELITY_TEXT = "fidelity", "fidelity-text.jsonl"
FIDELITY_PLOT = "fidelity/fidelity.png"  # linked as assets/fidelity.png
QUANTIZE_RECORD, CARD = "quantize.json", "card/README.md"
HUB = "hub"


def _tiny(context: Context) -> Outcome:
    build_tiny_model(context.path(TINY), overwrite=True, seed=context.request.seed)
    write_jsonl(context.path(CALIB), context.request.samples, context.request.seed)
    return Outcome(None, f"{context.path(TINY)} and {context.request.samples} conversations")


def quantize_request(context: Context) -> stage.Request:
    return stage.Request(
        model=context.path(TINY),
        output=context.path(CHECKPOINT),
        work_dir=context.path("quantize-work"),
        calibration=stage.Calibration(files=(context.path(CALIB),)),
        overwrite=True,
    )


def _quantize(recipe: Recipe):
    def run(context: Context) -> Outcome:
        outcome = stage.quantize(quantize_request(context), recipe, log=context.log)
        copy_file(outcome.record_path, context.path(QUANTIZE_RECORD))
        return Outcome(QUANTIZE_RECORD, f"{outcome.output}")

    return run


def verify_request(context: Context) -> VerifyRequest:
    return VerifyRequest(checkpoint=context.path(CHECKPOINT), report=context.path(shared.VERIFY))


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


def card_request(context: Context) -> CardRequest:
    return CardRequest(
        records=RunRecords(
            quantize_record=context.path(QUANTIZE_RECORD),
            smoke_record=context.path(SMOKE_RECORD),
            bench_record=context.path(BENCH_RECORD),
            plot=context.path(PLOT),
            fidelity_record=context.path(FIDELITY) / "fidelity.json",
            fidelity_plot=context.path(FIDELITY_PLOT),
        ),
        output=context.path(CARD),
        version=context.request.version,
    )


def publish_request(recipe: Recipe, context: Context) -> PublishRequest:
    """Into the run folder's hub/ (the Hub's stand-in), verified before it is tagged."""
    return PublishRequest(
        checkpoint=context.path(CHECKPOINT),
        repo=recipe.model.published,
        version=context.request.version,
        card=context.path(CARD),
        records=RunRecords(plot=context.path(PLOT), fidelity_plot=context.path(FIDELITY_PLOT)),
        to=context.path(HUB),
    )


def _tag_file(req: PublishRequest) -> str:
    """The publish step's record: the tag file, which records the digests it names."""
    return f"{HUB}/{req.repo}/tags/{req.version}"


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
        Step("verify", shared.step_verify(recipe, verify_request)),
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
        Step(
            "card",
            shared.step_card(recipe, card_request, CARD),
            lambda c: {"version": c.request.version},
        ),
        Step(
            "publish",
            shared.step_publish(recipe, lambda c: publish_request(recipe, c), _tag_file),
            lambda c: {"repo": recipe.model.published},
        ),
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
