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


# --- exact findings (docs/testing.md, mutation testing) ---

FORK_HINT = (
    "install the profile's sglang build 'blackwell-fork': pip install "
    "'sglang @ git+https://github.com/voipmonitor/sglang.git@260194aafb4f90b948140acce4a83b925fe78df3"
    "#subdirectory=python'"
)


def check_with(recipe, text, passthrough=(), profile_name="rtx-pro-6000-x8"):
    _, profile = recipe.profile(profile_name)
    build = recipe.sglang_builds[profile.sglang_build]
    return sglang_support.check(profile, profile.sglang_build, build, passthrough, lambda: text)


def test_install_hints(recipe):
    assert installed.install_hint("blackwell-fork", recipe.sglang_builds["blackwell-fork"]) == (
        FORK_HINT
    )
    assert installed.install_hint("upstream", recipe.sglang_builds["upstream"]) == (
        "install the profile's sglang build 'upstream': pip install sglang==0.5.23, then its "
        "plugins from the glm51 repository: pip install ./plugins/glm51-sglang-b12x"
    )


def test_missing_sglang_exactly(recipe):
    _, profile = recipe.profile("rtx-pro-6000-x8")

    def missing():
        raise installed.SglangMissing("No module named 'sglang'")

    found = sglang_support.check(
        profile, "blackwell-fork", recipe.sglang_builds["blackwell-fork"], (), missing
    )
    assert [(f.check, f.severity) for f in found] == [("sglang.missing", Severity.ERROR)]
    assert found[0].message == "cannot read the installed sglang's flags: No module named 'sglang'"
    assert found[0].fix == FORK_HINT


def test_help_without_options_exactly(recipe):
    found = check_with(recipe, "usage: launch_server\n\nnothing here\n")
    assert [(f.check, f.severity) for f in found] == [("sglang.help", Severity.ERROR)]
    assert found[0].message == "sglang's --help listed no options"
    assert found[0].fix == FORK_HINT


def test_ambiguous_and_unknown_profile_flags_exactly(recipe):
    found = check_with(recipe, sglang_help("upstream-0.5.23"))
    flag = [f for f in found if f.check == "sglang.flag"]
    assert flag[0].severity is Severity.ERROR
    assert flag[0].message == (
        "the profile's --cuda-graph-max-bs is ambiguous: it could be --cuda-graph-max-bs-decode, "
        "--cuda-graph-max-bs-prefill of the installed sglang (it would refuse to start)"
    )
    assert flag[0].fix == (
        f"{FORK_HINT} (or, if this is that build, rename --cuda-graph-max-bs in the profile)"
    )
    text = sglang_help("blackwell-fork").replace("--kv-cache-dtype", "--kv-cache-type")
    found = [f for f in check_with(recipe, text) if f.check == "sglang.flag"]
    assert [f.message for f in found] == [
        "the profile's --kv-cache-dtype is not a flag of the installed sglang "
        "(it would refuse to start)"
    ]
    assert found[0].fix == FORK_HINT


def test_pass_through_flag_and_choice_exactly(recipe):
    found = check_with(recipe, sglang_help("blackwell-fork"), ("--no-such-flag",))
    assert [(f.check, f.severity) for f in found] == [("sglang.flag", Severity.ERROR)]
    assert found[0].message == (
        "pass-through --no-such-flag is not a flag of the installed sglang "
        "(it would refuse to start)"
    )
    assert found[0].fix == f"check `python -m sglang.launch_server --help`; {FORK_HINT}"
    found = check_with(recipe, sglang_help("blackwell-fork"), ("--attention-backend", "nope"))
    assert [(f.check, f.severity) for f in found] == [("sglang.choice", Severity.ERROR)]
    options = installed.parse_help(sglang_help("blackwell-fork"))
    choices = ", ".join(options.choices["--attention-backend"])
    assert found[0].message == (
        f"the installed sglang does not accept --attention-backend nope (its choices: {choices})"
    )
    assert found[0].fix == FORK_HINT


def test_a_prefix_pass_through_is_a_flag(recipe):
    assert check_with(recipe, sglang_help("blackwell-fork"), ("--mem-fraction", "0.8")) == []


def test_every_checked_choice_is_checked(recipe):
    # each CHECKED flag: a wrong value by pass-through gives its own finding, in CHECKED order
    options = installed.parse_help(sglang_help("blackwell-fork"))
    given = []
    for flag in installed.CHECKED:
        if flag in options.choices:
            given += [flag, "zzz"]
    found = check_with(recipe, sglang_help("blackwell-fork"), tuple(given))
    assert [f.message.split(" (")[0] for f in found] == [
        f"the installed sglang does not accept {flag} zzz"
        for flag in installed.CHECKED
        if flag in options.choices
    ]


def test_a_choice_of_a_flag_without_choices_or_value_is_not_judged(recipe):
    text = sglang_help("blackwell-fork")
    found = check_with(recipe, text, ("--trust-remote-code",))
    assert found == []


def test_a_value_less_choice_is_skipped_and_the_later_ones_still_checked(recipe):
    text = sglang_help("blackwell-fork")
    assert check_with(recipe, text, ("--kv-cache-dtype",)) == []
    found = check_with(recipe, text, ("--fp4-gemm-backend", "--attention-backend", "zzz"))
    assert [f.message.split(" (")[0] for f in found] == [
        "the installed sglang does not accept --attention-backend zzz"
    ]
