"""What `glm51 publish` will do, computed from the local files and the repo's state (pure).

The publish is ordered steps, each skipped when its result is already on the Hub:

1. create the repo (when it does not exist);
2. the weights, in commits of at most ``commit_bytes`` (shards already on the Hub with the
   same sha256 are not uploaded again, so a re-run after an interruption resumes);
3. the card and every small file, in one commit (skipped when all are already there);
4. verify the Hub's files against the local manifest;
5. tag the verified commit ``vX.Y.Z``. An existing tag is never moved: a tag whose files
   are exactly the local ones means "already published"; any other is refused.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from glm51.errors import InputError

VERSION = re.compile(r"^v\d+\.\d+\.\d+$")
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
DEFAULT_COMMIT_BYTES = 50 * 10**9
CARD = "README.md"


def git_blob_sha1(data: bytes) -> str:
    """The id git (and the Hub's tree listing) gives a regular file's content."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class LocalFile:
    path: str
    size: int
    sha256: str
    sha1: str | None = None  # git blob id; known for the small files (read whole)

    @property
    def weights(self) -> bool:
        return self.path.endswith(".safetensors")


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    sha1: str  # git blob id (of the LFS pointer for an LFS file)
    sha256: str | None = None  # LFS files

    def matches(self, local: LocalFile) -> bool:
        if self.sha256 is not None:
            return self.sha256 == local.sha256 and self.size == local.size
        return local.sha1 is not None and self.sha1 == local.sha1 and self.size == local.size


@dataclass(frozen=True)
class RemoteState:
    exists: bool
    head: str | None = None  # main's commit
    files: Mapping[str, RemoteFile] = field(default_factory=dict)  # at head
    tags: Mapping[str, str] = field(default_factory=dict)  # name -> commit
    tagged: Mapping[str, RemoteFile] | None = None  # files at the version's tag, if it exists


@dataclass(frozen=True)
class Commit:
    message: str
    paths: tuple[str, ...]
    size: int


@dataclass(frozen=True)
class Plan:
    repo: str
    version: str
    files: tuple[LocalFile, ...]
    create_repo: bool
    weight_commits: tuple[Commit, ...]
    small_commit: Commit | None
    present: tuple[str, ...]  # already on the Hub, identical
    already_published: bool  # the tag exists and holds exactly these files

    @property
    def nothing_to_upload(self) -> bool:
        return not self.weight_commits and self.small_commit is None

    def describe(self) -> str:
        """The plan as text: files, sizes, commits, the tag."""
        lines = [f"repo {self.repo}" + (" (to be created)" if self.create_repo else "")]
        total = sum(f.size for f in self.files)
        lines.append(f"{len(self.files)} file(s), {_size(total)}:")
        for f in sorted(self.files, key=lambda f: f.path):
            mark = "on the Hub" if f.path in self.present else "to upload"
            lines.append(f"  {f.path}  {_size(f.size)}  sha256 {f.sha256[:12]}  {mark}")
        if self.already_published:
            lines.append(f"tag {self.version} already holds exactly these files: nothing to do")
            return "\n".join(lines)
        for c in (*self.weight_commits, *([self.small_commit] if self.small_commit else [])):
            lines.append(f"commit {c.message!r}: {len(c.paths)} file(s), {_size(c.size)}")
        if self.nothing_to_upload:
            lines.append("no commit: every file is already on the Hub")
        lines.append("verify the Hub's files against glm51-manifest.json")
        lines.append(f"tag {self.version} on the verified commit")
        return "\n".join(lines)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def check_names(repo: str, version: str) -> None:
    if not REPO_ID.match(repo):
        raise InputError(f"--repo {repo!r}: expected OWNER/NAME")
    if not VERSION.match(version):
        raise InputError(f"--version {version!r}: expected vMAJOR.MINOR.PATCH (e.g. v1.0.0)")


def mismatches(local: tuple[LocalFile, ...], remote: Mapping[str, RemoteFile]) -> list[str]:
    """The local files the remote listing lacks or holds with other contents."""
    out = []
    for f in local:
        r = remote.get(f.path)
        if r is None:
            out.append(f"{f.path}: not on the Hub")
        elif not r.matches(f):
            have = r.sha256 or r.sha1
            want = f.sha256 if r.sha256 else f.sha1
            out.append(
                f"{f.path}: the Hub has {r.size} bytes, {have}; local {f.size} bytes, {want}"
            )
    return out


def make_plan(
    repo: str,
    version: str,
    files: tuple[LocalFile, ...],
    remote: RemoteState,
    *,
    commit_bytes: int = DEFAULT_COMMIT_BYTES,
) -> Plan:
    check_names(repo, version)
    if remote.tagged is not None:
        differ = mismatches(files, remote.tagged)
        if differ:
            at = remote.tags.get(version, "?")[:12]
            raise InputError(
                f"{repo}: tag {version} already exists (commit {at}) "
                f"and holds other files ({differ[0]}"
                + (f"; {len(differ) - 1} more" if len(differ) > 1 else "")
                + "). A published version is never moved: publish this checkpoint as a new "
                "version."
            )
        present = tuple(sorted(f.path for f in files))
        return Plan(repo, version, files, False, (), None, present, True)
    present = tuple(
        sorted(f.path for f in files if (r := remote.files.get(f.path)) and r.matches(f))
    )
    todo = [f for f in sorted(files, key=lambda f: f.path) if f.path not in present]
    weights = [f for f in todo if f.weights]
    batches: list[list[LocalFile]] = []
    for f in weights:
        if not batches or sum(x.size for x in batches[-1]) + f.size > commit_bytes:
            batches.append([])
        batches[-1].append(f)
    weight_commits = tuple(
        Commit(
            f"Upload {version} weights (part {i}/{len(batches)})",
            tuple(f.path for f in batch),
            sum(f.size for f in batch),
        )
        for i, batch in enumerate(batches, 1)
    )
    small = [f for f in todo if not f.weights]
    small_commit = (
        Commit(
            f"{version}: model card, config and tokenizer",
            tuple(f.path for f in small),
            sum(f.size for f in small),
        )
        if small
        else None
    )
    return Plan(
        repo, version, files, not remote.exists, weight_commits, small_commit, present, False
    )
