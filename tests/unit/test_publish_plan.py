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


# --- batching bounds, exact texts, matching rules (docs/testing.md, mutation testing) ---


@pytest.mark.parametrize(
    ("commit_bytes", "parts"),
    [(80, [2, 2]), (79, [1, 1, 1, 1]), (120, [3, 1]), (160, [4]), (10, [1, 1, 1, 1])],
)
def test_weight_commits_fill_up_to_commit_bytes(commit_bytes, parts):
    plan = make_plan("o/r", "v1.0.0", SHARDS, RemoteState(exists=False), commit_bytes=commit_bytes)
    assert [len(c.paths) for c in plan.weight_commits] == parts
    assert [c.size for c in plan.weight_commits] == [40 * n for n in parts]
    assert plan.weight_commits[0].message == f"Upload v1.0.0 weights (part 1/{len(parts)})"
    assert plan.small_commit is None


def test_the_small_commit_and_the_index_are_not_weights():
    index = LocalFile("model.safetensors.index.json", 7, "i" * 64, "i" * 40)
    assert SHARDS[0].weights and not index.weights
    plan = make_plan("o/r", "v2.0.1", (*SMALL, index), RemoteState(exists=True))
    assert plan.weight_commits == () and not plan.create_repo
    assert plan.small_commit.message == "v2.0.1: model card, config and tokenizer"
    assert plan.small_commit.paths == ("README.md", "config.json", "model.safetensors.index.json")
    assert plan.small_commit.size == 22


def test_describe_exactly():
    remote = RemoteState(True, "h" * 40, remote_of(SHARDS[:1]))
    plan = make_plan("o/r", "v1.0.0", FILES, remote, commit_bytes=80)
    assert plan.describe().splitlines() == [
        "repo o/r",
        "6 file(s), 175 B:",
        "  README.md  5 B  sha256 rrrrrrrrrrrr  to upload",
        "  config.json  10 B  sha256 cccccccccccc  to upload",
        f"  {SHARDS[0].path}  40 B  sha256 111111111111  on the Hub",
        f"  {SHARDS[1].path}  40 B  sha256 222222222222  to upload",
        f"  {SHARDS[2].path}  40 B  sha256 333333333333  to upload",
        f"  {SHARDS[3].path}  40 B  sha256 444444444444  to upload",
        "commit 'Upload v1.0.0 weights (part 1/2)': 2 file(s), 80 B",
        "commit 'Upload v1.0.0 weights (part 2/2)': 1 file(s), 40 B",
        "commit 'v1.0.0: model card, config and tokenizer': 2 file(s), 15 B",
        "verify the Hub holds exactly the files of glm51-manifest.json and the card",
        "tag v1.0.0 on the verified commit",
    ]


def test_describe_when_everything_is_there_or_published():
    remote = RemoteState(True, "h" * 40, remote_of(FILES))
    plan = make_plan("o/r", "v1.0.0", FILES, remote)
    assert plan.nothing_to_upload and not plan.already_published
    assert plan.describe().splitlines()[-3:] == [
        "no commit: every file is already on the Hub",
        "verify the Hub holds exactly the files of glm51-manifest.json and the card",
        "tag v1.0.0 on the verified commit",
    ]
    tagged = RemoteState(True, "h" * 40, {}, {"v1.0.0": "t" * 40}, remote_of(FILES))
    plan = make_plan("o/r", "v1.0.0", FILES, tagged)
    assert plan.present == tuple(sorted(f.path for f in FILES)) and not plan.create_repo
    assert plan.describe().splitlines()[-1] == (
        "tag v1.0.0 already holds exactly these files: nothing to do"
    )
    assert "on the Hub" in plan.describe().splitlines()[2]


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 KB"),
        (999_949, "999.9 KB"),
        (1_500_000, "1.5 MB"),
        (2 * 10**9, "2.0 GB"),
        (1_500 * 10**9, "1.5 TB"),
        (5 * 10**15, "5000.0 TB"),
    ],
)
def test_sizes(n, text):
    from glm51.publish.plan import _size

    assert _size(n) == text


def test_matching_rules():
    lfs = LocalFile("a.safetensors", 40, "1" * 64)
    assert RemoteFile("a.safetensors", 40, "p" * 40, "1" * 64).matches(lfs)
    assert not RemoteFile("a.safetensors", 41, "p" * 40, "1" * 64).matches(lfs)
    assert not RemoteFile("a.safetensors", 40, "p" * 40, "2" * 64).matches(lfs)
    small = LocalFile("c.json", 10, "c" * 64, "s" * 40)
    assert RemoteFile("c.json", 10, "s" * 40).matches(small)
    assert not RemoteFile("c.json", 11, "s" * 40).matches(small)
    assert not RemoteFile("c.json", 10, "t" * 40).matches(small)
    unknown = LocalFile("c.json", 10, "c" * 64)  # no git id known locally: never the same
    assert not RemoteFile("c.json", 10, "s" * 40).matches(unknown)


def test_mismatches_say_what_each_side_holds():
    from glm51.publish.plan import mismatches

    remote = {
        SHARDS[0].path: RemoteFile(SHARDS[0].path, 41, "p" * 40, "9" * 64),
        "config.json": RemoteFile("config.json", 10, "e" * 40),
    }
    assert mismatches(SHARDS[:2] + SMALL[:1], remote) == [
        f"{SHARDS[0].path}: the Hub has 41 bytes, {'9' * 64}; local 40 bytes, {'1' * 64}",
        f"{SHARDS[1].path}: not on the Hub",
        f"config.json: the Hub has 10 bytes, {'e' * 40}; local 10 bytes, {'c' * 40}",
    ]


def test_a_moved_tag_is_refused_exactly():
    remote = RemoteState(True, "h" * 40, {}, {"v1.0.0": "0123456789abcdef"}, {})
    with pytest.raises(InputError) as info:
        make_plan("o/r", "v1.0.0", SHARDS[:2], remote)
    assert str(info.value) == (
        "o/r: tag v1.0.0 already exists (commit 0123456789ab) and holds other files "
        f"({SHARDS[0].path}: not on the Hub; 1 more). A published version is never moved: "
        "publish this checkpoint as a new version."
    )
    unknown = RemoteState(True, "h" * 40, {}, {}, {})
    with pytest.raises(InputError) as info:
        make_plan("o/r", "v1.0.0", SHARDS[:1], unknown)
    assert "(commit ?) and holds other files (" in str(info.value)
    assert f"{SHARDS[0].path}: not on the Hub). A published" in str(info.value)


@pytest.mark.parametrize(
    ("repo", "version", "ok"),
    [
        ("lukealonso/GLM-5.1-NVFP4", "v1.0.0", True),
        ("o_1/r.x", "v10.20.30", True),
        (".o/r", "v1.0.0", False),
        ("o/-r", "v1.0.0", False),
        ("o/r", "v1.0.0-rc1", False),
        ("o/r", "v1.0.0.1", False),
        ("o/r", "xv1.0.0", False),
    ],
)
def test_name_rules(repo, version, ok):
    from glm51.publish.plan import check_names

    if ok:
        check_names(repo, version)
    else:
        with pytest.raises(InputError, match=r"^--(repo|version) "):
            check_names(repo, version)


def test_name_messages():
    from glm51.publish.plan import check_names

    with pytest.raises(InputError) as info:
        check_names("noslash", "v1.0.0")
    assert str(info.value) == (
        "--repo 'noslash': expected OWNER/NAME as the Hub allows them (letters, digits, "
        "'.', '_', '-', 1-96 characters each, no '--' or '..', not ending in .git)"
    )
    with pytest.raises(InputError) as info:
        check_names("o/r", "1.0")
    assert str(info.value) == "--version '1.0': expected vMAJOR.MINOR.PATCH (e.g. v1.0.0)"


def test_plan_fields_are_exact_values():
    tagged = RemoteState(True, "h" * 40, {}, {"v1.0.0": "t" * 40}, remote_of(FILES))
    done = make_plan("o/r", "v1.0.0", FILES, tagged)
    assert (done.repo, done.version, done.files) == ("o/r", "v1.0.0", FILES)
    assert done.create_repo is False and done.already_published is True
    assert done.weight_commits == () and done.small_commit is None
    fresh = make_plan("o/r", "v1.0.0", FILES, RemoteState(exists=False))
    assert fresh.already_published is False and fresh.create_repo is True


@pytest.mark.parametrize(
    "repo",
    ["o/r--x", "o/r..x", "o/r.git", "o/-r", "o/r-", "o/" + "r" * 97, "o/r/x", "o r/x", "/r"],
)
def test_repo_ids_the_hub_refuses_are_refused_here(repo):
    from glm51.publish.plan import check_names

    with pytest.raises(InputError, match=r"^--repo "):
        check_names(repo, "v1.0.0")


def test_repo_ids_the_hub_takes_are_taken():
    from glm51.publish.plan import check_names

    for repo in ("o/r", "glm51-test/GLM-5.1-NVFP4", "a_b/c.d", "o/" + "r" * 96):
        check_names(repo, "v1.0.0")


def test_an_earlier_versions_files_are_deleted_with_the_card():
    """v1.1.0 with other shard names: the card commit deletes v1.0.0's, never .gitattributes."""
    old = {
        **remote_of(FILES),
        "model-00001-of-00009.safetensors": RemoteFile(
            "model-00001-of-00009.safetensors", 9, "x" * 40, "y" * 64
        ),
        ".gitattributes": RemoteFile(".gitattributes", 3, "g" * 40),
    }
    published = frozenset({"model-00001-of-00009.safetensors"})  # v1.0.0's tag holds it
    state = RemoteState(True, "h" * 40, old, {"v1.0.0": "t" * 40}, None, published)
    plan = make_plan("o/r", "v1.1.0", FILES, state)
    assert plan.delete == ("model-00001-of-00009.safetensors",)
    assert plan.small_commit is not None and plan.small_commit.paths == ()
    assert "remove 1 file(s) of an earlier version" in plan.small_commit.message
    assert not plan.nothing_to_upload
    assert "model-00001-of-00009.safetensors  on the Hub, not in this version: to delete" in (
        plan.describe()
    )


def test_the_check_before_the_tag_asks_for_exactly_the_local_files():
    from glm51.publish.plan import mismatches

    remote = {**remote_of(FILES), ".gitattributes": RemoteFile(".gitattributes", 3, "g" * 40)}
    assert mismatches(FILES, remote) == []
    for extra in ("model-00009-of-00009.safetensors", "tokenizer.json", "README.old.md"):
        more = {**remote, extra: RemoteFile(extra, 1, "z" * 40)}
        assert mismatches(FILES, more) == [f"{extra}: on the Hub, not in this version"]
    # Every kind of file counts, not only the weights: the card, a config.
    for name in ("README.md", "config.json"):
        fewer = {k: v for k, v in remote.items() if k != name}
        assert mismatches(FILES, fewer) == [f"{name}: not on the Hub"]


def test_a_tag_holding_an_extra_file_is_not_already_published():
    extra = RemoteFile("old.safetensors", 1, "z" * 40, "z" * 64)
    tagged = RemoteState(
        True, "h" * 40, {}, {"v1.0.0": "t" * 40}, {**remote_of(FILES), extra.path: extra}
    )
    with pytest.raises(InputError, match=r"old\.safetensors: on the Hub, not in this version"):
        make_plan("o/r", "v1.0.0", FILES, tagged)


def test_a_file_no_published_version_holds_is_never_deleted():
    """Someone's LICENSE on the branch: glm51 did not put it there, so it refuses, before any
    upload, rather than delete it."""
    theirs = RemoteFile("LICENSE", 5, "l" * 40)
    old_shard = RemoteFile("model-00001-of-00009.safetensors", 9, "x" * 40, "y" * 64)
    head = {**remote_of(FILES), theirs.path: theirs, old_shard.path: old_shard}
    state = RemoteState(True, "h" * 40, head, {}, None, frozenset({old_shard.path}))
    with pytest.raises(InputError) as err:
        make_plan("o/r", "v1.1.0", FILES, state)
    assert str(err.value) == (
        "o/r: the branch holds 1 file(s) this version lacks that no published version holds: "
        "LICENSE. glm51 deletes only files it published: remove them on the Hub yourself if "
        "they should go, or publish to another repo"
    )
