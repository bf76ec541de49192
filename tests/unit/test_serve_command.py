"""`glm51 serve` renders the profile into the exact sglang command."""

import shlex

from glm51.sglang.command import render
from tests.support.flags import MODEL_CARD_FLAGS


def test_model_card_profile_renders_every_flag_in_order(recipe):
    _, profile = recipe.profile("rtx-pro-6000-x8")
    spec = render(recipe, profile, model_path="/models/GLM-5.1-NVFP4", python="python3")
    assert spec.argv[:5] == (
        "python3",
        "-m",
        "sglang.launch_server",
        "--model-path",
        "/models/GLM-5.1-NVFP4",
    )
    assert " ".join(spec.argv[5:]) == MODEL_CARD_FLAGS
    assert dict(spec.env) == {"OMP_NUM_THREADS": "16", "SGLANG_ENABLE_SPEC_V2": "True"}


def test_overrides_and_passthrough_go_where_sglang_reads_them(recipe):
    _, profile = recipe.profile("rtx-pro-6000-x8")
    spec = render(
        recipe,
        profile,
        model_path="/m",
        host="127.0.0.1",
        port=8001,
        passthrough=("--log-level", "debug"),
        python="python3",
    )
    argv = list(spec.argv)
    assert argv[-6:] == ["--host", "127.0.0.1", "--port", "8001", "--log-level", "debug"]
    assert "0.0.0.0" not in argv and "5000" not in argv


def test_shell_line_quotes_paths_with_spaces(recipe):
    _, profile = recipe.profile()
    spec = render(recipe, profile, model_path="/models/my model", python="python3")
    line = spec.shell()
    assert line.startswith("OMP_NUM_THREADS=16 SGLANG_ENABLE_SPEC_V2=True python3 -m")
    words = shlex.split(line)
    assert words[words.index("--model-path") + 1] == "/models/my model"


def test_upstream_profile_has_no_b12x(recipe):
    _, profile = recipe.profile("rtx-pro-6000-x8-upstream")
    argv = render(recipe, profile, model_path="/m").argv
    assert "b12x" not in argv
    assert argv[argv.index("--moe-runner-backend") + 1] == "flashinfer_cutlass"
