"""Flag checks: the profile and the pass-through flags against the checkpoint and GPUs (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from glm51.preflight.checkpoint import CheckpointFacts
from glm51.preflight.findings import Finding, Severity
from glm51.recipe.serving import Profile
from glm51.sglang.flags import (
    MODEL_FLAGS,
    TP_FLAGS,
    effective_tp,
    parse_passthrough,
    setting_flags,
)

ENFORCE = "--enforce-shared-experts-fusion"
DISABLE = "--disable-shared-experts-fusion"


def check(
    profile: Profile,
    facts: CheckpointFacts,
    passthrough: Sequence[str],
    *,
    gpu_count: int | None,
) -> list[Finding]:
    given = parse_passthrough(passthrough)
    found: list[Finding] = []
    excluded = facts.shared_experts_excluded()

    if ENFORCE in given:
        why = (
            "the checkpoint keeps the shared experts in BF16 (excluded from quantization), "
            "so they cannot be fused into the NVFP4 MoE"
            if excluded
            else "the profile disables shared-experts fusion"
            if profile.server.disable_shared_experts_fusion
            else "the validated configuration does not fuse the shared experts"
        )
        found.append(
            Finding(
                "flags.enforce-shared-experts-fusion",
                Severity.ERROR,
                f"pass-through {ENFORCE} is refused: {why}",
                f"drop {ENFORCE} from the flags after --",
            )
        )
    if excluded and not (profile.server.disable_shared_experts_fusion or DISABLE in given):
        patterns = [p for p in facts.quant.exclude if "shared" in p] if facts.quant else []
        found.append(
            Finding(
                "flags.shared-experts-fusion",
                Severity.ERROR,
                f"the checkpoint excludes the shared experts from quantization "
                f"({', '.join(patterns) or 'exclude list'}) but {DISABLE} is not set",
                f"set disable_shared_experts_fusion = true in the profile, or pass -- {DISABLE}",
            )
        )

    quant = given.get("--quantization")
    if "--quantization" in given and quant != profile.server.quantization:
        found.append(
            Finding(
                "flags.quantization",
                Severity.ERROR,
                f"pass-through --quantization {quant} contradicts the checkpoint and profile "
                f"({profile.server.quantization}: ModelOpt NVFP4 weights)",
                "drop --quantization from the flags after --",
            )
        )

    tp = effective_tp(profile, passthrough)
    if any(f in given for f in TP_FLAGS):
        if gpu_count is not None and tp > gpu_count:
            found.append(
                Finding(
                    "flags.tp",
                    Severity.ERROR,
                    f"pass-through tensor parallel size {tp} is more than the "
                    f"{gpu_count} GPUs found",
                    f"use --tp {gpu_count} or fewer, or run where {tp} GPUs are visible",
                )
            )
        elif tp != profile.server.tp:
            found.append(
                Finding(
                    "flags.tp",
                    Severity.WARNING,
                    f"pass-through tensor parallel size {tp} differs from the profile's "
                    f"{profile.server.tp}: each GPU holds a different share of the weights",
                    "expect other memory use and speed than the profile's",
                )
            )

    for flag in MODEL_FLAGS:
        if flag in given:
            found.append(
                Finding(
                    "flags.model-path",
                    Severity.ERROR,
                    f"pass-through {flag} would replace the checkpoint glm51 checked",
                    "give the checkpoint with glm51's own --model PATH (or --model-id)",
                )
            )
    for flag in ("--host", "--port"):
        if flag in given:
            found.append(
                Finding(
                    "flags.host-port",
                    Severity.WARNING,
                    f"pass-through {flag} overrides the address glm51 reports "
                    "and --wait-ready polls",
                    f"use glm51 serve's own {flag} instead",
                )
            )

    handled = {ENFORCE, DISABLE, "--quantization", "--host", "--port", *TP_FLAGS, *MODEL_FLAGS}
    rendered = setting_flags(profile.server)
    for flag in sorted(set(given) & set(rendered) - handled):
        if given[flag] != rendered[flag]:
            found.append(
                Finding(
                    "flags.override",
                    Severity.WARNING,
                    f"pass-through {flag} {given[flag] or ''} overrides the profile's "
                    f"{flag} {rendered[flag] or ''}: this is no longer the validated configuration",
                    "use another profile, or accept serving an unvalidated configuration",
                )
            )
    return found
