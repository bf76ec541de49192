"""The model card from the recipe and recorded stage records (tests/data/records)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from glm51.errors import InputError
from glm51.publish.card import Records, check_round_trip, launch_command, render_card
from glm51.records import BenchRecord, ImageRecord, QuantizeRecord, SmokeRecord, read_record
from glm51.sglang.command import render

DATA = Path(__file__).resolve().parents[1] / "data" / "records"


@pytest.fixture(scope="module")
def records() -> Records:
    return Records(
        image=read_record(DATA / "image.json", ImageRecord),
        quantize=read_record(DATA / "quantize.json", QuantizeRecord),
        smoke=read_record(DATA / "smoke.json", SmokeRecord),
        bench=read_record(DATA / "bench.json", BenchRecord),
    )


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_card_from_records(recipe, records):
    text = render_card(recipe, records, version="v1.2.3", plot="assets/throughput.png")
    meta = front_matter(text)
    assert meta["base_model"] == "zai-org/GLM-5.1" == recipe.model.source
    assert meta["base_model_relation"] == "quantized"
    assert meta["license"] and meta["pipeline_tag"] == "text-generation"
    assert meta["library_name"] and "nvfp4" in meta["tags"]
    # The throughput table: every figure of the bench record, with the hardware and the
    # accept length.
    assert "| Figure | Streams | Context | Decode tok/s | Gate |" in text
    for f in records.bench.figures:
        assert f"| {f.concurrency} | {f.context_tokens} | {f.tokens_per_s:.1f} | pass" in text
    assert "8x NVIDIA RTX PRO 6000 Blackwell" in text
    assert "accept length 3.12" in text
    assert "![Throughput](assets/throughput.png)" in text
    # The launch command is the one the serve profile renders, word for word.
    _, profile = recipe.profile(None)
    spec = render(recipe, profile, model_path=recipe.model.published, python="python3")
    assert f"```bash\n{spec.shell()}\n```" in text
    assert (
        "--moe-runner-backend b12x" in text
        and f"--served-model-name {recipe.model.served_name}" in text
    )
    # The image, with its digest; the calibration passes with their manifests and digests.
    assert f"`{records.image.tags[0]}` (`{records.image.digest}`)" in text
    for p in recipe.quantize.passes:
        assert f"`release/{p.manifest}`" in text
    assert "| coding |" in text and "`1111111111111111`" in text
    # Smoke results, with a `|` in a message escaped so the table holds.
    assert "3 passed, 0 failed, 1 skipped" in text
    assert "reasoning parser \\| test" in text
    assert "modelopt 0.47.0" in text and "v1.2.3" in text


def test_card_without_bench_says_so(recipe, records):
    text = render_card(recipe, Records(image=records.image))
    assert "No benchmark results were recorded for this card" in text
    assert "tok/s" not in text and "| Figure" not in text
    assert "No smoke results were recorded" in text
    assert records.image.digest in text


def test_card_yaml_round_trips_through_model_card_data(recipe, records):
    from huggingface_hub import ModelCard, ModelCardData

    text = render_card(recipe, records)
    card = ModelCard(text)
    again = ModelCard(f"---\n{ModelCardData(**card.data.to_dict()).to_yaml()}\n---\n{card.text}")
    assert again.data.to_dict() == card.data.to_dict() == front_matter(text)
    assert card.text.lstrip().startswith("# GLM-5.1-NVFP4")


def test_round_trip_check_catches_metadata_that_changes(recipe):
    # Unquoted, YAML reads the date back as a date, not the string that was meant.
    text = "---\nlicense: mit\nreleased: 2026-11-27\n---\n# x\n"
    with pytest.raises(InputError, match="does not round-trip"):
        check_round_trip(text, {"license": "mit", "released": "2026-11-27"})
    check_round_trip("---\nlicense: mit\n---\n# x\n", {"license": "mit"})


def test_template_errors_name_the_template(recipe, tmp_path):
    bad = tmp_path / "card.md.j2"
    bad.write_text("{{ nothing_here }}")
    with pytest.raises(InputError, match=r"card\.md\.j2: the card template failed"):
        render_card(recipe, template=bad)


def test_launch_command_follows_the_profile(recipe):
    name, line = launch_command(recipe, "rtx-pro-6000-x8-upstream")
    assert name == "rtx-pro-6000-x8-upstream"
    assert "--moe-runner-backend flashinfer_cutlass" in line
    assert "--cuda-graph-max-bs-decode 32" in line


def test_cli_card_writes_once(tmp_path):
    from typer.testing import CliRunner

    from glm51.cli import app

    out = tmp_path / "README.md"
    args = [
        "card",
        "-o",
        str(out),
        "--bench-record",
        str(DATA / "bench.json"),
        "--image-record",
        str(DATA / "image.json"),
    ]
    assert CliRunner().invoke(app, args).exit_code == 0
    assert "| Figure |" in out.read_text()
    result = CliRunner().invoke(app, args)
    assert result.exit_code == InputError.exit_code  # never written over: exit 3


# --- exact rendering choices (docs/testing.md, mutation testing) ---


def test_the_named_profile_is_the_cards(recipe, records):
    text = render_card(recipe, records, profile="rtx-pro-6000-x8-upstream")
    assert "Generated from the `rtx-pro-6000-x8-upstream` profile" in text
    assert launch_command(recipe, "rtx-pro-6000-x8-upstream")[1] in text
    assert "--moe-runner-backend b12x" not in text


def test_metadata_values_and_the_license_option(recipe):
    text = render_card(recipe, license="apache-2.0")
    meta = front_matter(text)
    assert meta["library_name"] == "transformers" and meta["license"] == "apache-2.0"
    assert meta["tags"] == ["nvfp4", "modelopt", "sglang", "glm", "moe", "quantized"]
    assert front_matter(render_card(recipe))["license"] == "mit"


def test_a_template_renders_verbatim_after_the_front_matter(recipe, tmp_path):
    template = tmp_path / "card.md.j2"
    template.write_text("\n\n# {{ title }} {{ '<b>&' }}\n\ntext\n")
    text = render_card(recipe, template=template)
    assert text.endswith("---\n\n# GLM-5.1-NVFP4 <b>&\n\ntext\n")  # no escaping, newline kept


def test_an_unreadable_template_is_named(recipe, tmp_path):
    with pytest.raises(InputError) as info:
        render_card(recipe, template=tmp_path / "missing.j2")
    assert str(info.value).startswith(f"{tmp_path / 'missing.j2'}: cannot read the card template (")


def test_the_template_is_found_beside_the_recipe(recipe, tmp_path):
    from glm51.publish.card import template_path

    elsewhere = recipe.model_copy().located(tmp_path / "r.toml")
    assert template_path(elsewhere) == tmp_path / "model-card.md.j2"
    assert recipe.source != elsewhere.source


def test_the_calibration_table_is_what_the_record_says_ran(recipe, records):
    """Every unit of the quantize record, chunks named by their pass; a pass the recipe does
    not have (the rehearsal's `local`) says so; without a record the plan is labelled a plan."""
    units = (
        {"name": "coding.1of2", "samples": 3, "tokens": 300, "digest": "a" * 64},
        {"name": "coding.2of2", "samples": 2, "tokens": 200, "digest": "b" * 64},
        {"name": "local", "samples": 4, "tokens": 99, "digest": "c" * 64},
    )
    ran = records.quantize.model_copy(
        update={"calibration": tuple(type(records.quantize.calibration[0])(**u) for u in units)}
    )
    text = render_card(recipe, Records(quantize=ran), version="v1.2.3")
    coding = next(p for p in recipe.quantize.passes if p.name == "coding")
    assert f"| coding.1of2 | {coding.description} (`release/{coding.manifest}`) | 3 | 300 |" in text
    assert f"| coding.2of2 | {coding.description}" in text
    assert "| local | not one of the recipe's passes | 4 | 99 | `cccccccccccccccc` |" in text
    assert "| broad |" not in text and "| deep |" not in text  # the plan is not what ran
    plan = render_card(recipe, Records(), version="v1.2.3")
    assert "No quantize record was given for this card" in plan
    assert all(f"| {p.name} | {p.description} |" in plan for p in recipe.quantize.passes)


def test_the_fidelity_section_comes_from_the_record(recipe, records):
    from glm51.records import FidelityRecord

    fidelity = read_record(DATA / "fidelity.json", FidelityRecord)
    with_it = Records(bench=records.bench, fidelity=fidelity)
    text = render_card(recipe, with_it, fidelity_plot="assets/fidelity.png")
    section = text.split("## Fidelity vs BF16")[1].split("## Smoke tests")[0]
    assert f"{fidelity.positions:,} positions" in section
    assert f"{fidelity.sequences} sequences" in section and fidelity.text.description in section
    assert f"| {fidelity.kl.mean:.4g} | {fidelity.kl.median:.4g} |" in section
    assert f"{fidelity.top1_agreement * 100:.2f}%" in section
    assert "kl_mean pass" in section and "![Fidelity vs BF16](assets/fidelity.png)" in section


def test_a_card_without_the_fidelity_record_says_so(recipe, records):
    text = render_card(recipe, records)
    section = text.split("## Fidelity vs BF16")[1].split("## Smoke tests")[0]
    assert "No fidelity record was given for this card" in section
    assert "KL mean" not in section and "positions" not in section
