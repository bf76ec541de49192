"""The recipe parses into frozen objects, and every kind of mistake names file and key."""

import re

import pydantic
import pytest

from glm51.errors import InputError
from glm51.recipe.docs import render_schema_markdown
from glm51.recipe.load import parse_recipe
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
    assert b12x and {p.server.moe_runner_backend for p in b12x} == {"b12x"}
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
        (
            ("prometheus_port = 29000", "prometheus_port = 8000"),
            "deploy.router: port and prometheus_port are both 8000",
        ),
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
    from glm51.recipe.load import parse_recipe

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


# --- cross-references and lookups, exactly (docs/testing.md, mutation testing) ---

PROFILES = (
    "['rtx-pro-6000-x4-2node', 'rtx-pro-6000-x8', 'rtx-pro-6000-x8-b12x', "
    "'rtx-pro-6000-x8-upstream']"
)
BUILDS = "['blackwell-fork', 'upstream']"


def bad(recipe_text, *edits):
    for old, new in edits:
        assert old in recipe_text, old
        recipe_text = recipe_text.replace(old, new, 1)
    with pytest.raises(InputError) as info:
        parse_recipe(recipe_text, "r.toml")
    message = str(info.value)
    assert message.startswith("r.toml: invalid recipe\n  ")
    return [line.strip() for line in message.splitlines()[1:]]


def test_every_cross_reference_problem_is_listed_in_order(recipe_text):
    lines = bad(
        recipe_text,
        ('default_profile = "rtx-pro-6000-x8"', 'default_profile = "a"'),
        ('[gates]\nprofile = "rtx-pro-6000-x8"', '[gates]\nprofile = "b"'),
        ('fp4_gemm_backend = "b12x"', 'fp4_gemm_backend = "marlin"'),
        ('attention_backend = "flashinfer"', 'attention_backend = "fa4"'),
        ("gpu_count = 8", "gpu_count = 4"),
    )
    assert lines == [
        f"serve.default_profile: expected one of {PROFILES}",
        f"gates.profile: expected one of {PROFILES}",
        "profiles.rtx-pro-6000-x8.server.fp4_gemm_backend: 'marlin' is not a backend of sglang "
        "build 'blackwell-fork'; expected one of "
        "['auto', 'b12x', 'flashinfer_cudnn', 'flashinfer_cutlass', 'flashinfer_trtllm']",
        "profiles.rtx-pro-6000-x8.server.attention_backend: 'fa4' is not a backend of sglang "
        "build 'blackwell-fork'; expected one of "
        "['triton', 'flashinfer', 'dsa', 'nsa', 'fa3', 'flashmla', 'trtllm_mla']",
        "profiles.rtx-pro-6000-x8.server.tp: tp 8 needs at least that many GPUs; "
        "hardware.gpu_count is 4",
    ]


def test_an_unknown_build_skips_that_profiles_backend_checks(recipe_text):
    lines = bad(
        recipe_text,
        ('sglang_build = "blackwell-fork"', 'sglang_build = "vllm"'),
        ("[images.cu130.profiles]\n", "[images.cu130.profiles]\nnightly = []\n"),
    )
    assert lines == [
        f"profiles.rtx-pro-6000-x8.sglang_build: 'vllm' is not a build; expected one of {BUILDS}",
        "images.cu130.profiles.nightly: expected one of " + BUILDS,
        "images.cu130.profiles.blackwell-fork: 'rtx-pro-6000-x8' needs sglang build 'vllm'",
    ]


def test_tp_may_equal_the_gpu_count(recipe_text, recipe):
    _, profile = recipe.profile()
    assert profile.server.tp == profile.hardware.gpu_count == 8  # the recipe itself loads
    lines = bad(recipe_text, ("tp = 8", "tp = 9"))
    assert lines[0].endswith("tp 9 needs at least that many GPUs; hardware.gpu_count is 8")


def test_lookups_by_name(recipe):
    assert recipe.profile()[0] == recipe.serve.default_profile
    assert recipe.profile("rtx-pro-6000-x8-upstream")[0] == "rtx-pro-6000-x8-upstream"
    with pytest.raises(InputError) as info:
        recipe.profile("nope")
    assert str(info.value) == f"unknown profile 'nope'; expected one of {PROFILES}"
    assert recipe.image() == ("cu130", recipe.images["cu130"])
    assert recipe.image("cu130")[0] == "cu130"
    with pytest.raises(InputError) as info:
        recipe.image("cu999")
    assert str(info.value) == "unknown image 'cu999'; expected one of ['cu130']"


def test_pass_manifests_resolve_beside_the_recipe(recipe, recipe_text, tmp_path, monkeypatch):
    first = recipe.quantize.passes[0]
    assert recipe.source == REPO / "release" / "glm51.toml"
    assert recipe.pass_manifest(first.name) == REPO / "release" / first.manifest
    names = ", ".join(p.name for p in recipe.quantize.passes)
    with pytest.raises(InputError) as info:
        recipe.pass_manifest("nope")
    assert str(info.value) == f"{recipe.source}: no calibration pass 'nope' (passes: {names})"
    from glm51.recipe.schema import Recipe

    unlocated = Recipe.model_validate(recipe.model_dump())
    monkeypatch.chdir(tmp_path)
    assert unlocated.source is None
    assert unlocated.pass_manifest(first.name) == tmp_path / first.manifest
    with pytest.raises(InputError, match=r"^<recipe>: no calibration pass 'x'"):
        unlocated.pass_manifest("x")
    assert unlocated.located(tmp_path / "r.toml") is unlocated
    assert unlocated.source == tmp_path / "r.toml"


def test_describe_each_kind_of_error(recipe_text):
    lines = bad(
        recipe_text,
        ("tp = 8", 'tp = "eight"'),
        ("[gates]", "[gates]\nthroughput = 1"),
        ('published = "lukealonso/GLM-5.1-NVFP4"\n', ""),
        ('model_type = "glm_moe_dsa"', "model_type = 3"),
    )
    assert lines == [
        "model.published: missing required key",
        "model.model_type: expected input should be 'glm_moe_dsa' (got 3)",
        "profiles.rtx-pro-6000-x8.server.tp: expected input should be a valid integer, "
        "unable to parse string as an integer (got 'eight')",
        "gates.throughput: unknown key",
    ]


def test_a_dict_value_is_not_echoed(recipe_text):
    lines = bad(recipe_text, ('served_name = "GLM-5.1"', "served_name = { a = 1 }"))
    assert lines == ["model.served_name: expected input should be a valid string"]


def test_load_toml_names_an_unreadable_file(tmp_path):
    from glm51.recipe.load import load_recipe

    with pytest.raises(InputError) as info:
        load_recipe(tmp_path / "missing.toml")
    assert str(info.value) == (
        f"{tmp_path / 'missing.toml'}: cannot read the recipe (No such file or directory)"
    )


def test_not_valid_toml_names_the_file(recipe_text):
    with pytest.raises(InputError, match=r"^r\.toml: not valid TOML: "):
        parse_recipe("schema_version = [", "r.toml")


def test_describe_one_error_dict():
    from glm51.recipe.toml_model import CrossReferenceError, describe

    value = {"type": "value_error", "msg": "Value error, needs a sha", "input": "x"}
    assert describe({**value, "loc": ("a", "function-after[check()]", "b")}) == "a.b: needs a sha"
    assert describe({**value, "loc": ()}) == "needs a sha"
    assert (
        describe({**value, "loc": ("a",), "msg": "a Value error, kept"}) == "a: a Value error, kept"
    )
    cross = CrossReferenceError([("x.y", "bad"), ("z", "worse")])
    assert str(cross) == "x.y: bad; z: worse"
    assert describe({"type": "value_error", "loc": (), "msg": "m", "ctx": {"error": cross}}) == (
        "x.y: bad\nz: worse"
    )
    typed = {
        "type": "int_parsing",
        "loc": ("n",),
        "msg": "Input should be an integer",
        "input": "q",
    }
    assert describe(typed) == "n: expected input should be an integer (got 'q')"
    assert describe({**typed, "input": {"a": 1}}) == "n: expected input should be an integer"


def test_load_toml_reads_and_names_the_file(tmp_path, recipe_text):
    from glm51.recipe.schema import Recipe
    from glm51.recipe.toml_model import load_toml

    good = tmp_path / "r.toml"
    good.write_text(recipe_text, encoding="utf-8")
    assert load_toml(good, Recipe, "recipe") == load_toml(str(good), Recipe, "recipe")
    assert load_toml(good, Recipe, "recipe").model.published == "lukealonso/GLM-5.1-NVFP4"
    good.write_text(recipe_text.replace("tp = 8", "tp = 9", 1), encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_toml(good, Recipe, "what it is")
    assert str(info.value).startswith(f"{good}: invalid what it is\n  profiles.")
    good.write_text("x = [", encoding="utf-8")
    with pytest.raises(InputError, match=rf"^{re.escape(str(good))}: not valid TOML: "):
        load_toml(good, Recipe, "recipe")
    good.write_bytes('schema_version = 1\n[model]\nsource = "é/x"\n'.encode())
    with pytest.raises(InputError) as info:
        load_toml(good, Recipe, "recipe")
    assert "invalid recipe" in str(info.value)  # read as UTF-8: it gets as far as validation
