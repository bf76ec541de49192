"""The smoke suite and the bench against a served endpoint, in this process: what the
release's gates step (the pushed image on the runner) and the rehearsal's smoke-bench step
(transformers serve on the CPU) share. The server is the only subprocess."""

from __future__ import annotations

from dataclasses import replace

from glm51.apikey import KeySource
from glm51.bench.report import TITLES
from glm51.bench.run import Settings
from glm51.bench.stage import BenchRequest, run_bench
from glm51.bench.stage import raise_for as bench_raise_for
from glm51.recipe.schema import Recipe
from glm51.release.runner import Context
from glm51.smoke.stage import TIERS, SmokeRequest, run_smoke
from glm51.smoke.stage import raise_for as smoke_raise_for

SMOKE, BENCH = "smoke/smoke.json", "bench/bench.json"


def smoke_and_bench(
    recipe: Recipe,
    context: Context,
    endpoint: str,
    *,
    bench: BenchRequest,
    tiers: tuple[str, ...] = TIERS,
    served_name: str | None = None,
) -> None:
    """Smoke first (a failed check stops before minutes of measuring), then the bench; each
    writes its record into the run folder and raises its own exit (5 gate, 6 server)."""
    # The key (if the recipe's variable is set here) is what the server was started with.
    key = KeySource(env=recipe.deploy.api_key_env)
    smoke = SmokeRequest(
        endpoint=endpoint,
        out_dir=context.path(SMOKE).parent,
        tiers=tiers,
        served_name=served_name,
        api_key=key,
    )
    bench_req = replace(bench, endpoint=endpoint, out_dir=context.path(BENCH).parent, api_key=key)
    smoke.check()
    bench_req.check()  # both checked before either runs
    say = context.log  # each check and figure as it ends: long work shows progress
    smoke_raise_for(
        run_smoke(smoke, recipe, log=say, on_done=lambda c: say(f"  {c.status} {c.name}"))
    )
    done = lambda f: say(f"  {f.title(TITLES)}: {f.tokens_per_s:.1f} tok/s")  # noqa: E731
    bench_raise_for(run_bench(bench_req, recipe, log=say, on_done=done))


def rehearsal_bench(recipe: Recipe) -> BenchRequest:
    r = recipe.rehearsal
    return BenchRequest(
        endpoint="http://127.0.0.1",  # replaced by the server's
        figures=tuple(r.figures),
        settings=Settings(warmup_s=r.warmup_s, duration_s=r.duration_s, max_tokens=r.max_tokens),
        served_name=r.served_name,
        hardware="CPU (rehearsal)",
        gate_set="rehearsal",
    )


def release_bench(recipe: Recipe) -> BenchRequest:
    gpus = recipe.profiles[recipe.gates.profile].hardware
    return BenchRequest(
        endpoint="http://127.0.0.1",  # replaced by the server's
        profile=recipe.gates.profile,
        hardware=f"{gpus.gpu_count}x NVIDIA {gpus.gpu_name}",
    )
