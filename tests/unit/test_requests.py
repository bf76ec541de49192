"""verify's, card's and publish's requests: each refusal names its option, before any work
(nothing is read, rendered, hashed or written); the card's plot lands where it links."""

from __future__ import annotations

from pathlib import Path

import pytest

from glm51.checkpoint.verify.stage import VerifyRequest, raise_for, run_verify
from glm51.errors import InputError
from glm51.outputs import mark
from glm51.publish.request import CardRequest, PublishRequest, RunRecords
from glm51.publish.stage import run_card

DATA = Path(__file__).resolve().parents[1] / "data" / "records"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "ckpt").mkdir()
    return tmp_path / "ckpt"


def test_the_fidelity_plot_goes_beside_the_card_with_the_bench_plot(tmp_path, recipe):
    plots = {name: tmp_path / "run" / name / f"{name}.png" for name in ("bench", "fidelity")}
    for name, path in plots.items():
        path.parent.mkdir(parents=True)
        path.write_bytes(name.encode())
    records = RunRecords(
        bench_record=DATA / "bench.json",
        plot=plots["bench"],
        fidelity_record=DATA / "fidelity.json",
        fidelity_plot=plots["fidelity"],
    )
    (tmp_path / "card").mkdir()
    text = run_card(CardRequest(records=records, output=tmp_path / "card" / "README.md"), recipe)
    assert "## Fidelity vs BF16" in text and "![Fidelity vs BF16](assets/fidelity.png)" in text
    for name in plots:
        assert (tmp_path / "card" / "assets" / f"{name}.png").read_bytes() == name.encode()
    clash = RunRecords(plot=plots["bench"], fidelity_plot=tmp_path / "bench.png")
    clash.fidelity_plot.write_bytes(b"other")
    with pytest.raises(InputError, match=r"^--plot and --fidelity-plot: the same file name"):
        CardRequest(records=clash).check()


@pytest.mark.parametrize(
    ("fields", "refusal"),
    [
        ({"experts": 0}, "--experts 0: expected at least 1"),
        ({"max_error": 10.5}, "--max-error 10.5: expected 0 to 10"),
        ({"max_error": -0.1}, "--max-error -0.1: expected 0 to 10"),
        ({"threads": 0}, "--threads 0: expected at least 1"),
        ({"write": True, "hash_contents": False}, "--write needs the hashes: drop --no-hash"),
        ({"source": Path("/nonexistent-bf16")}, "--source /nonexistent-bf16: not a folder"),
        ({"checkpoint": Path("/nonexistent")}, "/nonexistent: not a checkpoint folder"),
    ],
)
def test_verify_refusals_name_their_option(folder, fields, refusal):
    with pytest.raises(InputError) as err:
        VerifyRequest(**{"checkpoint": folder, **fields}).check()
    assert str(err.value) == refusal


def test_verify_report_inside_the_checkpoint_is_refused_before_any_check(folder, recipe):
    req = VerifyRequest(checkpoint=folder, report=folder / "verify.json")
    with pytest.raises(InputError, match=r"^--report .* is inside CHECKPOINT"):
        run_verify(req, recipe)
    assert list(folder.iterdir()) == []


def test_verify_writes_its_report_then_raises_for_the_first_problem(folder, recipe, tmp_path):
    report = tmp_path / "verify.json"
    result = run_verify(VerifyRequest(checkpoint=folder, report=report), recipe)
    assert not result.ok and report.is_file()
    with pytest.raises(InputError, match=rf"^{folder}: verify failed: config.json: missing"):
        raise_for(result)


def test_card_refusals_name_their_option(tmp_path):
    with pytest.raises(InputError, match=r"^--version '1\.0': expected vMAJOR"):
        CardRequest(version="1.0").check()
    records = RunRecords(bench_record=tmp_path / "bench.json")
    with pytest.raises(InputError, match=rf"^--bench-record {tmp_path / 'bench.json'}: does not"):
        CardRequest(records=records).check()


def test_the_cards_plot_goes_where_the_card_links_it(tmp_path, recipe):
    plot = tmp_path / "bench.png"
    plot.write_bytes(b"\x89PNG")
    (tmp_path / "card").mkdir()
    records = RunRecords(bench_record=DATA / "bench.json", plot=plot)
    req = CardRequest(records=records, output=tmp_path / "card" / "README.md")
    text = run_card(req, recipe)
    assert "![Throughput](assets/bench.png)" in text
    assert (tmp_path / "card" / "README.md").read_text() == text
    assert (tmp_path / "card" / "assets" / "bench.png").read_bytes() == b"\x89PNG"
    in_place = CardRequest(
        records=RunRecords(
            bench_record=DATA / "bench.json", plot=tmp_path / "card/assets/bench.png"
        ),
        output=tmp_path / "card" / "README.md",
    )
    mark(tmp_path / "card", "release")  # a run folder: its card is glm51's to rewrite
    assert in_place.plots_beside() == {} and run_card(in_place, recipe) == text  # not copied


def test_the_cards_plot_never_lands_on_a_file_glm51_did_not_write(tmp_path, recipe):
    plot = tmp_path / "bench.png"
    plot.write_bytes(b"\x89PNG")
    (tmp_path / "site" / "assets").mkdir(parents=True)
    (tmp_path / "site" / "assets" / "bench.png").write_bytes(b"theirs")
    req = CardRequest(records=RunRecords(plot=plot), output=tmp_path / "site" / "README.md")
    with pytest.raises(InputError, match=r"^--output \(its --plot\) .*cannot tell that it wrote"):
        run_card(req, recipe)
    assert (tmp_path / "site" / "assets" / "bench.png").read_bytes() == b"theirs"
    assert not (tmp_path / "site" / "README.md").exists()


@pytest.mark.parametrize(
    ("fields", "refusal"),
    [
        ({"version": "1.0.0"}, "--version"),
        ({"checkpoint": Path("/nonexistent-ckpt")}, "CHECKPOINT /nonexistent-ckpt: not a folder"),
        ({"card": Path("/nonexistent.md")}, "--card /nonexistent.md: does not exist"),
        ({"commit_bytes": 0}, "--commit-gb 0: expected more than 0"),
        ({"hub_timeout_s": 0.5}, "--hub-timeout 0.5: expected 1 to"),
        ({"hub_endpoint": "hub.example.com"}, "--hub-endpoint (HF_ENDPOINT) 'hub.example.com'"),
        ({"to": Path("/tmp"), "dry_run": True}, "--dry-run: not with --to"),
        ({"to": Path("/tmp"), "hub_endpoint": "http://h"}, "--hub-endpoint: not with --to"),
    ],
)
def test_publish_refusals_name_their_option(folder, fields, refusal):
    req = PublishRequest(**{"checkpoint": folder, "repo": "o/r", "version": "v1.0.0", **fields})
    with pytest.raises(InputError) as err:
        req.check()
    assert refusal in str(err.value)


def test_publish_report_inside_an_input_is_refused(folder):
    req = PublishRequest(checkpoint=folder, repo="o/r", version="v1.0.0", report=folder / "r.json")
    with pytest.raises(InputError, match=r"^--report .* is inside CHECKPOINT"):
        req.check()


def test_glm51_verify_reads_each_shard_header_and_the_index_once(tmp_path, monkeypatch):
    """The request is checked once (in run_verify, not again by the CLI): with --write, the
    index is read for the free-space estimate once, and each shard's header once."""
    from typer.testing import CliRunner

    from glm51.checkpoint.verify import stage, structure
    from glm51.cli import app
    from tests.support import checkpoint as ck

    folder = ck.build(tmp_path / "ckpt", shards=3)
    headers, counts = [], []
    real_read, real_count = structure.read_header, stage._tensor_count
    monkeypatch.setattr(structure, "read_header", lambda p: headers.append(p) or real_read(p))
    monkeypatch.setattr(stage, "_tensor_count", lambda p: counts.append(p) or real_count(p))
    done = CliRunner().invoke(app, ["verify", str(folder), "--write"])
    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in headers) == sorted(ck.shard_names(folder))
    assert counts == [folder]
