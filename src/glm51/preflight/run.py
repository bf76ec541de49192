"""Run every preflight check for one profile and collect the findings (no side effects)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from glm51.preflight import checkpoint, flags, gpus, sglang_support
from glm51.preflight.findings import Report, Severity
from glm51.recipe.schema import Recipe
from glm51.sglang import help as sglang_help

MISSING_FIX = "pass --model PATH (a checkpoint folder) or --model-id REPO in the Hub cache"


def check(
    recipe: Recipe,
    profile_name: str,
    *,
    model_path: Path | None,
    passthrough: Sequence[str] = (),
    gpu_probe: gpus.GpuProbe | None = None,
    sglang_probe: sglang_help.SglangProbe | None = None,
    model_error: str | None = None,
    node: tuple[int, int] | None = None,
) -> Report:
    """GPUs, checkpoint, flags and installed SGLang for ``profile_name`` on ``model_path``.

    The probes default to the real nvidia-smi and `python -m sglang.launch_server --help`;
    tests pass recorded outputs instead. ``model_path`` None (with ``model_error`` saying why)
    reports the checkpoint as missing and runs the GPU, flag and SGLang checks anyway.
    ``node`` (rank, nnodes): this machine is one node of a replica that spans several; the
    GPU count is per node, and the profile's node_env variables must be set.
    """
    _, profile = recipe.profile(profile_name)
    report = Report()

    gpu_count: int | None = None
    try:
        found = (gpu_probe or gpus.nvidia_smi)()
    except gpus.NoGpu as exc:
        report.extend([gpus.no_gpu_finding(str(exc))])
    else:
        found = gpus.visible(
            found, profile.env.get("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES"))
        )
        gpu_count = len(found)
        report.extend(gpus.check(profile, found, node=node))
    if node is not None or profile.hardware.nodes > 1:
        report.extend(gpus.node_env(profile, node, {**os.environ, **profile.env}))

    if model_path is None:
        # No checkpoint to look at (doctor on a machine without one): the other checks still run.
        facts = checkpoint.CheckpointFacts()
        report.add(
            "checkpoint.missing",
            Severity.ERROR,
            model_error or "no checkpoint was given",
            MISSING_FIX,
        )
    else:
        ckpt_findings, facts = checkpoint.check(Path(model_path), recipe, profile)
        report.extend(ckpt_findings)
    report.extend(flags.check(profile, facts, passthrough, gpu_count=gpu_count))

    build = recipe.sglang_builds[profile.sglang_build]
    report.extend(
        sglang_support.check(
            profile,
            profile.sglang_build,
            build,
            passthrough,
            sglang_probe or sglang_help.launch_server_help,
        )
    )
    return report
