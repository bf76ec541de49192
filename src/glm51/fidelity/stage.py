"""`glm51 fidelity` as one library call: check the request, build the held-out text, print the
memory estimate, walk both streams layer by layer, write fidelity.json / .md / .png, and hand
back the record (`raise_for` turns a missed gate into exit 5, after the reports exist)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import glm51
from glm51.calib import data as calibdata
from glm51.calib.coverage import ExpertCounts
from glm51.calib.tokenizer import from_folder
from glm51.checkpoint.folder import Checkpoint
from glm51.errors import GateFailed
from glm51.fidelity import estimate as est
from glm51.fidelity.inputs import select
from glm51.fidelity.numerics import distribution
from glm51.fidelity.report import markdown, plot
from glm51.fidelity.request import FidelityRequest
from glm51.fidelity.walk import Progress, measure
from glm51.outputs import claim_output_folder, write_text
from glm51.quantize.artifact import Artifact
from glm51.quantize.device import device_name, tool_versions
from glm51.recipe.fidelity import FidelityGates
from glm51.recipe.schema import Recipe
from glm51.records.base import ToolVersions, write_record
from glm51.records.fidelity import (
    ExpertError,
    FidelityGate,
    FidelityRecord,
    KLStats,
    LayerError,
    TextSource,
)

Log = Callable[[str], None]
FILES = ("fidelity.json", "fidelity.md", "fidelity.png")


def build_text(req: FidelityRequest, recipe: Recipe) -> tuple[list[list[int]], TextSource]:
    """The measured sequences and where they came from."""
    tokenizer = from_folder(req.source, option="--source")
    budget = req.budget(recipe)
    if req.text_files:
        calib = calibdata.from_jsonl(
            list(req.text_files), tokenizer, max_length=budget.tokens_per_sequence
        )
        where, kind, name = ", ".join(map(str, req.text_files)), "files", "local"
        description = "local JSONL given with --text-file"
    else:
        manifest_path = recipe.fidelity_manifest()
        calib = calibdata.build_pass(manifest_path, tokenizer, data_dir=req.data_dir)
        manifest = calibdata.load_manifest(manifest_path)
        kind, name, description = "manifest", manifest.name, manifest.description
        root = recipe.source.parent if recipe.source else None
        where = str(manifest_path.relative_to(root) if root else manifest_path)
    samples = select(
        calib.samples,
        budget.sequences,
        budget.tokens_per_sequence,
        budget.seed,
        where,
        budget_key=req.budget_key(),
    )
    digest = calibdata.digest_of(samples)
    return samples, TextSource(
        kind=kind, name=name, description=description, path=where, digest=digest
    )


def gates(kl: KLStats, top1: float, thresholds: FidelityGates) -> tuple[FidelityGate, ...]:
    """Each of [gates.fidelity]'s thresholds against its figure: (name, value, threshold, bound)."""
    checks = (
        ("kl_mean", kl.mean, thresholds.kl_mean_max, "max"),
        ("kl_p99", kl.p99, thresholds.kl_p99_max, "max"),
        ("top1", top1, thresholds.top1_min, "min"),
    )
    return tuple(
        FidelityGate(
            name=name,
            value=value,
            threshold=threshold,
            bound=bound,
            passed=value <= threshold if bound == "max" else value >= threshold,
        )
        for name, value, threshold, bound in checks
    )


def _counts(path: Path | None) -> dict[tuple[int, int], int]:
    if path is None:
        return {}
    counts: ExpertCounts = Artifact.load(path).counts
    return {
        (layer, e): int(counts.counts[i, e])
        for i, layer in enumerate(counts.layers)
        for e in range(counts.experts)
    }


def run_fidelity(
    req: FidelityRequest,
    recipe: Recipe,
    *,
    progress: Progress = lambda *_: None,
    log: Log = lambda _: None,
) -> FidelityRecord:
    start = time.perf_counter()
    req.check(recipe)
    samples, text = build_text(req, recipe)
    source, candidate = Checkpoint(req.source), Checkpoint(req.checkpoint)
    log(est.estimate(source.config, [len(s) for s in samples], req.device).render())
    counts = _counts(req.coverage)
    m = measure(source, candidate, samples, device=req.device, progress=progress)
    kl = KLStats(**distribution(m.kl.numpy()).__dict__)
    top1 = float(m.agree.double().mean())
    experts = [
        ExpertError(
            layer=layer,
            expert=e,
            relative_error=err,
            calibration_tokens=counts.get((layer, e)) if counts else None,
        )
        for layer, errs in m.expert_errors.items()
        for e, err in enumerate(errs)
    ]
    experts.sort(key=lambda x: (-x.relative_error, x.layer, x.expert))
    budget = req.budget(recipe)
    record = FidelityRecord(
        glm51_version=glm51.__version__,
        source=str(req.source),
        checkpoint=str(req.checkpoint),
        text=text,
        sequences=len(samples),
        positions=int(m.kl.shape[0]),
        tokens_per_sequence=budget.tokens_per_sequence,
        seed=budget.seed,
        kl=kl,
        kl_percentiles=tuple(float(v) for v in np.percentile(m.kl.numpy(), np.arange(101))),
        top1_agreement=top1,
        layers=tuple(
            LayerError(
                layer=x.layer,
                moe=x.moe,
                relative_error=x.relative_error,
                cosine=x.cosine,
                local_relative_error=x.local_relative_error,
            )
            for x in m.layers
        ),
        nvfp4_layers=len(m.expert_errors),
        expert_errors={str(k): tuple(v) for k, v in m.expert_errors.items()},
        worst_experts=tuple(experts[: req.worst_experts]),
        gate_set=req.gate_set,
        gates=gates(kl, top1, req.thresholds(recipe)),
        device=req.device,
        device_name=device_name(req.device),
        tools=ToolVersions(**tool_versions()),
        seconds=round(time.perf_counter() - start, 3),
    )
    out = claim_output_folder(req.out_dir, option="--out", command="fidelity", inputs=req.inputs())
    write_record(record, out / FILES[0])
    write_text(out / FILES[1], markdown(record))
    plot(record, out / FILES[2])
    log(f"glm51 fidelity: wrote {out}/{', '.join(FILES)}")
    return record


def raise_for(record: FidelityRecord) -> None:
    missed = [g for g in record.gates if not g.passed]
    if missed:
        said = "; ".join(
            f"{g.name} {g.value:.6g} {'>' if g.bound == 'max' else '<'} {g.threshold:g}"
            for g in missed
        )
        raise GateFailed(f"{len(missed)} fidelity gate(s) missed: {said}")
