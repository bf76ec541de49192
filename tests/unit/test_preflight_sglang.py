"""Installed SGLang: its --help choices (recorded) against the profile's flags."""

import sys

import pytest

from glm51.preflight import sglang_support
from glm51.preflight.findings import Severity
from glm51.sglang import help as installed
from tests.support.fakes import fake_env, sglang_help


def run(recipe, profile_name, help_name, passthrough=()):
    _, profile = recipe.profile(profile_name)
    build = recipe.sglang_builds[profile.sglang_build]
    found = sglang_support.check(
        profile, profile.sglang_build, build, passthrough, lambda: sglang_help(help_name)
    )
    return found


def test_parses_argparse_choice_lists():
    options = installed.parse_help(sglang_help("upstream-0.5.23"))
    assert options.choices["--fp4-gemm-backend"] == (
        "auto",
        "flashinfer_cudnn",
        "flashinfer_cutedsl",
        "flashinfer_cutlass",
        "flashinfer_trtllm",
        "marlin",
    )
    assert "glm45" in options.choices["--reasoning-parser"]
    assert "glm47" in options.choices["--tool-call-parser"]
    assert {"--tp-size", "--tensor-parallel-size", "--enforce-shared-experts-fusion"} <= (
        options.flags
    )
    assert options.resolve("--tp") == ("--tp-size", ["--tp-size"])
    assert "--help" not in options.choices


def test_b12x_profile_on_the_fork(recipe):
    assert run(recipe, "rtx-pro-6000-x8", "blackwell-fork") == []


def test_b12x_profile_on_upstream_names_the_build_it_needs(recipe):
    found = run(recipe, "rtx-pro-6000-x8", "upstream-0.5.23")
    choice = [f for f in found if f.check == "sglang.choice"]
    assert {f.message.split(" (")[0] for f in choice} == {
        "the installed sglang does not accept --fp4-gemm-backend b12x",
        "the installed sglang does not accept --moe-runner-backend b12x",
    }
    assert all(f.severity is Severity.ERROR for f in choice)
    assert "'blackwell-fork'" in choice[0].fix and "260194aafb4f90b9" in choice[0].fix


def test_upstream_profile_runs_on_upstream_0_5_23(recipe):
    assert run(recipe, "rtx-pro-6000-x8-upstream", "upstream-0.5.23") == []


def test_b12x_profile_on_upstream_with_the_plugin_passes(recipe):
    assert run(recipe, "rtx-pro-6000-x8-b12x", "upstream-0.5.23-b12x") == []


def test_b12x_profile_on_upstream_without_the_plugin_names_the_plugin(recipe):
    found = run(recipe, "rtx-pro-6000-x8-b12x", "upstream-0.5.23")
    choice = [f for f in found if f.check == "sglang.choice"]
    assert len(choice) == 2 and all(f.severity is Severity.ERROR for f in choice)
    assert "pip install sglang==0.5.23" in choice[0].fix
    assert "pip install ./plugins/glm51-sglang-b12x" in choice[0].fix


def test_a_flag_upstream_split_in_two_is_refused_as_ambiguous(recipe):
    # 0.5.23 split --cuda-graph-max-bs into -decode/-prefill: argparse refuses the prefix.
    found = run(recipe, "rtx-pro-6000-x8", "upstream-0.5.23")
    flag = [f for f in found if f.check == "sglang.flag"]
    assert len(flag) == 1 and "--cuda-graph-max-bs is ambiguous" in flag[0].message


def test_pass_through_values_are_checked_too(recipe):
    found = run(recipe, "rtx-pro-6000-x8", "blackwell-fork", ("--attention-backend", "nope"))
    assert "does not accept --attention-backend nope" in found[0].message
    found = run(recipe, "rtx-pro-6000-x8", "blackwell-fork", ("--no-such-flag",))
    assert "pass-through --no-such-flag is not a flag" in found[0].message


def test_sglang_not_importable_names_the_build(recipe):
    _, profile = recipe.profile("rtx-pro-6000-x8")

    def missing():
        raise installed.SglangMissing("No module named 'sglang'")

    found = sglang_support.check(
        profile, "blackwell-fork", recipe.sglang_builds["blackwell-fork"], (), missing
    )
    assert found[0].check == "sglang.missing"
    assert "install the profile's sglang build 'blackwell-fork'" in found[0].fix


def test_real_probe_runs_launch_server_help(monkeypatch, tmp_path):
    for name, value in fake_env(help_name="upstream-0.5.23").items():
        monkeypatch.setenv(name, value)
    text = installed.launch_server_help(sys.executable)
    assert "--moe-runner-backend {auto," in text
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with pytest.raises(installed.SglangMissing, match="No module named 'sglang'"):
        installed.launch_server_help(sys.executable)
