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


# --- exact findings, orderings and selections (docs/testing.md, mutation testing) ---


def server(profile, **changes):
    return profile.model_copy(update={"server": profile.server.model_copy(update=changes)})


def test_enforce_messages_say_why(profile):
    given = ("--enforce-shared-experts-fusion",)
    excluded = ids(flags.check(profile, EXCLUDED, given, gpu_count=8))
    finding = excluded["flags.enforce-shared-experts-fusion"]
    assert finding.message == (
        "pass-through --enforce-shared-experts-fusion is refused: the checkpoint keeps the "
        "shared experts in BF16 (excluded from quantization), so they cannot be fused into the "
        "NVFP4 MoE"
    )
    assert finding.fix == "drop --enforce-shared-experts-fusion from the flags after --"
    found = ids(flags.check(profile, QUANTIZED, given, gpu_count=8))
    assert found["flags.enforce-shared-experts-fusion"].message.endswith(
        "refused: the profile disables shared-experts fusion"
    )
    fused = server(profile, disable_shared_experts_fusion=False)
    found = ids(flags.check(fused, QUANTIZED, given, gpu_count=8))
    assert found["flags.enforce-shared-experts-fusion"].message.endswith(
        "refused: the validated configuration does not fuse the shared experts"
    )


def test_shared_experts_fusion_finding_names_the_patterns(profile):
    fused = server(profile, disable_shared_experts_fusion=False)
    finding = ids(flags.check(fused, EXCLUDED, (), gpu_count=8))["flags.shared-experts-fusion"]
    assert finding.severity is Severity.ERROR
    assert finding.message == (
        "the checkpoint excludes the shared experts from quantization (*shared_experts*) "
        "but --disable-shared-experts-fusion is not set"
    )
    assert finding.fix == (
        "set disable_shared_experts_fusion = true in the profile, "
        "or pass -- --disable-shared-experts-fusion"
    )


def test_quantization_matching_the_profile_passes(profile):
    assert flags.check(profile, EXCLUDED, ("--quantization", "modelopt_fp4"), gpu_count=8) == []
    found = ids(flags.check(profile, EXCLUDED, ("--quantization",), gpu_count=8))
    finding = found["flags.quantization"]
    assert finding.severity is Severity.ERROR
    assert finding.message == (
        "pass-through --quantization None contradicts the checkpoint and profile "
        "(modelopt_fp4: ModelOpt NVFP4 weights)"
    )
    assert finding.fix == "drop --quantization from the flags after --"


@pytest.mark.parametrize(
    ("given", "gpu_count", "severity"),
    [
        (("--tp", "8"), 8, None),  # the profile's tp on exactly enough GPUs
        (("--tp", "9"), 8, Severity.ERROR),
        (("--tp", "16"), None, Severity.WARNING),  # GPUs unknown: only differs from the profile
        (("--tensor-parallel-size", "4"), 8, Severity.WARNING),
        (("--tp", "x"), 8, None),  # not a number: the profile's tp stands
    ],
)
def test_tp_boundaries(profile, given, gpu_count, severity):
    found = ids(flags.check(profile, EXCLUDED, given, gpu_count=gpu_count))
    assert (found["flags.tp"].severity if "flags.tp" in found else None) is severity


def test_tp_messages(profile):
    error = ids(flags.check(profile, EXCLUDED, ("--tp", "9"), gpu_count=8))["flags.tp"]
    assert error.message == "pass-through tensor parallel size 9 is more than the 8 GPUs found"
    assert error.fix == "use --tp 8 or fewer, or run where 9 GPUs are visible"
    warning = ids(flags.check(profile, EXCLUDED, ("--tp", "4"), gpu_count=8))["flags.tp"]
    assert warning.message == (
        "pass-through tensor parallel size 4 differs from the profile's 8: "
        "each GPU holds a different share of the weights"
    )
    assert warning.fix == "expect other memory use and speed than the profile's"


def test_every_model_flag_and_address_flag_is_reported(profile):
    given = ("--model", "/a", "--model-path", "/b", "--host", "0.0.0.0", "--port", "1")
    found = flags.check(profile, EXCLUDED, given, gpu_count=8)
    assert [(f.check, f.severity) for f in found] == [
        ("flags.model-path", Severity.ERROR),
        ("flags.model-path", Severity.ERROR),
        ("flags.host-port", Severity.WARNING),
        ("flags.host-port", Severity.WARNING),
    ]
    assert (
        found[0].message == "pass-through --model-path would replace the checkpoint glm51 checked"
    )
    assert found[1].message == "pass-through --model would replace the checkpoint glm51 checked"
    assert found[0].fix == "give the checkpoint with glm51's own --model PATH (or --model-id)"
    assert found[2].message == (
        "pass-through --host overrides the address glm51 reports and --wait-ready polls"
    )
    assert found[3].fix == "use glm51 serve's own --port instead"


def test_overrides_in_flag_order_and_only_when_different(profile):
    given = (
        "--moe-runner-backend",
        "triton",
        "--mem-fraction-static",
        "0.85",  # the profile's value: not an override
        "--kv-cache-dtype",
        "fp8_e4m3",
        "--enable-metrics",  # not a profile setting
    )
    found = flags.check(profile, EXCLUDED, given, gpu_count=8)
    assert [f.check for f in found] == ["flags.override", "flags.override"]
    assert found[0].severity is Severity.WARNING
    assert found[0].message == (
        "pass-through --kv-cache-dtype fp8_e4m3 overrides the profile's --kv-cache-dtype bf16: "
        "this is no longer the validated configuration"
    )
    assert found[1].message.startswith("pass-through --moe-runner-backend triton overrides")
    assert found[0].fix == "use another profile, or accept serving an unvalidated configuration"


def test_a_switch_given_a_value_overrides(profile):
    found = flags.check(profile, EXCLUDED, ("--trust-remote-code", "x"), gpu_count=8)
    assert [f.message for f in found] == [
        "pass-through --trust-remote-code x overrides the profile's --trust-remote-code : "
        "this is no longer the validated configuration"
    ]


def facts(*exclude):
    quant = QuantConfig("config.json quantization_config", "modelopt", "NVFP4", 16, exclude)
    return CheckpointFacts({"first_k_dense_replace": 3}, quant)


@pytest.mark.parametrize(
    ("exclude", "named"),
    [
        (
            ("*shared_experts.gate_proj*", "*shared_experts.up_proj*", "lm_head"),
            "*shared_experts.gate_proj*, *shared_experts.up_proj*",
        ),
        (("model.layers.*.mlp.*",), "exclude list"),  # a glob that only matches them
    ],
)
def test_shared_experts_fusion_names_the_excluding_patterns(profile, exclude, named):
    fused = server(profile, disable_shared_experts_fusion=False)
    finding = ids(flags.check(fused, facts(*exclude), (), gpu_count=8))
    assert finding["flags.shared-experts-fusion"].message.startswith(
        f"the checkpoint excludes the shared experts from quantization ({named}) but"
    )


def test_handled_flags_are_not_also_overrides(profile):
    addressed = server(profile, extra_args=("--host", "127.0.0.1", "--port", "7"))
    given = ("--quantization", "fp8", "--host", "0.0.0.0", "--port", "8")
    found = flags.check(addressed, EXCLUDED, given, gpu_count=8)
    assert [f.check for f in found] == ["flags.quantization", "flags.host-port", "flags.host-port"]


def test_no_tp_flag_leaves_the_gpu_count_to_the_gpu_checks(profile):
    assert flags.check(profile, EXCLUDED, (), gpu_count=4) == []


def test_a_value_given_as_a_switch_overrides(profile):
    found = flags.check(profile, EXCLUDED, ("--kv-cache-dtype",), gpu_count=8)
    assert [f.message for f in found] == [
        "pass-through --kv-cache-dtype  overrides the profile's --kv-cache-dtype bf16: "
        "this is no longer the validated configuration"
    ]
