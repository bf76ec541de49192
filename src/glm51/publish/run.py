"""`glm51 publish`: verify locally, upload what the Hub lacks, verify remotely, then tag."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from glm51 import __version__
from glm51.checkpoint import manifest as mf
from glm51.checkpoint.verify import verify
from glm51.errors import InfraError, InputError
from glm51.publish.hub import Hub
from glm51.publish.plan import (
    CARD,
    LocalFile,
    Plan,
    check_names,
    git_blob_sha1,
    make_plan,
    mismatches,
)
from glm51.publish.request import PublishRequest
from glm51.recipe.schema import Recipe
from glm51.ui import Log, Progress, quiet


@dataclass
class Outcome:
    repo: str
    version: str
    status: str  # "published", "already-published", "dry-run"
    plan: str  # the plan as text
    commits: list[str] = field(default_factory=list)  # made by this run
    tagged_commit: str | None = None
    huggingface_hub: str = ""
    deleted: list[str] = field(default_factory=list)  # an earlier version's files, removed
    written_by: str = "glm51 publish"
    glm51_version: str = __version__

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


def local_files(
    folder: Path, manifest: mf.Manifest, card: bytes, extra: Mapping[str, bytes] = {}
) -> tuple[LocalFile, ...]:
    """Everything the repo will hold: the manifest's files (its digests, verified just
    before), the manifest itself, the card and any extra file (a plot)."""
    out = []
    for name, entry in sorted(manifest.all_files().items()):
        sha1 = (
            None if name.endswith(".safetensors") else git_blob_sha1((folder / name).read_bytes())
        )
        out.append(LocalFile(name, entry.size, entry.sha256, sha1))
    for name, data in {
        mf.MANIFEST: (folder / mf.MANIFEST).read_bytes(),
        CARD: card,
        **extra,
    }.items():
        out.append(LocalFile(name, len(data), _sha256(data), git_blob_sha1(data)))
    return tuple(out)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def publish(
    req: PublishRequest,
    recipe: Recipe,
    *,
    card: bytes,
    hub: Hub,
    extra: Mapping[str, bytes] = {},
    threads: int | None = None,
    log: Log = quiet,
    progress: Progress = quiet,
) -> Outcome:
    """The request's checkpoint to its repo and version on ``hub``, with ``card`` as README.md
    and ``extra`` files (a plot); see the module's steps."""
    folder, repo, version, dry_run = req.checkpoint, req.repo, req.version, req.dry_run
    check_names(repo, version)
    if not (folder / mf.MANIFEST).is_file():
        raise InputError(
            f"{folder}: no {mf.MANIFEST}; `glm51 quantize` writes it, or record it with "
            f"`glm51 verify {folder} --write` (publish uploads only what a manifest vouches for)"
        )
    clash = sorted(set(extra) & set(mf.recorded_files(folder)))
    if clash:
        raise InputError(f"{', '.join(clash)}: both in {folder} and added by publish")

    # 0. The card, with the Hub's own metadata check: seconds, before hours of hashing and
    # uploading, so a card the Hub rejects never leaves a half-populated repo.
    log("checking the card's metadata with the Hub")
    hub.validate_card(card)

    # 1. The local folder, fully (a dry run skips the hashing: it must stay cheap).
    log(
        f"verifying {folder}"
        + (" (structure and layout; a dry run does not hash)" if dry_run else "")
    )
    report = verify(folder, recipe, hash_contents=not dry_run, threads=threads, progress=progress)
    if not report.ok:
        first = report.problems[0]
        raise InputError(
            f"{folder}: verify failed, nothing published: {first}"
            + (
                f" (and {len(report.problems) - 1} more; run `glm51 verify {folder}`)"
                if len(report.problems) > 1
                else ""
            )
        )
    files = local_files(folder, mf.read(folder), card, extra)

    # 2. What the Hub has, and the plan.
    state = hub.state(repo, version)
    plan: Plan = make_plan(repo, version, files, state, commit_bytes=req.commit_bytes)
    outcome = Outcome(repo, version, "dry-run", plan.describe(), huggingface_hub=hub.version)
    if dry_run:
        return outcome
    if plan.already_published:
        outcome.status = "already-published"
        outcome.tagged_commit = state.tags.get(version)
        log(f"{repo}: tag {version} already holds exactly these files; nothing to do")
        return outcome

    # 3. Uploads: the weights in commits, then the card and small files in one.
    if plan.create_repo:
        log(f"creating {repo}")
        hub.create_repo(repo)
    for commit in plan.weight_commits:
        log(f"{commit.message}: {', '.join(commit.paths)}")
        outcome.commits.append(hub.upload_weights(repo, folder, commit.paths, commit.message))
    if plan.small_commit is not None:
        sources: dict[str, bytes | Path] = {}
        for path in plan.small_commit.paths:
            if path == CARD:
                sources[path] = card
            elif path in extra:
                sources[path] = extra[path]
            else:
                sources[path] = folder / path
        gone = f"; deleting {', '.join(plan.delete)}" if plan.delete else ""
        log(f"{plan.small_commit.message}: {', '.join(plan.small_commit.paths)}{gone}")
        outcome.commits.append(
            hub.commit_files(
                repo,
                sources,
                plan.small_commit.message,
                parent=hub.head(repo),
                delete=plan.delete,
            )
        )
        outcome.deleted = list(plan.delete)

    # 4. Verify that the Hub holds exactly the local files now; 5. only then tag it.
    head = hub.head(repo)
    remote = hub.files_at(repo, head)
    wrong = mismatches(files, remote)
    if wrong:
        raise InfraError(
            f"{repo} at {head[:12]} does not match {mf.MANIFEST}: {wrong[0]}"
            + (f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else "")
            + f"; {version} was not tagged. Re-run `glm51 publish` to upload the difference."
        )
    log(f"verified {len(files)} file(s) on the Hub at {head[:12]}")
    if not hub.tag(repo, version, head, f"GLM-5.1-NVFP4 {version} (verified by glm51 publish)"):
        raise InputError(
            f"{repo}: tag {version} appeared while publishing; it was not moved. "
            "Publish this checkpoint as a new version."
        )
    outcome.status = "published"
    outcome.tagged_commit = head
    log(f"tagged {repo} {version} at {head[:12]}")
    return outcome
