"""Output folders: glm51 replaces only what it wrote, and never writes over its inputs."""

from __future__ import annotations

import pytest

from glm51.errors import InputError
from glm51.outputs import (
    MARKER,
    check_output_folder,
    claim_output_folder,
    publish_folder,
    staging_folder,
)


def test_a_new_or_empty_folder_is_free(tmp_path):
    check_output_folder(tmp_path / "new", overwrite=False, option="--output")
    (tmp_path / "empty").mkdir()
    check_output_folder(tmp_path / "empty", overwrite=False, option="--output")


@pytest.mark.parametrize(
    ("output", "inputs", "words"),
    [
        ("src", {"--model": "src"}, "is --model"),
        ("src/out", {"--model": "src"}, "is inside --model"),
        (".", {"--model": "src"}, "contains --model"),
        ("out", {"--model": "src", "--data-dir": "out/data"}, "contains --data-dir"),
    ],
)
def test_an_output_never_overlaps_an_input(tmp_path, output, inputs, words):
    (tmp_path / "src").mkdir()
    with pytest.raises(InputError, match=words):
        check_output_folder(
            tmp_path / output,
            overwrite=True,
            option="--output",
            inputs={k: tmp_path / v for k, v in inputs.items()},
        )


def test_an_existing_folder_needs_overwrite_and_glm51s_marker(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="pass --overwrite"):
        check_output_folder(theirs, overwrite=False, option="--output")
    with pytest.raises(InputError, match=f"not written by glm51 \\(no {MARKER}"):
        check_output_folder(theirs, overwrite=True, option="--output")
    (theirs / MARKER).write_text("{}")
    check_output_folder(theirs, overwrite=True, option="--output")


def test_a_file_is_never_taken_for_a_folder(tmp_path):
    (tmp_path / "f").write_text("mine")
    with pytest.raises(InputError, match="exists and is not a folder"):
        check_output_folder(tmp_path / "f", overwrite=True, option="OUT")
    with pytest.raises(InputError, match="exists and is not a folder"):
        claim_output_folder(tmp_path / "f", option="--out", command="t")


def test_staging_then_publish_swaps_whole_and_keeps_foreign_folders(tmp_path):
    out = tmp_path / "out"
    tmp = staging_folder(out, "test")
    (tmp / "a.txt").write_text("1")
    publish_folder(tmp, out)
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "a.txt"]
    again = staging_folder(out, "test")
    (again / "b.txt").write_text("2")
    publish_folder(again, out)  # glm51's own: replaced whole
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "b.txt"]
    # A stale staging folder that glm51 did not write is refused, not cleared.
    foreign = tmp_path / ".other.partial"
    foreign.mkdir()
    (foreign / "x").write_text("mine")
    with pytest.raises(InputError, match="not written by glm51"):
        staging_folder(tmp_path / "other", "test")
    assert (foreign / "x").read_text() == "mine"


def test_a_claimed_folder_is_reused_run_after_run_but_a_foreign_one_is_refused(tmp_path):
    claim_output_folder(tmp_path / "records", option="--out", command="t")
    (tmp_path / "records" / "image.json").write_text("{}")
    claim_output_folder(tmp_path / "records", option="--out", command="t")  # ours: fine
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "cv.pdf").write_text("mine")
    with pytest.raises(InputError, match="holds files glm51 did not write"):
        claim_output_folder(tmp_path / "docs", option="--out", command="t")
    assert not (tmp_path / "docs" / MARKER).exists()


def test_a_local_publish_never_rewrites_a_tagged_version(tmp_path):
    """Re-publishing a tagged version with another card is refused before anything is written."""
    import json

    from glm51.checkpoint import manifest as mf
    from glm51.publish.local import publish_to_folder

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    mf.write(mf.build(ckpt, {}, recipe=None, timestamp=False), ckpt)
    repo = "lukealonso/GLM-5.1-NVFP4"
    tag = publish_to_folder(ckpt, "CARD ONE", tmp_path / "hub", repo=repo, version="v1.0.0")
    assert json.loads(tag.read_text())["README.md"]
    again = publish_to_folder(ckpt, "CARD ONE", tmp_path / "hub", repo=repo, version="v1.0.0")
    assert again == tag  # the same files: already published
    with pytest.raises(InputError, match="never moved"):
        publish_to_folder(ckpt, "CARD TWO", tmp_path / "hub", repo=repo, version="v1.0.0")
    assert (tmp_path / "hub" / repo / "README.md").read_text() == "CARD ONE"


def test_a_refused_swap_keeps_the_finished_folder(tmp_path):
    out = tmp_path / "out"
    tmp = staging_folder(out, "test")
    (tmp / "result").write_text("hours of work")
    out.mkdir()
    (out / "theirs.txt").write_text("mine")  # appeared during the work, not glm51's
    with pytest.raises(InputError, match="the new one stays in"):
        publish_folder(tmp, out)
    assert (tmp / "result").read_text() == "hours of work"
    assert (out / "theirs.txt").read_text() == "mine"
