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
# The Hub's rules (huggingface_hub's validate_repo_id): OWNER/NAME of [\w.-], 1-96 characters
# each, starting and ending with a letter or digit, no "--" or "..", not ending in ".git".
_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
REPO_ID = re.compile(rf"^{_PART}/{_PART}$")
DEFAULT_COMMIT_BYTES = 50 * 10**9
CARD = "README.md"
# Files the Hub itself writes into every repo: never deleted, never asked of the manifest.
HUB_OWNED = frozenset({".gitattributes"})


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
    published: frozenset[str] = frozenset()  # paths some existing tag holds: glm51 put them there


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
    delete: tuple[str, ...] = ()  # on the branch, not this version's: deleted with the card

    @property
    def nothing_to_upload(self) -> bool:
        return not self.weight_commits and self.small_commit is None and not self.delete

    def describe(self) -> str:
        """The plan as text: files, sizes, commits, the tag."""
        lines = [f"repo {self.repo}" + (" (to be created)" if self.create_repo else "")]
        total = sum(f.size for f in self.files)
        lines.append(f"{len(self.files)} file(s), {_size(total)}:")
        for f in sorted(self.files, key=lambda f: f.path):
            mark = "on the Hub" if f.path in self.present else "to upload"
            lines.append(f"  {f.path}  {_size(f.size)}  sha256 {f.sha256[:12]}  {mark}")
        for path in self.delete:
            lines.append(f"  {path}  on the Hub, not in this version: to delete")
        if self.already_published:
            lines.append(f"tag {self.version} already holds exactly these files: nothing to do")
            return "\n".join(lines)
        for c in (*self.weight_commits, *([self.small_commit] if self.small_commit else [])):
            gone = f", {len(self.delete)} deleted" if c is self.small_commit and self.delete else ""
            lines.append(f"commit {c.message!r}: {len(c.paths)} file(s), {_size(c.size)}{gone}")
        if self.nothing_to_upload:
            lines.append("no commit: every file is already on the Hub")
        lines.append("verify the Hub holds exactly the files of glm51-manifest.json and the card")
        lines.append(f"tag {self.version} on the verified commit")
        return "\n".join(lines)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def check_names(repo: str, version: str) -> None:
    if not REPO_ID.match(repo) or ".." in repo or "--" in repo or repo.endswith(".git"):
        raise InputError(
            f"--repo {repo!r}: expected OWNER/NAME as the Hub allows them (letters, digits, "
            "'.', '_', '-', 1-96 characters each, no '--' or '..', not ending in .git)"
        )
    if not VERSION.match(version):
        raise InputError(f"--version {version!r}: expected vMAJOR.MINOR.PATCH (e.g. v1.0.0)")


def mismatches(local: tuple[LocalFile, ...], remote: Mapping[str, RemoteFile]) -> list[str]:
    """How the remote listing differs from exactly the local files: a file it lacks or holds
    with other contents, and a file it holds that is not one of them (the Hub's own
    .gitattributes aside)."""
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
    names = {f.path for f in local}
    out += [
        f"{path}: on the Hub, not in this version"
        for path in sorted(set(remote) - names - HUB_OWNED)
    ]
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
    names = {f.path for f in files}
    delete = tuple(sorted(set(remote.files) - names - HUB_OWNED))
    # Only what a published version held is glm51's to delete (every tag was verified to hold
    # exactly one version's files); anything else someone else put there.
    foreign = [p for p in delete if p not in remote.published]
    if foreign:
        shown = ", ".join(foreign[:8]) + (
            f" and {len(foreign) - 8} more" if len(foreign) > 8 else ""
        )
        raise InputError(
            f"{repo}: the branch holds {len(foreign)} file(s) this version lacks that no "
            f"published version holds: {shown}. glm51 deletes only files it published: remove "
            "them on the Hub yourself if they should go, or publish to another repo"
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
    # The card commit also deletes what an earlier version left (other shard names), so the
    # branch, and the tag on it, hold exactly this version's files.
    small_commit = (
        Commit(
            f"{version}: model card, config and tokenizer"
            + (f"; remove {len(delete)} file(s) of an earlier version" if delete else ""),
            tuple(f.path for f in small),
            sum(f.size for f in small),
        )
        if small or delete
        else None
    )
    return Plan(
        repo,
        version,
        files,
        not remote.exists,
        weight_commits,
        small_commit,
        present,
        False,
        delete,
    )
