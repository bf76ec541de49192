"""Everything glm51 writes goes through here: one rule for files and folders.

- An output may not equal, contain or sit inside (at any depth) one of the command's inputs.
- A folder glm51 writes carries its marker file, which says what *kind* of output it is
  (a checkpoint, reports, a release run, a local publish). An existing folder is replaced
  only with `--overwrite`, only when its marker says glm51 wrote it, and only by an output of
  the same kind: a checkpoint is never taken for a reports folder, nor the reverse. An empty
  folder counts as absent.
- A single file is never written inside a glm51 folder of another kind (reports inside a
  checkpoint), and an existing one is replaced only when glm51 wrote it: it sits in a
  reports or run folder of glm51's, or it is one of glm51's JSON records.
- Files are written whole (a temp file renamed into place) with the mode the umask gives, as
  every other tool does; what a library writes (safetensors, matplotlib) is set the same way.
- A write the machine refuses (permissions, a full disk, a file-size limit) is a typed error
  naming the path (glm51.errors.from_os_error).
Each refusal is an InputError (exit 3) naming the option, the path and the rule.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from glm51 import __version__
from glm51.errors import InfraError, InputError, existing_ancestor, from_os_error

MARKER = ".glm51-output"

# What kind of output each writing command makes; the marker records it.
CHECKPOINT, REPORTS, RUN, PUBLISHED = "checkpoint", "reports", "release run", "local publish"
KIND_OF = {
    "quantize": CHECKPOINT,
    "tiny-model": CHECKPOINT,
    "smoke": REPORTS,
    "bench": REPORTS,
    "fidelity": REPORTS,
    "image build": REPORTS,
    "deploy k8s": REPORTS,
    "release": RUN,
    "publish (local)": PUBLISHED,
}
# Folders whose files glm51 rewrites run after run (records, reports, plots).
FILE_FOLDERS = (REPORTS, RUN)


def kind_of(command: str) -> str:
    return KIND_OF.get(command, command)


# ---------------------------------------------------------------- where outputs may go
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
    out = Path(output).resolve()
    for name, path in inputs.items():
        if path is None:
            continue
        how = _overlap(out, Path(path).resolve())
        if how:
            raise InputError(
                f"{option} {output} {how} {name} {path}: an output may not equal, contain or sit "
                f"inside an input (glm51 never writes over what it reads); choose another {option}"
            )


def marker_kind(folder: Path) -> str | None:
    """The kind of output a marked folder is; None when it carries no marker."""
    path = folder / MARKER
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return "unknown"
    if not isinstance(data, dict):
        return "unknown"
    if isinstance(data.get("kind"), str):
        return data["kind"]
    written_by = data.get("written_by")  # a marker of an older glm51: its command
    if isinstance(written_by, str) and written_by.startswith("glm51 "):
        return KIND_OF.get(written_by.removeprefix("glm51 "), "unknown")
    return "unknown"


def is_marked(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def _marked_ancestor(path: Path) -> Path | None:
    for folder in Path(path).resolve().parents:
        if is_marked(folder):
            return folder
    return None


def _check_kind(folder: Path, command: str, option: str) -> None:
    have, want = marker_kind(folder), kind_of(command)
    if have != want:
        raise InputError(
            f"{option} {folder}: is a {have} folder glm51 wrote, not a {want} folder; "
            f"glm51 {command} will not write into it: choose another {option}"
        )


def _not_inside_other_kind(path: Path, option: str, kinds: tuple[str, ...]) -> None:
    owner = _marked_ancestor(path)
    if owner is not None and marker_kind(owner) not in kinds:
        raise InputError(
            f"{option} {path}: is inside {owner}, a {marker_kind(owner)} glm51 wrote; "
            "glm51 writes nothing into it that is not its own: choose another path"
        )


def check_output_folder(
    output: Path,
    *,
    overwrite: bool,
    option: str,
    command: str,
    inputs: Mapping[str, Path | None] | None = None,
) -> None:
    """Refuse before any work when ``output`` cannot be written (see the module docstring)."""
    check_no_overlap(output, inputs or {}, option)
    if output.is_symlink() or (output.exists() and not output.is_dir()):
        raise InputError(
            f"{option} {output}: exists and is not a folder; glm51 will not replace it"
        )
    _not_inside_other_kind(output, option, FILE_FOLDERS)
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
    _check_kind(output, command, option)


def mark(folder: Path, command: str) -> None:
    """Claim a folder glm51 is writing, so a later --overwrite may replace it."""
    write_text(
        folder / MARKER,
        json.dumps(
            {
                "written_by": f"glm51 {command}",
                "kind": kind_of(command),
                "glm51_version": __version__,
            }
        )
        + "\n",
    )


def staging_folder(output: Path, command: str) -> Path:
    """A fresh `.NAME.partial` beside ``output``, marked; a stale one of glm51's is cleared."""
    tmp = output.with_name(f".{output.name}.partial")
    if tmp.exists():
        if not (tmp.is_dir() and is_marked(tmp)):
            raise InputError(f"{tmp}: exists and was not written by glm51; move it away")
        shutil.rmtree(tmp)
    with os_errors(tmp):
        tmp.mkdir(parents=True)
    mark(tmp, command)
    return tmp


def publish_folder(tmp: Path, output: Path) -> Path:
    """Swap the finished staging folder in; the old output goes only if glm51 wrote it."""
    readable_tree(tmp)  # before anything moves: a refused chmod leaves the old output in place
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
    folder: Path,
    *,
    option: str,
    command: str,
    inputs: Mapping[str, Path | None] | None = None,
    create: bool = True,
) -> Path:
    """A folder glm51 writes files into (records, reports), run after run: a new or empty one
    is created and marked; an existing one must carry glm51's marker of the same kind.
    ``create=False`` checks only (before the work), so a refusal later leaves nothing."""
    check_no_overlap(folder, inputs or {}, option)
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise InputError(f"{option} {folder}: exists and is not a folder")
    _not_inside_other_kind(folder, option, FILE_FOLDERS)
    if folder.is_dir() and any(folder.iterdir()):
        if not is_marked(folder):
            raise InputError(
                f"{option} {folder}: holds files glm51 did not write (no {MARKER} in it); "
                "choose an empty or new folder"
            )
        _check_kind(folder, command, option)
    if not create:
        return folder
    with os_errors(folder):
        folder.mkdir(parents=True, exist_ok=True)
    if not is_marked(folder):
        mark(folder, command)
    return folder


def _is_glm51_record(path: Path) -> bool:
    """A JSON file glm51 wrote: its records carry `glm51_version` (or `written_by`)."""
    try:
        if path.stat().st_size > 64 << 20:  # no record is this large: not read whole
            return False
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict):
        return False
    written_by = data.get("written_by")
    return "glm51_version" in data or (
        isinstance(written_by, str) and written_by.startswith("glm51 ")
    )


def check_output_file(
    path: Path,
    *,
    option: str,
    inputs: Mapping[str, Path | None] | None = None,
    replace: bool = False,
) -> None:
    """A single file glm51 is about to write: not a link, its folder exists, not inside an
    input or another kind of glm51 output, and an existing file only if glm51 wrote it
    (``replace``: files glm51 regenerates in the source tree, such as the docs)."""
    path = Path(path)
    check_no_overlap(path, inputs or {}, option)
    if path.is_symlink():
        raise InputError(f"{option} {path}: is a symbolic link; glm51 writes only plain files")
    if not path.parent.is_dir():
        raise InputError(f"{option} {path}: its folder {path.parent} does not exist")
    _not_inside_other_kind(path, option, FILE_FOLDERS)
    if not path.exists():
        return
    if not path.is_file():
        raise InputError(f"{option} {path}: exists and is not a file; glm51 will not replace it")
    # In a reports or run folder of glm51's, at any depth (a release run's card/README.md).
    owner = _marked_ancestor(path)
    in_ours = owner is not None and marker_kind(owner) in FILE_FOLDERS
    ours = replace or in_ours or _is_glm51_record(path)
    if not ours:
        raise InputError(
            f"{option} {path}: exists, and glm51 cannot tell that it wrote it (it replaces only "
            f"its JSON records and files in its reports folders): choose another {option}, or "
            "remove it yourself"
        )


# ---------------------------------------------------------------- writing
_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process's umask: read from /proc where Linux has it (reading it with os.umask
    means setting it, which another thread creating a file at that moment would see)."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        status = Path("/proc/self/status").read_text()
        return int(
            next(line for line in status.splitlines() if line.startswith("Umask:")).split()[1], 8
        )
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new file gets from the umask (0644 under the usual 022)."""
    return 0o666 & ~_umask()


def folder_mode() -> int:
    """The mode a new folder gets from the umask (0755 under the usual 022)."""
    return 0o777 & ~_umask()


@contextlib.contextmanager
def os_errors(path: Path, *, exact: bool = False) -> Iterator[None]:
    """What the machine refuses while writing ``path`` becomes a typed error naming it:
    OSError, and safetensors' own error, which carries the OS's reason only in its text.
    Writing into a folder (``exact`` False), the file the error names is more precise; a
    single file's writer names that file, never its hidden temp file."""
    try:
        yield
    except OSError as exc:
        raise from_os_error(exc, path=path if exact else exc.filename or path) from None
    except Exception as exc:
        if type(exc).__name__ != "SafetensorError":
            raise
        code = _safetensors_errno(str(exc))
        if code is None:
            raise InfraError(f"{path}: safetensors failed on it ({exc})") from None
        raise from_os_error(OSError(code, os.strerror(code)), path=path) from None


def _safetensors_errno(text: str) -> int | None:
    number = re.search(r"os error (\d+)", text)
    if number:
        return int(number[1])
    return next((c for k, c in _SAFETENSORS_ERRNO.items() if k in text), None)


def make_readable(path: Path) -> Path:
    """A file a library created (safetensors and mkstemp use 0600) gets the umask's mode."""
    with os_errors(path, exact=True):
        os.chmod(path, file_mode())
    return path


def readable_tree(folder: Path) -> None:
    """Every file and folder under ``folder`` gets the umask's mode: what libraries wrote
    into a staging folder (ModelOpt's export, mkdtemp) as 0600/0700 included."""
    files, dirs = file_mode(), folder_mode()
    with os_errors(folder):
        for root, _subdirs, names in os.walk(folder):
            os.chmod(root, dirs)
            for name in names:
                if not os.path.islink(os.path.join(root, name)):
                    os.chmod(os.path.join(root, name), files)


def write_bytes(path: Path, data: bytes) -> Path:
    """Write whole: a temp file beside it, then renamed over, so no reader sees half a file."""
    path = Path(path)
    with os_errors(path, exact=True):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, file_mode())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    return path


def write_text(path: Path, text: str) -> Path:
    """UTF-8, as every text glm51 writes (JSON, Markdown, TOML)."""
    return write_bytes(path, text.encode())


def copy_file(src: Path, dst: Path) -> Path:
    """Copied whole: into a temp file beside ``dst``, then renamed over it (a kill leaves the
    old file or the new one, and a hard link at ``dst`` is replaced, not written through)."""
    dst, tmp = Path(dst), None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", dir=dst.parent)
        os.close(fd)
        shutil.copyfile(src, tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, dst)
    except OSError as exc:  # named by the file the user knows: src, or dst (not the temp)
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise from_os_error(exc, path=src if exc.filename == str(src) else dst) from None
    return dst


# safetensors reports OS failures as its own error, with the io::ErrorKind in the text.
_SAFETENSORS_ERRNO = {
    "StorageFull": errno.ENOSPC,
    "No space left": errno.ENOSPC,
    "FileTooLarge": errno.EFBIG,
    "File too large": errno.EFBIG,
    "QuotaExceeded": errno.EDQUOT,
    "PermissionDenied": errno.EACCES,
    "ReadOnlyFilesystem": errno.EROFS,
}


def save_tensors(tensors: dict[str, Any], path: Path, metadata: dict[str, str]) -> Path:
    """safetensors' save_file, with the umask's mode and typed errors for the machine's."""
    from safetensors.torch import save_file

    with os_errors(path, exact=True):
        save_file(tensors, str(path), metadata=metadata)
    return make_readable(path)


def save_figure(fig: Any, path: Path, **kwargs: Any) -> Path:
    """A matplotlib figure saved at ``path`` (its folder made), readable per the umask, and
    closed: a plot is drawn once, and an open figure holds its memory until the process ends."""
    import matplotlib.pyplot as plt  # only where a plot is saved: --help stays light

    with os_errors(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with os_errors(path, exact=True):
            fig.savefig(path, **kwargs)
    finally:
        plt.close(fig)
    return make_readable(path)


def check_free_space(folder: Path, need: int, *, what: str, option: str) -> None:
    """Before the work: the disk under ``folder`` has room for ``need`` bytes."""
    probe = existing_ancestor(Path(folder))
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return  # not measurable here: the write itself still fails with a typed error
    if free < need:
        raise InfraError(
            f"{option} {folder}: {what} needs about {_gb(need)}, {probe} has {_gb(free)} free; "
            "free some space or choose another disk"
        )


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e7 else f"{n / 1e6:.2f} MB"
