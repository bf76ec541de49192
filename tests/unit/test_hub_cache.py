"""--model / --model-id / --revision resolve to a checkpoint folder, offline."""

import pytest

from glm51.checkpoint.hub_cache import from_hub_cache, resolve_model
from glm51.errors import InputError

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_cache(tmp_path):
    repo = tmp_path / "models--lukealonso--GLM-5.1-NVFP4"
    (repo / "snapshots" / SHA).mkdir(parents=True)
    (repo / "snapshots" / SHA / "config.json").write_text("{}")  # an empty snapshot is no snapshot
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SHA)  # as huggingface_hub writes it: no newline
    return tmp_path


def test_ref_resolves_to_its_snapshot(hub_cache):
    path = from_hub_cache("lukealonso/GLM-5.1-NVFP4", "main", cache_dir=hub_cache)
    assert path == hub_cache / "models--lukealonso--GLM-5.1-NVFP4" / "snapshots" / SHA


def test_commit_sha_resolves_directly(hub_cache):
    path = from_hub_cache("lukealonso/GLM-5.1-NVFP4", SHA, cache_dir=hub_cache)
    assert path.name == SHA


def test_huggingface_hubs_cache_setting_locates_the_cache(hub_cache, monkeypatch):
    # huggingface_hub reads HF_HUB_CACHE into its constants at import; glm51 defers to it.
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(hub_cache))
    assert resolve_model(None, None, None, "lukealonso/GLM-5.1-NVFP4").name == SHA


@pytest.mark.parametrize(
    ("repo", "revision", "expected"),
    [
        ("someone/Other", "main", "is not in the Hugging Face cache"),
        ("lukealonso/GLM-5.1-NVFP4", "v2", "cached refs: main"),
        ("lukealonso/GLM-5.1-NVFP4", "f" * 40, "no snapshot"),
    ],
)
def test_missing_cache_entries_say_what_to_do(hub_cache, repo, revision, expected):
    with pytest.raises(InputError) as info:
        from_hub_cache(repo, revision, cache_dir=hub_cache)
    assert expected in str(info.value) and repo in str(info.value)


def test_model_and_model_id_are_exclusive(tmp_path):
    with pytest.raises(InputError, match="either --model PATH or --model-id"):
        resolve_model(tmp_path, "a/b", None, "x/y")


def test_model_must_be_a_folder(tmp_path):
    with pytest.raises(InputError, match="must be a checkpoint folder"):
        resolve_model(tmp_path / "missing", None, None, "x/y")
