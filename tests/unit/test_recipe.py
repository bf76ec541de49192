"""The recipe parses into frozen objects, and every kind of mistake names file and key."""

import re

import pydantic
import pytest

from glm51.errors import InputError
from glm51.recipe import parse_recipe
from glm51.recipe.docs import render_schema_markdown
from tests.conftest import REPO

UPSTREAM_IMAGE_PROFILES = 'upstream = ["rtx-pro-6000-x8-upstream", "rtx-pro-6000-x8-b12x"]'


def test_recipe_loads_with_the_model_card_profile(recipe):
    name, profile = recipe.profile()
    assert name == "rtx-pro-6000-x8"
    assert profile.validated and profile.uses_b12x
    assert profile.hardware.compute_capability == "12.0"
    assert recipe.model.published == "lukealonso/GLM-5.1-NVFP4"
    assert recipe.sglang_builds[profile.sglang_build].source == "git"


def test_recipe_has_an_upstream_profile_marked_unvalidated(recipe):
    upstream = [
        p for p in recipe.profiles.values() if recipe.sglang_builds[p.sglang_build].source == "pypi"
    ]
    assert upstream and not any(p.validated for p in upstream)
    # On PyPI's sglang, b12x comes only from the plugin: every such profile's build carries it.
    b12x = [p for p in upstream if p.uses_b12x]
    assert [p.server.moe_runner_backend for p in b12x] == ["b12x"]
    assert all("glm51-sglang-b12x" in recipe.sglang_builds[p.sglang_build].plugins for p in b12x)


def test_b12x_profile_carries_the_model_cards_flags_on_the_upstream_build(recipe):
    _, card = recipe.profile("rtx-pro-6000-x8")
    _, b12x = recipe.profile("rtx-pro-6000-x8-b12x")
    assert b12x.sglang_build == "upstream" and not b12x.validated
    differ = {k for k, v in b12x.server.model_dump().items() if v != card.server.model_dump()[k]}
    # 0.5.23 split --cuda-graph-max-bs: the same 32, under the name upstream accepts.
    assert differ == {"cuda_graph_max_bs", "cuda_graph_max_bs_decode"}
    assert card.server.cuda_graph_max_bs == b12x.server.cuda_graph_max_bs_decode == 32
    assert b12x.env == card.env and b12x.hardware == card.hardware
    assert "rtx-pro-6000-x8-b12x" in recipe.images["cu130"].profiles["upstream"]


def test_recipe_objects_are_frozen(recipe):
    with pytest.raises(pydantic.ValidationError):
        recipe.model.served_name = "other"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ('moe_runner_backend = "b12x"', 'moe_runner_backend = "b13x"'),
            "profiles.rtx-pro-6000-x8.server.moe_runner_backend: 'b13x' is not a backend",
        ),
        (("tp = 8", 'tp = "eight"'), "profiles.rtx-pro-6000-x8.server.tp: expected"),
        (("[gates]", "[gates]\nthroughput = 1"), "gates.throughput: unknown key"),
        (
            ('default_profile = "rtx-pro-6000-x8"', 'default_profile = "nope"'),
            "serve.default_profile: expected one of",
        ),
        (('sglang_build = "upstream"', 'sglang_build = "vllm"'), "'vllm' is not a build"),
        (('published = "lukealonso/GLM-5.1-NVFP4"\n', ""), "model.published: missing"),
        (("gpu_count = 8", "gpu_count = 4"), "tp 8 needs at least that many GPUs"),
        (
            ('commit = "260194aafb4f90b948140acce4a83b925fe78df3"', 'commit = "blackwell-cu130"'),
            "a full 40-hex sha",
        ),
        (("schema_version = 1", "schema_version = ["), "not valid TOML"),
    ],
)
def test_bad_recipe_names_file_key_and_expectation(recipe_text, edit, expected):
    old, new = edit
    assert old in recipe_text
    with pytest.raises(InputError) as info:
        parse_recipe(recipe_text.replace(old, new, 1), "release/glm51.toml")
    message = str(info.value)
    assert message.startswith("release/glm51.toml:")
    assert expected in message
    assert InputError.exit_code == 3


def test_recipe_reference_in_docs_is_current():
    committed = (REPO / "docs" / "recipe.md").read_text()
    assert committed == render_schema_markdown(), "run: glm51 recipe schema -o docs/recipe.md"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ('default_sglang_build = "upstream"', 'default_sglang_build = "nightly"'),
            "images.cu130.default_sglang_build: expected one of",
        ),
        (
            (UPSTREAM_IMAGE_PROFILES, 'upstream = ["no-such-profile"]'),
            "'no-such-profile': no such profile",
        ),
        (
            (UPSTREAM_IMAGE_PROFILES, 'upstream = ["rtx-pro-6000-x8"]'),
            "'rtx-pro-6000-x8' needs sglang build 'blackwell-fork'",
        ),
        (
            ('slim_tags = ["glm51:{version}-cu130-slim"]', 'slim_tags = ["glm51:{branch}"]'),
            "only the fields",
        ),
    ],
)
def test_image_section_cross_checks(recipe_text, edit, expected):
    from glm51.errors import InputError
    from glm51.recipe import parse_recipe

    old, new = edit
    assert old in recipe_text
    with pytest.raises(InputError, match=re.escape(expected)):
        parse_recipe(recipe_text.replace(old, new))


def test_cli_reference_in_docs_is_current():
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "typer",
            "glm51.cli",
            "utils",
            "docs",
            "--name",
            "glm51",
            "--title",
            "glm51 command reference",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    committed = (REPO / "docs" / "cli.md").read_text()
    assert committed.strip() == done.stdout.strip(), "run: nox -s docs"
