"""Output folders: glm51 replaces only what it wrote, and never writes over its inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glm51 import __version__
from glm51.errors import InputError
from glm51.outputs import (
    MARKER,
    check_no_overlap,
    check_output_folder,
    claim_output_folder,
    is_marked,
    mark,
    publish_folder,
    staging_folder,
)


def test_a_new_or_empty_folder_is_free(tmp_path):
    check_output_folder(tmp_path / "new", overwrite=False, option="--output", command="quantize")
    (tmp_path / "empty").mkdir()
    check_output_folder(tmp_path / "empty", overwrite=False, option="--output", command="quantize")


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
            command="quantize",
            inputs={k: tmp_path / v for k, v in inputs.items()},
        )


def test_an_existing_folder_needs_overwrite_and_glm51s_marker(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="pass --overwrite"):
        check_output_folder(theirs, overwrite=False, option="--output", command="quantize")
    with pytest.raises(InputError, match=f"not written by glm51 \\(no {MARKER}"):
        check_output_folder(theirs, overwrite=True, option="--output", command="quantize")
    mark(theirs, "quantize")
    check_output_folder(theirs, overwrite=True, option="--output", command="quantize")
    mark(theirs, "bench")  # glm51's reports: never replaced by a checkpoint
    with pytest.raises(InputError) as err:
        check_output_folder(theirs, overwrite=True, option="--output", command="quantize")
    assert str(err.value) == (
        f"--output {theirs}: is a reports folder glm51 wrote, not a checkpoint folder; "
        "glm51 quantize will not write into it: choose another --output"
    )


def test_a_file_is_never_taken_for_a_folder(tmp_path):
    (tmp_path / "f").write_text("mine")
    with pytest.raises(InputError, match="exists and is not a folder"):
        check_output_folder(tmp_path / "f", overwrite=True, option="OUT", command="quantize")
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


# --- exact refusals and every branch of the swap (docs/testing.md, mutation testing) ---


def test_overlap_message_names_both_paths_and_skips_absent_inputs(tmp_path):
    out, model = tmp_path / "m" / "out", tmp_path / "m"
    check_no_overlap(tmp_path / "other", {"--model": model, "--data": None}, "--output")
    with pytest.raises(InputError) as err:
        check_no_overlap(out, {"--data": None, "--model": model}, "--output")
    assert str(err.value) == (
        f"--output {out} is inside --model {model}: an output may not equal, contain or sit "
        "inside an input (glm51 never writes over what it reads); choose another --output"
    )


def test_siblings_with_a_common_prefix_do_not_overlap(tmp_path):
    check_no_overlap(tmp_path / "model-out", {"--model": tmp_path / "model"}, "--output")
    check_no_overlap(tmp_path / "model", {"--model": tmp_path / "model-out"}, "--output")


def test_overlap_is_judged_on_resolved_paths(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "m")
    with pytest.raises(InputError, match=r" is --model "):
        check_no_overlap(tmp_path / "link", {"--model": tmp_path / "m"}, "--output")


def test_check_output_folder_refusals_exactly(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "x").write_text("")
    with pytest.raises(InputError) as err:
        check_output_folder(out, overwrite=False, option="--output", command="quantize")
    assert str(err.value) == (
        f"--output {out}: exists (pass --overwrite to replace a folder glm51 wrote)"
    )
    with pytest.raises(InputError) as err:
        check_output_folder(out, overwrite=True, option="--output", command="quantize")
    assert str(err.value) == (
        f"--output {out}: exists and was not written by glm51 (no {MARKER} in it); "
        "glm51 replaces only its own outputs: choose another path, or move it away yourself"
    )
    (tmp_path / "f").write_text("")
    with pytest.raises(InputError) as err:
        check_output_folder(tmp_path / "f", overwrite=True, option="--output", command="quantize")
    assert str(err.value) == (
        f"--output {tmp_path / 'f'}: exists and is not a folder; glm51 will not replace it"
    )


def test_a_marked_folder_still_needs_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    mark(out, "test")
    with pytest.raises(InputError, match="pass --overwrite"):
        check_output_folder(out, overwrite=False, option="--output", command="quantize")


def test_a_symlink_is_never_taken_for_a_folder(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(InputError, match="exists and is not a folder"):
        check_output_folder(
            tmp_path / "link", overwrite=True, option="--output", command="quantize"
        )
    with pytest.raises(InputError, match="exists and is not a folder"):
        claim_output_folder(tmp_path / "link", option="--out", command="t")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(InputError, match="exists and is not a folder"):
        check_output_folder(
            tmp_path / "dangling", overwrite=True, option="--output", command="quantize"
        )


def test_the_marker_is_a_file_naming_the_command_and_version(tmp_path):
    mark(tmp_path, "quantize")
    assert json.loads((tmp_path / MARKER).read_text()) == {
        "written_by": "glm51 quantize",
        "kind": "checkpoint",
        "glm51_version": __version__,
    }
    assert (tmp_path / MARKER).read_text().endswith("}\n")
    other = tmp_path / "d"
    (other / MARKER).mkdir(parents=True)
    assert is_marked(tmp_path) and not is_marked(other)  # a folder named like it is no marker


def test_staging_clears_its_own_stale_folder_and_refuses_a_file(tmp_path):
    out = tmp_path / "out"
    stale = staging_folder(out, "t")
    assert stale == tmp_path / ".out.partial"
    (stale / "old").write_text("")
    fresh = staging_folder(out, "t")
    assert fresh == stale and sorted(p.name for p in fresh.iterdir()) == [MARKER]
    assert json.loads((fresh / MARKER).read_text())["written_by"] == "glm51 t"
    other = tmp_path / "deep" / "x"
    assert staging_folder(other, "t").is_dir()  # parents made
    (tmp_path / ".f.partial").write_text("")
    with pytest.raises(InputError) as err:
        staging_folder(tmp_path / "f", "t")
    assert str(err.value) == (
        f"{tmp_path / '.f.partial'}: exists and was not written by glm51; move it away"
    )


def test_publish_over_nothing_an_empty_folder_and_a_foreign_folder(tmp_path):
    for name in ("new", "empty"):
        out = tmp_path / name
        if name == "empty":
            out.mkdir()
        tmp = staging_folder(out, "t")
        assert publish_folder(tmp, out) == out
        assert is_marked(out) and not tmp.exists()
    out = tmp_path / "theirs"
    out.mkdir()
    (out / "cv.pdf").write_text("mine")
    tmp = staging_folder(out, "t")
    with pytest.raises(InputError) as err:
        publish_folder(tmp, out)
    assert str(err.value) == f"{out}: was not written by glm51; the new one stays in {tmp}"
    assert (out / "cv.pdf").read_text() == "mine" and tmp.is_dir()


def test_claim_creates_marks_and_keeps_an_existing_marker(tmp_path):
    folder = tmp_path / "a" / "records"
    assert claim_output_folder(folder, option="--out", command="smoke") == folder
    assert json.loads((folder / MARKER).read_text())["written_by"] == "glm51 smoke"
    claim_output_folder(folder, option="--out", command="bench")  # the same kind: reports
    assert json.loads((folder / MARKER).read_text())["written_by"] == "glm51 smoke"
    empty = tmp_path / "empty"
    empty.mkdir()
    claim_output_folder(empty, option="--out", command="t")
    assert is_marked(empty)
    with pytest.raises(InputError) as err:
        claim_output_folder(tmp_path / "a", option="--out", command="t", inputs={"--in": folder})
    assert str(err.value).startswith(f"--out {tmp_path / 'a'} contains --in {folder}:")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "cv.pdf").write_text("")
    with pytest.raises(InputError) as err:
        claim_output_folder(tmp_path / "docs", option="--out", command="t")
    assert str(err.value) == (
        f"--out {tmp_path / 'docs'}: holds files glm51 did not write (no {MARKER} in it); "
        "choose an empty or new folder"
    )
    (tmp_path / "f").write_text("")
    with pytest.raises(InputError) as err:
        claim_output_folder(tmp_path / "f", option="--out", command="t")
    assert str(err.value) == f"--out {tmp_path / 'f'}: exists and is not a folder"


def test_an_overlap_refusal_names_the_option(tmp_path):
    with pytest.raises(InputError, match=r"^--out-dir .* is --model .*; choose another --out-dir$"):
        check_output_folder(
            tmp_path,
            overwrite=True,
            option="--out-dir",
            command="quantize",
            inputs={"--model": tmp_path},
        )


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


def test_a_leftover_old_folder_is_cleared_only_if_glm51_wrote_it(tmp_path):
    out = tmp_path / "out"
    publish_folder(staging_folder(out, "t"), out)
    old = tmp_path / ".out.old"
    old.mkdir()
    mark(old, "t")
    (old / "stale").write_text("")
    publish_folder(staging_folder(out, "t"), out)
    assert not old.exists() and is_marked(out)
    old.mkdir()
    (old / "theirs").write_text("mine")
    tmp = staging_folder(out, "t")
    with pytest.raises(InputError) as err:
        publish_folder(tmp, out)
    assert str(err.value) == f"{old}: exists and was not written by glm51; move it away"
    assert (old / "theirs").read_text() == "mine"
    (old / "theirs").unlink()
    old.rmdir()
    old.write_text("a file")  # not a folder: refused too
    with pytest.raises(InputError, match="move it away"):
        publish_folder(tmp, out)


def test_check_output_file(tmp_path):
    from glm51.outputs import check_output_file

    check_output_file(tmp_path / "new.md", option="-o")
    (tmp_path / "f.md").write_text("")
    with pytest.raises(InputError) as err:
        check_output_file(tmp_path / "f.md", option="-o")
    assert str(err.value) == (
        f"-o {tmp_path / 'f.md'}: exists, and glm51 cannot tell that it wrote it (it replaces "
        "only its JSON records and files in its reports folders): choose another -o, or remove "
        "it yourself"
    )
    check_output_file(tmp_path / "f.md", option="-o", replace=True)
    (tmp_path / "d").mkdir()
    with pytest.raises(InputError, match="exists and is not a file; glm51 will not replace it"):
        check_output_file(tmp_path / "d", option="-o", replace=True)
    with pytest.raises(InputError) as err:
        check_output_file(tmp_path / "no" / "x.md", option="-o")
    assert (
        str(err.value)
        == f"-o {tmp_path / 'no' / 'x.md'}: its folder {tmp_path / 'no'} does not exist"
    )
    (tmp_path / "link.md").symlink_to(tmp_path / "f.md")
    with pytest.raises(InputError) as err:
        check_output_file(tmp_path / "link.md", option="-o", replace=True)
    assert str(err.value) == (
        f"-o {tmp_path / 'link.md'}: is a symbolic link; glm51 writes only plain files"
    )


def test_a_file_anywhere_inside_a_run_folder_is_glm51s_to_replace(tmp_path):
    """A release run's card/README.md is rewritten on a re-run; the same file beside the run
    folder, or inside a checkpoint glm51 wrote, is not."""
    from glm51.outputs import check_output_file, mark

    run, beside = tmp_path / "run", tmp_path / "beside"
    for folder in (run / "card", beside):
        folder.mkdir(parents=True)
        (folder / "README.md").write_text("card")
    mark(run, "release")
    check_output_file(run / "card" / "README.md", option="--output")
    with pytest.raises(InputError, match="cannot tell that it wrote it"):
        check_output_file(beside / "README.md", option="--output")
    mark(beside, "quantize")
    with pytest.raises(InputError, match="a checkpoint glm51 wrote"):
        check_output_file(beside / "README.md", option="--output")


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_an_output_at_any_depth_inside_an_input_is_refused(tmp_path, depth):
    model = tmp_path / "model"
    model.mkdir()
    out = model.joinpath(*["sub"] * depth)
    with pytest.raises(InputError, match=f"^--output {out} is inside --model {model}:"):
        check_output_folder(
            out, overwrite=False, option="--output", command="quantize", inputs={"--model": model}
        )
    from glm51.outputs import check_output_file

    out.mkdir(parents=True)
    with pytest.raises(InputError, match="is inside CHECKPOINT"):
        check_output_file(out / "r.json", option="--report", inputs={"CHECKPOINT": model})


def test_a_single_file_is_replaced_only_where_glm51_wrote_it(tmp_path):
    from glm51.outputs import check_output_file, write_text

    reports = claim_output_folder(tmp_path / "reports", option="--out", command="bench")
    write_text(reports / "bench.md", "old")
    check_output_file(reports / "bench.md", option="--out")  # glm51's reports folder
    record = tmp_path / "publish.json"
    record.write_text(json.dumps({"kind": "publish", "glm51_version": "1.0"}))
    check_output_file(record, option="--report")  # one of glm51's records
    theirs = tmp_path / "config.json"
    theirs.write_text(json.dumps({"model_type": "glm_moe_dsa"}))
    with pytest.raises(InputError, match="exists, and glm51 cannot tell that it wrote it"):
        check_output_file(theirs, option="--report")


def test_nothing_lands_inside_a_checkpoint_glm51_wrote(tmp_path):
    from glm51.outputs import check_output_file

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    mark(ckpt, "quantize")
    for where in (ckpt / "reports", ckpt / "a" / "b"):
        with pytest.raises(InputError) as err:
            claim_output_folder(where, option="--out", command="bench")
        assert str(err.value) == (
            f"--out {where}: is inside {ckpt}, a checkpoint glm51 wrote; glm51 writes nothing "
            "into it that is not its own: choose another path"
        )
        assert not where.exists()
    with pytest.raises(InputError, match="is a checkpoint folder glm51 wrote, not a reports"):
        claim_output_folder(ckpt, option="--out", command="smoke")
    with pytest.raises(InputError, match="a checkpoint glm51 wrote"):
        check_output_file(ckpt / "bench.md", option="-o")
    # A release run folder holds the checkpoint and the reports side by side.
    run = claim_output_folder(tmp_path / "run", option="--run-dir", command="release")
    check_output_folder(run / "checkpoint", overwrite=False, option="--output", command="quantize")
    claim_output_folder(run / "bench", option="--out", command="bench")


def test_a_marker_of_an_older_glm51_is_read_by_its_command(tmp_path):
    from glm51.outputs import marker_kind

    (tmp_path / MARKER).write_text(json.dumps({"written_by": "glm51 tiny-model"}))
    assert marker_kind(tmp_path) == "checkpoint"
    (tmp_path / MARKER).write_text("not json")
    assert marker_kind(tmp_path) == "unknown"
    assert marker_kind(tmp_path / "none") is None


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_files_and_folders_follow_the_umask(tmp_path, umask):
    import os

    from glm51.outputs import copy_file, write_text

    old = os.umask(umask)
    try:
        tmp = staging_folder(tmp_path / "out", "quantize")
        write_text(tmp / "config.json", "{}")
        copy_file(tmp / "config.json", tmp / "copy.json")
        private = tmp / "lib"  # what a library made with 0700/0600 (mkdtemp, save_file)
        private.mkdir(mode=0o700)
        (private / "shard").write_bytes(b"x")
        os.chmod(private / "shard", 0o600)
        out = publish_folder(tmp, tmp_path / "out")
    finally:
        os.umask(old)
    want = 0o666 & ~umask
    for path in (out / "config.json", out / "copy.json", out / "lib" / "shard", out / MARKER):
        assert path.stat().st_mode & 0o777 == want, path
    assert (out / "lib").stat().st_mode & 0o777 == 0o777 & ~umask


def test_a_write_the_machine_refuses_is_typed_and_names_the_path(tmp_path):
    import errno
    import subprocess
    import sys

    from glm51.errors import InfraError
    from glm51.outputs import os_errors, write_bytes

    # Python ignores SIGXFSZ: past `ulimit -f` a write fails with EFBIG, a full disk's cousin.
    code = (
        "import resource, sys; from pathlib import Path; "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096)); "
        "from glm51.outputs import write_bytes; from glm51.errors import Glm51Error\n"
        "try:\n write_bytes(Path(sys.argv[1]), b'x' * 100000)\n"
        "except Glm51Error as e:\n print(type(e).__name__, e.exit_code, e)"
    )
    target = tmp_path / "big.bin"
    done = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True)
    assert done.stdout.startswith(f"InfraError 6 {target}: File too large: a file-size limit")
    assert not target.exists() and not list(tmp_path.iterdir())  # no half file, no temp file
    full = pytest.raises(InfraError, match=r"^/x/y: No space left on device: the disk is full")
    with full, os_errors(tmp_path):
        raise OSError(errno.ENOSPC, "No space left on device", "/x/y")
    denied = pytest.raises(InputError, match=rf"^{tmp_path}/ro/f: permission denied to uid")
    with denied, os_errors(tmp_path / "ro" / "f"):
        raise PermissionError(errno.EACCES, "Permission denied")
    assert write_bytes(tmp_path / "ok", b"1").read_bytes() == b"1"


def test_safetensors_own_error_for_a_full_disk_is_typed(tmp_path, monkeypatch):
    from glm51.errors import InfraError
    from glm51.outputs import os_errors

    class SafetensorError(Exception):
        pass

    with pytest.raises(InfraError, match="the disk is full"), os_errors(tmp_path / "s.st"):
        raise SafetensorError(
            "Error while serializing: IoError(Os { code: 28, kind: StorageFull, "
            'message: "No space left on device" })'
        )


def test_the_free_space_check_says_needed_against_free(tmp_path):
    import shutil

    from glm51.errors import InfraError
    from glm51.outputs import check_free_space

    free = shutil.disk_usage(tmp_path).free
    check_free_space(tmp_path / "new" / "deeper", 1, what="x", option="--output")
    with pytest.raises(InfraError) as err:
        check_free_space(tmp_path / "out", free * 2, what="the checkpoint", option="--output")
    assert str(err.value).startswith(
        f"--output {tmp_path / 'out'}: the checkpoint needs about {free * 2 / 1e9:.2f} GB, "
        f"{tmp_path} has"
    )


@pytest.mark.parametrize(
    ("need", "says"),
    [(2_000_000, "2.00 MB"), (9_999_999, "10.00 MB"), (10_000_000, "0.01 GB"), (12e9, "12.00 GB")],
)
def test_the_free_space_message_exactly(tmp_path, monkeypatch, need, says):
    import shutil

    from glm51.errors import InfraError
    from glm51.outputs import check_free_space

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr("glm51.outputs.shutil.disk_usage", lambda p: usage._replace(free=1_500_000))
    with pytest.raises(InfraError) as err:
        check_free_space(tmp_path / "x", int(need), what="the checkpoint", option="--output")
    assert str(err.value) == (
        f"--output {tmp_path / 'x'}: the checkpoint needs about {says}, {tmp_path} has "
        "1.50 MB free; free some space or choose another disk"
    )
    check_free_space(tmp_path, 1_500_000, what="x", option="--output")  # exactly enough


def test_which_json_files_are_glm51s_records(tmp_path):
    from glm51.outputs import check_output_file

    cases = {
        "record.json": ({"kind": "bench", "glm51_version": "1.2.3"}, True),
        "outcome.json": ({"written_by": "glm51 publish"}, True),
        "other-tool.json": ({"written_by": "mytool 2.0"}, False),
        "near.json": ({"written_by": "glm51x"}, False),
        "list.json": ([{"glm51_version": "1"}], False),
        "config.json": ({"model_type": "glm_moe_dsa"}, False),
    }
    for name, (data, ours) in cases.items():
        (tmp_path / name).write_text(json.dumps(data))
        if ours:
            check_output_file(tmp_path / name, option="--report")
        else:
            with pytest.raises(InputError, match="exists, and glm51 cannot tell that it wrote it"):
                check_output_file(tmp_path / name, option="--report")


def test_a_marker_says_its_kind_or_unknown(tmp_path):
    from glm51.outputs import marker_kind

    for text, kind in [
        ('{"kind": "reports"}', "reports"),
        ('{"written_by": "glm51 bench"}', "reports"),
        ('{"written_by": "glm51 release"}', "release run"),
        ('{"written_by": "glm51 something-new"}', "unknown"),
        ('{"written_by": "quantize"}', "unknown"),
        ('{"written_by": 3}', "unknown"),
        ("{}", "unknown"),
        ("[1]", "unknown"),
    ]:
        (tmp_path / MARKER).write_text(text)
        assert marker_kind(tmp_path) == kind, text
    (tmp_path / MARKER).write_text("{}")
    with pytest.raises(InputError) as err:
        check_output_folder(tmp_path, overwrite=True, option="--output", command="quantize")
    assert str(err.value) == (
        f"--output {tmp_path}: is a unknown folder glm51 wrote, not a checkpoint folder; "
        "glm51 quantize will not write into it: choose another --output"
    )


def test_every_refusal_names_its_option(tmp_path):
    from glm51.outputs import check_output_file

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    mark(ckpt, "quantize")
    refusals = [
        lambda: check_output_file(ckpt / "r.json", option="--report"),
        lambda: check_output_file(tmp_path / "r.json", option="--report", inputs={"IN": tmp_path}),
        lambda: check_output_folder(
            ckpt / "x", overwrite=False, option="--report", command="bench"
        ),
        lambda: claim_output_folder(ckpt, option="--report", command="bench"),
    ]
    for refuse in refusals:
        with pytest.raises(InputError, match=r"^--report "):
            refuse()


def test_what_the_machine_refuses_names_the_path_it_was_writing(tmp_path):
    from glm51.outputs import copy_file, make_readable, write_bytes

    (tmp_path / "file").write_text("")
    src = tmp_path / "src"
    src.write_text("x")
    cases = [
        (
            lambda: claim_output_folder(tmp_path / "file" / "sub", option="--out", command="bench"),
            tmp_path / "file" / "sub",
        ),
        (lambda: copy_file(src, tmp_path / "nowhere" / "dst"), tmp_path / "nowhere" / "dst"),
        (lambda: make_readable(tmp_path / "gone"), tmp_path / "gone"),
        (lambda: write_bytes(tmp_path / "nowhere" / "f", b""), tmp_path / "nowhere" / "f"),
        (lambda: staging_folder(tmp_path / "file" / "out", "quantize"), tmp_path / "file"),
    ]
    for call, path in cases:
        with pytest.raises(InputError) as err:
            call()
        assert str(err.value).startswith(f"{path}"), str(err.value)


def test_a_failed_write_leaves_no_temp_file_and_the_old_file(tmp_path, monkeypatch):
    import glm51.outputs as outputs
    from glm51.errors import InfraError

    target = tmp_path / "r.json"
    target.write_text("old")
    made = []
    real = outputs.tempfile.mkstemp

    def spy(**kw):
        made.append(kw)
        return real(**kw)

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs.tempfile, "mkstemp", spy)
    monkeypatch.setattr(outputs.os, "replace", refuse)
    with pytest.raises(InfraError, match=rf"^{target}: No space left on device: the disk is full"):
        outputs.write_bytes(target, b"new")
    assert made == [{"prefix": ".r.json.", "dir": tmp_path}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
    assert target.read_text() == "old"


def test_write_text_is_utf8(tmp_path):
    from glm51.outputs import write_text

    assert write_text(tmp_path / "t.md", "Größe → 5\n").read_bytes() == "Größe → 5\n".encode()


def test_a_link_in_the_staged_folder_is_not_followed(tmp_path):
    """The tree is made readable, but a link is never chmod-ed (that would change its target)."""
    import os

    outside = tmp_path / "theirs.txt"
    outside.write_text("private")
    outside.chmod(0o600)
    tmp = staging_folder(tmp_path / "out", "quantize")
    (tmp / "sub").mkdir()
    (tmp / "sub" / "link").symlink_to(outside)
    (tmp / "sub" / "own").write_text("")
    os.chmod(tmp / "sub" / "own", 0o600)
    out = publish_folder(tmp, tmp_path / "out")
    assert outside.stat().st_mode & 0o777 == 0o600
    from glm51.outputs import file_mode

    assert (out / "sub" / "own").stat().st_mode & 0o777 == file_mode()


def test_tensors_and_figures_are_written_readable_and_their_faults_typed(tmp_path, monkeypatch):
    import os

    import torch

    from glm51.errors import InfraError
    from glm51.outputs import save_figure, save_tensors

    old = os.umask(0o022)
    try:
        shard = save_tensors({"w": torch.zeros(2)}, tmp_path / "s.safetensors", {"format": "pt"})

        import matplotlib.pyplot as plt
        from matplotlib.figure import Figure

        class Private(Figure):  # a real figure, saved 0600 as a library might write it
            def savefig(self, path, **kw):
                assert kw == {"dpi": 50}
                Path(path).write_bytes(b"png")
                os.chmod(path, 0o600)

        fig = plt.figure(FigureClass=Private)
        other = plt.figure()  # pyplot's current figure: only the saved one is closed
        plot = save_figure(fig, tmp_path / "new" / "deeper" / "p.png", dpi=50)
        assert not plt.fignum_exists(fig.number)  # closed: its memory is not held on
        assert plt.fignum_exists(other.number)
        plt.close(other)
        beside = save_figure(plt.figure(FigureClass=Private), plot.with_name("q.png"), dpi=50)
        assert beside.read_bytes() == b"png"  # into the folder that is there now
    finally:
        os.umask(old)
    for path in (shard, plot):
        assert path.stat().st_mode & 0o777 == 0o644
    from safetensors.torch import load_file

    assert load_file(str(shard))["w"].tolist() == [0.0, 0.0]
    from safetensors import safe_open

    with safe_open(str(shard), "pt") as f:
        assert f.metadata() == {"format": "pt"}  # what transformers looks for

    class Refusing(Figure):
        def savefig(self, path, **kw):
            raise OSError(27, "File too large")

    refused = plt.figure(FigureClass=Refusing)
    with pytest.raises(InfraError, match=rf"^{tmp_path / 'q.png'}: File too large"):
        save_figure(refused, tmp_path / "q.png")
    assert not plt.fignum_exists(refused.number)  # closed on a fault too
    with pytest.raises(InputError, match="does not exist"):
        save_tensors({"w": torch.zeros(1)}, tmp_path / "no" / "s.safetensors", {})


def test_a_refused_chmod_leaves_the_old_output_in_place(tmp_path, monkeypatch):
    import glm51.outputs as outputs
    from glm51.errors import InputError as Refused

    out = publish_folder(staging_folder(tmp_path / "out", "quantize"), tmp_path / "out")
    (out / "old-result").write_text("earlier work")
    tmp = staging_folder(out, "quantize")

    def refuse(path, mode):
        raise PermissionError(1, "Operation not permitted", str(path))

    monkeypatch.setattr(outputs.os, "chmod", refuse)
    with pytest.raises(Refused):
        publish_folder(tmp, out)
    assert (out / "old-result").read_text() == "earlier work"  # never neither
    assert tmp.is_dir() and not (tmp_path / ".out.old").exists()


def test_a_local_publish_holds_one_version_and_its_old_tag_says_so(tmp_path, recipe):
    from glm51.checkpoint.verify import verify
    from glm51.publish.local import publish_to_folder
    from tests.support import checkpoint as ck

    v1, v2 = ck.build(tmp_path / "v1", shards=4), ck.build(tmp_path / "v2", shards=3)
    for folder in (v1, v2):
        assert verify(folder, recipe, write=True).ok
    hub, repo = tmp_path / "hub", "o/r"
    publish_to_folder(v1, "card 1", hub, repo=repo, version="v1.0.0")
    tag2 = publish_to_folder(v2, "card 2", hub, repo=repo, version="v1.1.0")
    held = sorted(p.name for p in (hub / repo).glob("*.safetensors"))
    assert held == sorted(ck.shard_names(v2))  # v1.0.0's four shards are gone
    assert set(json.loads(tag2.read_text())) <= {
        p.relative_to(hub / repo).as_posix() for p in (hub / repo).rglob("*") if p.is_file()
    }
    with pytest.raises(InputError, match="now holds another version's"):
        publish_to_folder(v1, "card 1", hub, repo=repo, version="v1.0.0")
    assert publish_to_folder(v2, "card 2", hub, repo=repo, version="v1.1.0") == tag2


def test_a_copy_replaces_a_hard_link_instead_of_writing_through_it(tmp_path):
    import os

    from glm51.outputs import copy_file

    theirs = tmp_path / "theirs.bin"
    theirs.write_bytes(b"someone's data")
    os.link(theirs, tmp_path / "dst.bin")
    (tmp_path / "src.bin").write_bytes(b"new")
    copy_file(tmp_path / "src.bin", tmp_path / "dst.bin")
    assert (tmp_path / "dst.bin").read_bytes() == b"new"
    assert theirs.read_bytes() == b"someone's data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst.bin", "src.bin", "theirs.bin"]


def test_a_copy_is_made_beside_its_target_and_a_failed_one_leaves_nothing(tmp_path, monkeypatch):
    import glm51.outputs as outputs

    (tmp_path / "out").mkdir()
    with pytest.raises(InputError, match=rf"^{tmp_path / 'missing.png'}: does not exist"):
        outputs.copy_file(tmp_path / "missing.png", tmp_path / "out" / "p.png")
    assert list((tmp_path / "out").iterdir()) == []  # no temp file left behind
    temps: list[str] = []
    mkstemp = outputs.tempfile.mkstemp

    def seen(*args, **kwargs):
        fd, name = mkstemp(*args, **kwargs)
        temps.append(name)
        return fd, name

    monkeypatch.setattr(outputs.tempfile, "mkstemp", seen)
    (tmp_path / "plot.png").write_bytes(b"png")
    copied = outputs.copy_file(tmp_path / "plot.png", tmp_path / "out" / "p.png")
    assert copied.read_bytes() == b"png" and [Path(t).parent for t in temps] == [copied.parent]
    assert Path(temps[0]).name.startswith(".p.png.")  # hidden, named after its target
