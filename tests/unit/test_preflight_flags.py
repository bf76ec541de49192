"""Flag checks: the profile and pass-through flags against the checkpoint and the GPUs."""

import pytest

from glm51.checkpoint.quant_config import CheckpointFacts, QuantConfig
from glm51.preflight import flags
from glm51.preflight.findings import Severity
from glm51.sglang.flags import parse_passthrough

EXCLUDED = CheckpointFacts(
    {"first_k_dense_replace": 3},
    QuantConfig(
        "config.json quantization_config",
        "modelopt",
        "NVFP4",
        16,
        ("*self_attn*", "*shared_experts*", "lm_head"),
    ),
)
QUANTIZED = CheckpointFacts(
    {"first_k_dense_replace": 3},
    QuantConfig("hf_quant_config.json", "modelopt", "NVFP4", 16, ("lm_head",)),
)


@pytest.fixture
def profile(recipe):
    return recipe.profile("rtx-pro-6000-x8")[1]


def ids(found):
    return {f.check: f for f in found}


def test_parse_passthrough():
    assert parse_passthrough(["--tp", "4", "--quantization=fp8", "--enable-metrics"]) == {
        "--tp": "4",
        "--quantization": "fp8",
        "--enable-metrics": None,
    }


def test_the_profile_as_is_passes(profile):
    assert flags.check(profile, EXCLUDED, (), gpu_count=8) == []


def test_enforce_shared_experts_fusion_is_refused(profile):
    found = ids(flags.check(profile, EXCLUDED, ("--enforce-shared-experts-fusion",), gpu_count=8))
    finding = found["flags.enforce-shared-experts-fusion"]
    assert finding.severity is Severity.ERROR
    assert "shared experts in BF16" in finding.message
    assert "drop --enforce-shared-experts-fusion" in finding.fix
    # Refused even when the checkpoint quantized them: the profile disables fusion.
    found = ids(flags.check(profile, QUANTIZED, ("--enforce-shared-experts-fusion",), gpu_count=8))
    assert "profile disables" in found["flags.enforce-shared-experts-fusion"].message


def test_excluded_shared_experts_need_the_disable_flag(profile):
    server = profile.server.model_copy(update={"disable_shared_experts_fusion": False})
    fused = profile.model_copy(update={"server": server})
    finding = ids(flags.check(fused, EXCLUDED, (), gpu_count=8))["flags.shared-experts-fusion"]
    assert "*shared_experts*" in finding.message
    assert flags.check(fused, EXCLUDED, ("--disable-shared-experts-fusion",), gpu_count=8) == []
    assert flags.check(fused, QUANTIZED, (), gpu_count=8) == []


def test_other_quantization_is_refused(profile):
    found = ids(flags.check(profile, EXCLUDED, ("--quantization", "fp8"), gpu_count=8))
    assert "--quantization fp8 contradicts" in found["flags.quantization"].message


def test_tp_above_the_gpu_count_is_refused_and_below_the_profile_warned(profile):
    found = ids(flags.check(profile, EXCLUDED, ("--tp-size", "16"), gpu_count=8))
    assert found["flags.tp"].severity is Severity.ERROR
    found = ids(flags.check(profile, EXCLUDED, ("--tp=4",), gpu_count=8))
    assert found["flags.tp"].severity is Severity.WARNING


def test_model_path_host_and_overrides(profile):
    found = ids(
        flags.check(
            profile,
            EXCLUDED,
            ("--model-path", "/x", "--port", "1", "--moe-runner-backend", "triton"),
            gpu_count=8,
        )
    )
    assert found["flags.model-path"].severity is Severity.ERROR
    assert found["flags.host-port"].severity is Severity.WARNING
    assert "overrides the profile's --moe-runner-backend b12x" in found["flags.override"].message
