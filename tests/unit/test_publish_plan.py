"""The publish plan (pure): batching, resume, tags."""

from __future__ import annotations

import pytest

from glm51.errors import InputError
from glm51.publish.plan import LocalFile, RemoteFile, RemoteState, git_blob_sha1, make_plan

SHARDS = tuple(
    LocalFile(f"model-0000{i}-of-00004.safetensors", 40, f"{i}" * 64) for i in range(1, 5)
)
SMALL = (
    LocalFile("config.json", 10, "c" * 64, "c" * 40),
    LocalFile("README.md", 5, "r" * 64, "d" * 40),
)
FILES = SHARDS + SMALL


def remote_of(files, **kw) -> dict[str, RemoteFile]:
    return {
        f.path: RemoteFile(f.path, f.size, f.sha1 or "p" * 40, None if f.sha1 else f.sha256)
        for f in files
    }


def test_new_repo_weights_in_commits_then_one_small_commit():
    plan = make_plan("o/r", "v1.0.0", FILES, RemoteState(exists=False), commit_bytes=100)
    assert plan.create_repo
    assert [c.paths for c in plan.weight_commits] == [
        (SHARDS[0].path, SHARDS[1].path),
        (SHARDS[2].path, SHARDS[3].path),
    ]
    assert plan.weight_commits[1].message == "Upload v1.0.0 weights (part 2/2)"
    assert plan.small_commit.paths == ("README.md", "config.json")
    text = plan.describe()
    assert "repo o/r (to be created)" in text and "tag v1.0.0 on the verified commit" in text


def test_resume_skips_what_the_hub_already_has():
    remote = RemoteState(True, "h" * 40, remote_of(SHARDS[:3]))
    plan = make_plan("o/r", "v1.0.0", FILES, remote, commit_bytes=100)
    assert not plan.create_repo
    assert [c.paths for c in plan.weight_commits] == [(SHARDS[3].path,)]
    assert set(plan.present) == {s.path for s in SHARDS[:3]}


def test_a_changed_shard_is_uploaded_again():
    changed = (LocalFile(SHARDS[0].path, 40, "f" * 64),)
    remote = RemoteState(True, "h" * 40, remote_of(changed + SHARDS[1:] + SMALL))
    plan = make_plan("o/r", "v1.0.0", FILES, remote)
    assert [c.paths for c in plan.weight_commits] == [(SHARDS[0].path,)]
    assert plan.small_commit is None


def test_existing_tag_with_the_same_files_is_already_published():
    remote = RemoteState(True, "h" * 40, {}, {"v1.0.0": "t" * 40}, remote_of(FILES))
    plan = make_plan("o/r", "v1.0.0", FILES, remote)
    assert plan.already_published and plan.nothing_to_upload


def test_existing_tag_with_other_files_is_refused():
    other = remote_of(FILES) | {"README.md": RemoteFile("README.md", 5, "e" * 40)}
    remote = RemoteState(True, "h" * 40, {}, {"v1.0.0": "t" * 40}, other)
    with pytest.raises(InputError, match=r"tag v1\.0\.0 already exists .*README\.md"):
        make_plan("o/r", "v1.0.0", FILES, remote)


@pytest.mark.parametrize(
    ("repo", "version"),
    [("noslash", "v1.0.0"), ("o/r", "1.0.0"), ("o/r", "v1.0"), ("o/r/x", "v1.0.0")],
)
def test_names_are_checked(repo, version):
    with pytest.raises(InputError):
        make_plan(repo, version, FILES, RemoteState(exists=False))


def test_git_blob_sha1_is_gits():
    # `printf 'hello\n' | git hash-object --stdin`
    assert git_blob_sha1(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"
