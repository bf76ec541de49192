"""Publish to a local folder: what the Hub repo would hold, verified, then tagged.

The rehearsal's stand-in for the Hub (no network): the same files, the same rule that the
tag comes only after the copy is checked against the manifest, the same refusal to move a
tag. `<dest>/tags/<version>` records the tagged file digests.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from glm51.checkpoint import manifest as mf
from glm51.errors import InputError
from glm51.outputs import (
    MARKER,
    check_free_space,
    claim_output_folder,
    copy_file,
    os_errors,
    write_text,
)
from glm51.publish.plan import CARD, check_names


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def publish_to_folder(
    checkpoint: Path,
    card: str,
    dest: Path,
    *,
    repo: str,
    version: str,
    extra: Mapping[str, Path] | None = None,
    option: str = "--run-dir",
) -> Path:
    """Copy the manifest's files, the manifest and the card to ``dest/repo``, check every copy
    against the manifest, then write the tag. Returns the tag file. The folder holds one
    version's files at a time, as a Hub branch does; earlier tags record their digests.
    ``option``: what names ``dest`` in errors."""
    check_names(repo, version)
    manifest = mf.read(checkpoint)
    target = claim_output_folder(
        dest / repo, option=option, command="publish (local)", inputs={"CHECKPOINT": checkpoint}
    )
    tag = target / "tags" / version
    files = dict(sorted(manifest.all_files().items()))
    # What the tag will name, from the sources: decided before anything is written.
    expected = {name: entry.sha256 for name, entry in files.items()}
    expected[CARD] = hashlib.sha256(card.encode()).hexdigest()
    expected[mf.MANIFEST] = _sha256(checkpoint / mf.MANIFEST)
    expected.update({name: _sha256(path) for name, path in (extra or {}).items()})
    if tag.is_file():
        if json.loads(tag.read_text()) == expected:
            held = {n: _sha256(target / n) for n in expected if (target / n).is_file()}
            if held == expected:
                return tag  # already published, and the folder still holds exactly it
            raise InputError(
                f"{tag}: {version} was published from these files, but {target} now holds "
                "another version's (a local publish keeps one version at a time, as a Hub "
                "branch does); its tag still records the digests"
            )
        raise InputError(
            f"{tag}: version {version} is already tagged with other files; a tag is never moved"
        )
    todo = [
        name
        for name in files
        if not (
            (dst := target / name).is_file()
            and dst.stat().st_size == files[name].size
            and _sha256(dst) == expected[name]
        )
    ]
    check_free_space(
        target, sum(files[n].size for n in todo), what="copying the checkpoint", option="--to"
    )
    write_text(target / CARD, card)
    copy_file(checkpoint / mf.MANIFEST, target / mf.MANIFEST)
    for name, path in (extra or {}).items():  # the card's plot
        with os_errors(target / name):
            (target / name).parent.mkdir(parents=True, exist_ok=True)
        copy_file(path, target / name)
    for name in todo:
        copy_file(checkpoint / name, target / name)
    # The folder holds exactly this version's files: an earlier version's (other shard
    # names) go; the folder is glm51's own (claimed above), its tags stay.
    for path in sorted(target.rglob("*")):
        name = path.relative_to(target).as_posix()
        keep = name in expected or name == MARKER or name.split("/")[0] == "tags"
        if path.is_file() and not keep:
            path.unlink()
    wrong = [name for name, digest in expected.items() if _sha256(target / name) != digest]
    if wrong:
        raise InputError(
            f"{target}: copies differ from the manifest: {', '.join(wrong)}; not tagged"
        )
    with os_errors(tag):
        tag.parent.mkdir(exist_ok=True)
    write_text(tag, json.dumps(expected, indent=2) + "\n")
    return tag
