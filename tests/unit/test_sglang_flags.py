"""The one mapping from a profile's typed settings to SGLang flags (sglang/flags.py)."""

import pytest

from glm51.sglang.flags import (
    effective,
    effective_tp,
    parse_passthrough,
    server_flags,
    setting_flags,
)


def with_server(profile, **changes):
    return profile.model_copy(update={"server": profile.server.model_copy(update=changes)})


@pytest.mark.parametrize(
    ("tokens", "parsed"),
    [
        ((), {}),
        (("--a", "1", "--a", "2"), {"--a": "2"}),  # the last one wins, as in argparse
        (("--a=x=y",), {"--a": "x=y"}),
        (("--a=",), {"--a": ""}),
        (("--a", "--b"), {"--a": None, "--b": None}),
        (("--a",), {"--a": None}),  # a switch at the end
        (("pos", "--a", "1", "stray"), {"--a": "1"}),  # bare tokens are not flags
        (("-x", "1"), {}),
    ],
)
def test_parse_passthrough(tokens, parsed):
    assert parse_passthrough(list(tokens)) == parsed


def test_server_flags_order_switches_and_address(profile):
    argv = server_flags(profile.server, host="127.0.0.1", port=5001)
    assert argv[:6] == ["--reasoning-parser", "glm45", "--tool-call-parser", "glm47", "--tp", "8"]
    assert argv[6] == "--trust-remote-code" and argv[7] == "--quantization"
    assert argv[-4:] == ["--host", "127.0.0.1", "--port", "5001"]
    spec = argv.index("--speculative-algorithm")
    assert argv[spec : spec + 8] == [
        "--speculative-algorithm",
        "NEXTN",
        "--speculative-num-steps",
        "3",
        "--speculative-eagle-topk",
        "1",
        "--speculative-num-draft-tokens",
        "4",
    ]
    assert "--disable-shared-experts-fusion" in argv
    assert "--host" not in setting_flags(profile.server)


def test_false_and_unset_settings_are_not_rendered(profile):
    off = with_server(profile, disable_shared_experts_fusion=False, speculative=None)
    flags = setting_flags(off.server)
    assert "--disable-shared-experts-fusion" not in flags
    assert flags["--mem-fraction-static"] == "0.85"  # the settings after it still render
    assert not [f for f in flags if f.startswith("--speculative")]
    assert "--disable-shared-experts-fusion" not in server_flags(off.server, host="h", port=1)


def test_extra_args_come_verbatim_after_the_typed_flags_and_win(profile):
    extra = ("--kv-cache-dtype", "fp8_e4m3", "--enable-metrics")
    server = with_server(profile, extra_args=extra).server
    argv = server_flags(server, host="h", port=1)
    assert argv[-7:] == [*extra, "--host", "h", "--port", "1"]
    flags = setting_flags(server)
    assert flags["--kv-cache-dtype"] == "fp8_e4m3" and flags["--enable-metrics"] is None
    assert list(flags)[-1] == "--enable-metrics"


def test_effective_value_a_passthrough_wins(profile):
    assert effective(profile, (), "--kv-cache-dtype") == "bf16"
    assert effective(profile, ("--kv-cache-dtype", "fp8"), "--kv-cache-dtype") == "fp8"
    assert effective(profile, ("--trust-remote-code",), "--trust-remote-code") is None
    assert effective(profile, (), "--not-a-flag") is None


@pytest.mark.parametrize(
    ("given", "tp"),
    [
        ((), 8),
        (("--tp", "4"), 4),
        (("--tp-size", "2"), 2),
        (("--tensor-parallel-size", "16"), 16),
        (("--tp-size", "2", "--tp", "4"), 4),  # --tp is read first
        (("--tp", "four"), 8),
        (("--tp",), 8),
    ],
)
def test_effective_tp(profile, given, tp):
    assert effective_tp(profile, given) == tp
