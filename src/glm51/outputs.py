"""Output folders glm51 may write, and may replace: only its own.

Every command that writes a folder checks it here before any work starts:
- the output may not equal, contain or sit inside one of the command's inputs;
- an existing output is replaced only with `--overwrite` and only when it carries glm51's
  marker file (written into every folder glm51 creates); an empty folder counts as absent;
- a path that is a file is never taken for a folder.
Each refusal is an InputError (exit 3) naming the path and the rule.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from glm51 import __version__
from glm51.errors import InputError

MARKER = ".glm51-output"


def _overlap(out: Path, inp: Path) -> str | None:
    if out == inp:
        return "is"
    if inp in out.parents:
        return "is inside"
    if out in inp.parents:
        return "contains"
    return None


def check_no_overlap(output: Path, inputs: Mapping[str, Path | None], option: str) -> None:
    """``inputs``: option name (e.g. "--model") -> path; None entries are skipped."""
    out = output.resolve()
    for name, path in inputs.items():
        if path is None:
            continue
        how = _overlap(out, Path(path).resolve())
        if how:
            raise InputError(
                f"{option} {output} {how} {name} {path}: an output may not equal, contain or sit "
                f"inside an input (glm51 never writes over what it reads); choose another {option}"
            )


def is_marked(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def check_output_folder(
    output: Path,
    *,
    overwrite: bool,
    option: str,
    inputs: Mapping[str, Path | None] | None = None,
) -> None:
    """Refuse before any work when ``output`` cannot be written (see the module docstring)."""
    check_no_overlap(output, inputs or {}, option)
    if output.is_symlink() or (output.exists() and not output.is_dir()):
        raise InputError(
            f"{option} {output}: exists and is not a folder; glm51 will not replace it"
        )
    if not output.is_dir() or not any(output.iterdir()):
        return
    if not overwrite:
        raise InputError(
            f"{option} {output}: exists (pass --overwrite to replace a folder glm51 wrote)"
        )
    if not is_marked(output):
        raise InputError(
            f"{option} {output}: exists and was not written by glm51 (no {MARKER} in it); "
            "glm51 replaces only its own outputs: choose another path, or move it away yourself"
        )


def mark(folder: Path, command: str) -> None:
    """Claim a folder glm51 is writing, so a later --overwrite may replace it."""
    (folder / MARKER).write_text(
        json.dumps({"written_by": f"glm51 {command}", "glm51_version": __version__}) + "\n"
    )


def staging_folder(output: Path, command: str) -> Path:
    """A fresh `.NAME.partial` beside ``output``, marked; a stale one of glm51's is cleared."""
    tmp = output.with_name(f".{output.name}.partial")
    if tmp.exists():
        if not (tmp.is_dir() and is_marked(tmp)):
            raise InputError(f"{tmp}: exists and was not written by glm51; move it away")
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    mark(tmp, command)
    return tmp


def publish_folder(tmp: Path, output: Path) -> Path:
    """Swap the finished staging folder in; the old output goes only if glm51 wrote it."""
    old = None
    if output.is_dir() and any(output.iterdir()):
        if not is_marked(output):  # checked before the work; re-checked at the swap
            raise InputError(f"{output}: was not written by glm51; the new one stays in {tmp}")
        # Renamed aside first: a kill mid-swap leaves the old or the new folder, never neither.
        old = output.with_name(f".{output.name}.old")
        if old.exists():  # a previous swap's leftover: cleared only if it is glm51's
            if not (old.is_dir() and is_marked(old)):
                raise InputError(f"{old}: exists and was not written by glm51; move it away")
            shutil.rmtree(old)
        os.replace(output, old)
    elif output.is_dir():
        output.rmdir()
    os.replace(tmp, output)
    if old is not None:
        shutil.rmtree(old)
    return output


def claim_output_folder(
    folder: Path, *, option: str, command: str, inputs: Mapping[str, Path | None] | None = None
) -> Path:
    """A folder glm51 writes files into (records, reports), run after run: a new or empty one
    is created and marked; an existing one must carry glm51's marker."""
    check_no_overlap(folder, inputs or {}, option)
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise InputError(f"{option} {folder}: exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not is_marked(folder):
        raise InputError(
            f"{option} {folder}: holds files glm51 did not write (no {MARKER} in it); "
            "choose an empty or new folder"
        )
    folder.mkdir(parents=True, exist_ok=True)
    if not is_marked(folder):
        mark(folder, command)
    return folder


def check_output_file(path: Path, *, option: str, replace: bool = False) -> None:
    """A single file glm51 is about to write: its folder exists, it is not a link, and it is
    not replaced unless ``replace`` (for files glm51 regenerates, such as the docs)."""
    if path.is_symlink():
        raise InputError(f"{option} {path}: is a symbolic link; glm51 writes only plain files")
    if not path.parent.is_dir():
        raise InputError(f"{option} {path}: its folder {path.parent} does not exist")
    if path.exists() and (not replace or not path.is_file()):
        raise InputError(f"{option} {path}: exists; glm51 does not write over it (remove it)")
