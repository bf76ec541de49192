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
