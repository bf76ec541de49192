"""`glm51 publish` against the loopback Hub double, with the real huggingface_hub client.

Run under huggingface_hub 1.x and 2.x (`nox -s publish_hub`). No torch: the checkpoint is
the real-layout test checkpoint (tests/support/checkpoint.py) with its manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest

from glm51.checkpoint import manifest as mf
from glm51.checkpoint.verify import verify
from glm51.errors import InfraError, InputError
from glm51.publish.card import render_card
from glm51.publish.hub import Hub
from glm51.publish.plan import git_blob_sha1
from glm51.publish.request import PublishRequest
from glm51.publish.run import publish
from tests.doubles.hub import HubDouble
from tests.support import checkpoint as ck

REPO = "glm51-test/GLM-5.1-NVFP4"
SHARD_BYTES = 130_000  # each test shard is 90-130 KB: about one shard per weight commit


@pytest.fixture
def hub(monkeypatch, tmp_path):
    import huggingface_hub
    import huggingface_hub.utils._http as http

    # The double speaks the Xet-less protocol; no stored login, no waiting between retries.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(http.time, "sleep", lambda _: None)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with HubDouble() as double:
        monkeypatch.setenv("HF_TOKEN", double.token)
        yield double


@pytest.fixture
def folder(tmp_path, recipe) -> Path:
    out = ck.build(tmp_path / "nvfp4")
    assert verify(out, recipe, write=True).ok
    return out


@pytest.fixture
def card(recipe) -> bytes:
    return render_card(recipe, version="v1.0.0").encode()


def run(folder, recipe, hub, card, version="v1.0.0", dry_run=False, **kw):
    req = PublishRequest(
        checkpoint=folder, repo=REPO, version=version, dry_run=dry_run, commit_bytes=SHARD_BYTES
    )
    return publish(req, recipe, card=card, hub=Hub(endpoint=hub.url), **kw)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def summaries(hub) -> list[str]:
    return [c.summary for c in hub.repo(REPO).commits]


def test_publish_uploads_in_commits_verifies_then_tags(hub, folder, recipe, card):
    outcome = run(folder, recipe, hub, card)
    assert outcome.status == "published"
    head = hub.head(REPO)
    assert hub.repo(REPO).tags == {"v1.0.0": head.oid} == {"v1.0.0": outcome.tagged_commit}
    # Weights in several commits, then card + small files in one.
    names = summaries(hub)
    weight_commits = [s for s in names if "weights (part" in s]
    assert len(weight_commits) >= 2
    assert names[-1] == "v1.0.0: model card, config and tokenizer"
    assert len(outcome.commits) == len(names) - 1  # all but the repo's initial commit
    # The Hub holds exactly the local files.
    for shard in ck.shard_names(folder):
        assert head.files[shard].sha256 == sha256(folder / shard)
    assert head.files["README.md"].content == card
    assert head.files[mf.MANIFEST].content == (folder / mf.MANIFEST).read_bytes()
    assert head.files["config.json"].sha1 == git_blob_sha1((folder / "config.json").read_bytes())
    assert ("POST", "/api/validate-yaml") in hub.requests  # the client checked the card first
    # The tag came after the last commit and after the listing that verified it.
    order = [(m, p) for m, p in hub.requests if m in ("POST", "GET")]
    tag_at = order.index(("POST", f"/api/models/{REPO}/tag/{head.oid}"))
    last_commit = max(
        i for i, (m, p) in enumerate(order) if p.startswith(f"/api/models/{REPO}/commit/")
    )
    last_listing = max(i for i, (m, p) in enumerate(order) if f"/tree/{head.oid}" in p)
    assert last_commit < last_listing < tag_at


def test_dropped_connection_mid_upload_completes_on_rerun(hub, folder, recipe, card):
    third = ck.shard_names(folder)[2]
    hub.faults.drop_upload = 100  # every try of this object, the client's retries included
    hub.faults.drop_upload_oid = sha256(folder / third)
    with pytest.raises(InfraError, match="re-run `glm51 publish`"):
        run(folder, recipe, hub, card)
    assert hub.faults.dropped >= 1
    assert hub.repo(REPO).tags == {}
    committed = summaries(hub)
    assert any("part 1/" in s for s in committed)  # earlier commits stayed
    assert third not in hub.head(REPO).files

    hub.faults.drop_upload = 0
    uploads_before = [p for m, p in hub.requests if m == "PUT"]
    outcome = run(folder, recipe, hub, card)
    assert outcome.status == "published"
    assert hub.repo(REPO).tags["v1.0.0"] == hub.head(REPO).oid
    # Nothing committed twice, and the shards already there were not sent again.
    names = summaries(hub)
    assert len(names) == len(set(names))
    uploads_after = [p for m, p in hub.requests if m == "PUT"][len(uploads_before) :]
    first = sha256(folder / ck.shard_names(folder)[0])
    assert f"/lfs-upload/{first}" not in uploads_after
    assert f"/lfs-upload/{sha256(folder / third)}" in uploads_after


def test_500_on_commit_applies_nothing_and_a_rerun_finishes(hub, folder, recipe, card):
    hub.faults.fail_commit = 1
    with pytest.raises(InfraError, match="answered 500"):
        run(folder, recipe, hub, card)
    assert summaries(hub) == ["initial commit"]  # atomic: the failed commit left no trace
    assert run(folder, recipe, hub, card).status == "published"


def test_tag_only_after_the_hub_matches_the_manifest(hub, folder, recipe, card):
    shard = ck.shard_names(folder)[1]
    hub.faults.listing_sha256 = {shard: "0" * 64}  # the Hub's copy is not what was sent
    with pytest.raises(InfraError, match=f"{shard}: the Hub has .* 0000.*v1.0.0 was not tagged"):
        run(folder, recipe, hub, card)
    assert hub.repo(REPO).tags == {}
    hub.faults.listing_sha256 = {}
    assert run(folder, recipe, hub, card).status == "published"


def test_a_published_version_is_never_moved(hub, folder, recipe, card):
    run(folder, recipe, hub, card)
    tagged = hub.repo(REPO).tags["v1.0.0"]
    commits = len(summaries(hub))
    # The same files again: already published, nothing done.
    assert run(folder, recipe, hub, card).status == "already-published"
    # Other files under the same version: refused before any upload.
    other = card + b"\nA changed line.\n"
    with pytest.raises(InputError, match=r"v1\.0\.0 already exists .* never moved"):
        run(folder, recipe, hub, other)
    assert hub.repo(REPO).tags["v1.0.0"] == tagged
    assert len(summaries(hub)) == commits
    # A new version publishes the change.
    assert run(folder, recipe, hub, other, version="v1.0.1").status == "published"
    assert hub.repo(REPO).tags["v1.0.0"] == tagged


def test_401_is_a_clear_error_without_the_token(hub, folder, recipe, card, monkeypatch, caplog):
    secret = "hf_not_the_right_token_5b1f9c"
    monkeypatch.setenv("HF_TOKEN", secret)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(InputError) as exc:
        run(folder, recipe, hub, card)
    message = str(exc.value)
    assert "refused the credentials" in message and "401" in message
    assert "HF_TOKEN" in message
    assert secret not in message
    assert secret not in caplog.text
    assert exc.value.__cause__ is None
    assert REPO not in hub.repos
    # The token went only where it belongs: the Authorization header.
    assert f"Bearer {secret}" in hub.seen_auth


def test_no_token_at_all(hub, folder, recipe, card, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(InputError, match=r"refused the credentials.*401"):
        run(folder, recipe, hub, card)


def test_dry_run_prints_the_plan_and_touches_nothing(hub, folder, recipe, card):
    before = {p.name: sha256(p) for p in folder.iterdir()}
    outcome = run(folder, recipe, hub, card, dry_run=True)
    assert outcome.status == "dry-run"
    assert REPO not in hub.repos
    # Reads only, and the Hub's card check (validate-yaml writes nothing).
    assert all(m == "GET" or p == "/api/validate-yaml" for m, p in hub.requests), hub.requests
    plan = outcome.plan
    assert f"repo {REPO} (to be created)" in plan
    for shard in ck.shard_names(folder):
        assert shard in plan
    assert "README.md" in plan and "KB" in plan
    assert "commit 'Upload v1.0.0 weights (part 1/" in plan
    assert "commit 'v1.0.0: model card, config and tokenizer'" in plan
    assert "tag v1.0.0 on the verified commit" in plan
    assert {p.name: sha256(p) for p in folder.iterdir()} == before


def test_card_metadata_the_hub_rejects_is_bad_input(hub, folder, recipe, card):
    bad = card.replace(b"base_model_relation: quantized", b"base_model_relation: quantised")
    with pytest.raises(InputError, match="base_model_relation"):
        run(folder, recipe, hub, bad)
    # Checked before anything is created or uploaded: no half-populated repo.
    assert REPO not in hub.repos
    assert [m for m, _ in hub.requests] == ["POST"]


def test_refuses_a_folder_that_fails_verify(hub, folder, recipe, card):
    ck.truncate_shard(folder, 1)
    with pytest.raises(InputError, match="verify failed, nothing published"):
        run(folder, recipe, hub, card)
    assert REPO not in hub.repos


def test_refuses_a_folder_without_manifest(hub, tmp_path, recipe, card):
    bare = ck.build(tmp_path / "bare")
    with pytest.raises(InputError, match=r"no glm51-manifest\.json"):
        run(bare, recipe, hub, card)


def test_cli_publish_and_401(hub, folder, monkeypatch, capsys, tmp_path):
    from glm51.cli import main

    report = tmp_path / "publish.json"
    argv = [
        "glm51",
        "publish",
        str(folder),
        "--repo",
        REPO,
        "--version",
        "v2.0.0",
        "--hub-endpoint",
        hub.url,
        "--report",
        str(report),
        "--commit-gb",
        "0.00013",
    ]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 0
    data = json.loads(report.read_text())
    assert data["status"] == "published" and data["tagged_commit"] == hub.head(REPO).oid
    assert hub.token not in report.read_text()

    secret = "hf_cli_wrong_token_77aa"
    monkeypatch.setenv("HF_TOKEN", secret)
    monkeypatch.setattr("sys.argv", [*argv[:6], "v2.0.1", *argv[7:]])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 3
    captured = capsys.readouterr()
    assert "refused the credentials" in " ".join(captured.err.split())
    assert secret not in captured.err + captured.out
    assert "Traceback" not in captured.err


def test_a_new_version_holds_exactly_its_files_and_the_old_tag_is_unchanged(
    hub, tmp_path, recipe, card
):
    """v1.0.0 from 4 shards, then v1.1.0 from 3 (other names): v1.1.0's tag holds only its own."""
    v1 = ck.build(tmp_path / "v1", shards=4)
    assert verify(v1, recipe, write=True).ok
    run(v1, recipe, hub, card, version="v1.0.0")
    old_tag = hub.repo(REPO).tags["v1.0.0"]
    old_files = dict(hub.repo(REPO).resolve(old_tag).files)

    v2 = ck.build(tmp_path / "v2", shards=3)
    assert verify(v2, recipe, write=True).ok
    card2 = render_card(recipe, version="v1.1.0").encode()
    outcome = run(v2, recipe, hub, card2, version="v1.1.0")
    assert outcome.status == "published"
    assert sorted(outcome.deleted) == sorted(ck.shard_names(v1))  # no shard name is shared
    tagged = hub.repo(REPO).resolve(hub.repo(REPO).tags["v1.1.0"]).files
    local = {*mf.recorded_files(v2), mf.MANIFEST, "README.md", ".gitattributes"}
    assert set(tagged) == local
    assert not set(ck.shard_names(v1)) & set(tagged)
    # The card commit removed the old shards in the same commit that added the new card.
    last = hub.repo(REPO).commits[-1]
    assert last.summary.startswith("v1.1.0: model card, config and tokenizer; remove 4 file(s)")
    # v1.0.0 is untouched: the same commit, the same files.
    assert hub.repo(REPO).tags["v1.0.0"] == old_tag
    assert hub.repo(REPO).resolve(old_tag).files == old_files
    # Publishing v1.1.0 again: already published, nothing committed.
    again = run(v2, recipe, hub, card2, version="v1.1.0")
    assert again.status == "already-published" and again.commits == []


def test_a_read_only_token_is_bad_input_not_an_outage(hub, folder, recipe, card):
    hub.faults.read_only_token = True
    with pytest.raises(InputError) as exc:
        run(folder, recipe, hub, card)
    message = str(exc.value)
    assert "403" in message and "lacks write access" in message
    assert "re-run" not in message.lower()
    assert hub.token not in message


def _dry_run(folder, recipe, card, hub: Hub):
    req = PublishRequest(checkpoint=folder, repo=REPO, version="v1.0.0", dry_run=True)
    return publish(req, recipe, card=card, hub=hub)


def test_a_refused_connection_says_so_and_that_nothing_was_committed(folder, recipe, card):
    with pytest.raises(InfraError) as exc:
        _dry_run(folder, recipe, card, Hub(endpoint="http://127.0.0.1:9"))
    message = str(exc.value)
    assert "refused the connection" in message and "http://127.0.0.1:9" in message
    assert "Nothing was committed" in message
    assert "lost the connection" not in message and "already committed" not in message


def test_a_hub_that_never_answers_times_out_on_glm51s_clock(folder, recipe, card):
    """A server that accepts the connection and says nothing: --hub-timeout ends the wait."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])  # never answered
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        with pytest.raises(InfraError) as exc:
            _dry_run(folder, recipe, card, Hub(endpoint=url, timeout_s=1))
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()
    assert str(exc.value).startswith(f"the Hub at {url} did not answer within 1 s (--hub-timeout)")
    assert "Nothing was committed" in str(exc.value)


@pytest.mark.parametrize(
    ("endpoint", "words"),
    [
        ("ftp://hub.example", "--hub-endpoint (HF_ENDPOINT) 'ftp://hub.example': expected an http"),
        ("not a url", "expected an http(s) URL"),
    ],
)
def test_an_endpoint_that_is_no_url_is_bad_input(endpoint, words):
    from glm51.publish.hub import check_endpoint

    with pytest.raises(InputError) as exc:
        check_endpoint(endpoint)
    assert words in str(exc.value)


def _raised_through(hub_client, exc: BaseException, action: str = "reading o/r"):
    """What the adapter makes of ``exc`` raised inside one of its calls."""
    with hub_client._errors(action):
        raise exc


def _chained(outer: BaseException, cause: BaseException) -> BaseException:
    outer.__cause__ = cause
    return outer


def _transport(name: str) -> type[Exception]:
    return type(name, (Exception,), {"__module__": "httpx"})


def test_what_the_uploader_wraps_is_named_by_its_cause(tmp_path):
    import errno
    import ssl
    from types import SimpleNamespace

    import huggingface_hub.errors as hf_errors

    client = Hub(endpoint="http://127.0.0.1:9", token="hf_secret_token_for_this_test")
    wrapped = RuntimeError("Error while uploading 'model.safetensors' to the Hub.")
    denied = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "shard"))
    with pytest.raises(InputError, match=rf"^{tmp_path / 'shard'}: permission denied"):
        _raised_through(client, _chained(wrapped, denied))
    response = SimpleNamespace(status_code=503, headers={}, request=None, json=lambda: {})
    answered = hf_errors.HfHubHTTPError("503 Service Unavailable", response=response)
    with pytest.raises(InfraError, match="answered 503 while reading o/r"):
        _raised_through(client, _chained(RuntimeError("Error while uploading"), answered))
    with pytest.raises(InfraError, match=r"lost the connection .*\(ReadError"):
        _raised_through(client, _chained(RuntimeError("upload"), _transport("ReadError")("eof")))
    with pytest.raises(InfraError, match=r"TLS with the Hub .* SSL_CERT_FILE"):
        _raised_through(client, ssl.SSLCertVerificationError("certificate verify failed"))
    timeout = _transport("ReadTimeout")("timed out")
    with pytest.raises(InfraError, match=r"within 60 s .* may still apply it"):
        _raised_through(client, timeout, action="committing 3 file(s) to o/r")
    with pytest.raises(InfraError, match=r"within 60 s .* Nothing was committed"):
        _raised_through(client, timeout, action="reading o/r")
    # A bug stays a bug: a plain RuntimeError, a ValueError, a lock's own Timeout.
    for bug in (
        RuntimeError("dictionary changed size during iteration"),
        ValueError("invalid literal for int() with base 10: 'x'"),
        type("Timeout", (Exception,), {"__module__": "filelock"})("lock"),
    ):
        with pytest.raises(type(bug)):
            _raised_through(client, bug)


def test_a_file_someone_else_added_is_not_deleted_and_nothing_is_uploaded(
    hub, folder, recipe, card
):
    run(folder, recipe, hub, card, version="v1.0.0")
    head = hub.head(REPO)
    hub._commit(hub.repo(REPO), "add a licence by hand", {**head.files, "LICENSE": _blob(b"MIT")})
    before = len(hub.repo(REPO).commits)
    v2 = render_card(recipe, version="v1.1.0").encode()
    with pytest.raises(InputError, match=r"LICENSE\. glm51 deletes only files it published"):
        run(folder, recipe, hub, v2, version="v1.1.0")
    assert len(hub.repo(REPO).commits) == before and "LICENSE" in hub.head(REPO).files
    assert "v1.1.0" not in hub.repo(REPO).tags


def _blob(data: bytes):
    from tests.doubles.hub import Blob

    return Blob(len(data), git_blob_sha1(data), None, data)
