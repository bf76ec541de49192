"""A loopback Hugging Face Hub double. TEST SCAFFOLDING: not the Hub, never a source of numbers.

No Hub emulator with uploads exists on PyPI, so the publish tests run this one. It speaks
the part of the Hub's HTTP API that the real `huggingface_hub` client (1.x and 2.x) uses
with Xet disabled (``HF_HUB_DISABLE_XET=1``), written from the client's source
(hf_api.py, _commit_api.py, lfs.py):

    POST /api/repos/create                              create_repo (409 when it exists)
    GET  /api/models/{repo}/revision/{rev}              repo_info
    POST /api/models/{repo}/preupload/{rev}             upload modes + the remote oid
    POST /{repo}.git/info/lfs/objects/batch             LFS batch (basic transfer)
    PUT  /lfs-upload/{oid}                              the object's bytes (sha256-checked)
    POST /lfs-verify                                    LFS verify action
    POST /api/models/{repo}/commit/{rev}                NDJSON commit (atomic; parentCommit)
    GET  /api/models/{repo}/tree/{rev}[/{path}]         tree listing (lfs oid and size)
    GET  /api/models/{repo}/refs                        branches and tags
    POST /api/models/{repo}/tag/{rev}                   create a tag (409 when it exists)
    POST /api/validate-yaml                             model card metadata check
    GET  /api/whoami-v2                                 the token's user

Writes need ``Authorization: Bearer <token>`` with the double's token, else 401 the way the
Hub says it. ``faults`` makes it fail on demand: ``drop_upload`` closes the connection in
the middle of LFS uploads (of one object, by its sha256, or any), ``fail_commit`` answers 500
to commits without applying them, ``reject_token`` answers 401 to every request,
``listing_sha256`` makes the tree listing report another sha256 for a file (a corrupt copy).

    with HubDouble() as hub:
        api = HfApi(endpoint=hub.url, token=hub.token)
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

LFS_PATTERNS = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".h5", ".msgpack", ".zip")
REGULAR_MAX = 5 * 1024 * 1024  # above this the client must use LFS
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
VALID_RELATIONS = {"adapter", "merge", "quantized", "finetune"}


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class Blob:
    size: int
    sha1: str  # git blob id of the content (regular) or of the pointer (LFS)
    sha256: str | None = None  # LFS files only
    content: bytes | None = None  # regular files only

    @property
    def lfs(self) -> bool:
        return self.sha256 is not None


@dataclass
class Commit:
    oid: str
    parent: str | None
    summary: str
    files: dict[str, Blob]


@dataclass
class Repo:
    repo_id: str
    commits: list[Commit] = field(default_factory=list)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, rev: str) -> Commit | None:
        oid = self.branches.get(rev) or self.tags.get(rev) or rev
        return next((c for c in self.commits if c.oid == oid or c.oid.startswith(oid)), None)


@dataclass
class Faults:
    drop_upload: int = 0  # connections to drop mid-upload (each drop uses one)
    drop_upload_oid: str | None = None  # only uploads of this LFS object (its sha256)
    drop_after_bytes: int = 1024
    fail_commit: int = 0  # commits to answer with 500 (not applied)
    reject_token: bool = False  # 401 to everything
    read_only_token: bool = False  # 403 to every write (a token made with read access)
    listing_sha256: dict[str, str] = field(default_factory=dict)  # tree lies: path -> sha256
    dropped: int = 0  # how many uploads were dropped


class HubDouble:
    def __init__(self, token: str = "hf_double_write_token_0123456789") -> None:
        self.token = token
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.faults = Faults()
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.seen_auth: list[str] = []  # Authorization headers seen (to show where it went)
        self._lock = threading.RLock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # ----------------------------------------------------------------- lifecycle
    def __enter__(self) -> HubDouble:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --------------------------------------------------------------- inspection
    def repo(self, repo_id: str) -> Repo:
        return self.repos[repo_id]

    def head(self, repo_id: str, branch: str = "main") -> Commit:
        repo = self.repos[repo_id]
        return repo.resolve(repo.branches[branch])

    def _commit(self, repo: Repo, summary: str, files: dict[str, Blob]) -> Commit:
        parent = repo.branches.get("main")
        seed = f"{parent}\0{summary}\0{len(repo.commits)}\0" + json.dumps(
            sorted((p, b.sha1) for p, b in files.items())
        )
        commit = Commit(hashlib.sha1(seed.encode()).hexdigest(), parent, summary, files)
        repo.commits.append(commit)
        repo.branches["main"] = commit.oid
        return commit


def _handler(hub: HubDouble):
    repo_path = r"(?P<repo>[^/]+/[^/]+)"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: Any) -> None:  # quiet
            pass

        # -------------------------------------------------------------- helpers
        def _send(self, status: int, body: Any = None, headers: dict | None = None) -> None:
            raw = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(raw)

        def _error(self, status: int, message: str, code: str | None = None) -> None:
            self._send(status, {"error": message}, {"X-Error-Code": code} if code else None)

        def _body(self, drop_after: int | None = None) -> bytes | None:
            """The request body; None when the connection was dropped on purpose."""
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                out = bytearray()
                while True:
                    size = int(self.rfile.readline().strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return bytes(out)
                    out += self.rfile.read(size)
                    self.rfile.readline()
                    if drop_after is not None and len(out) >= drop_after:
                        return None
            length = int(self.headers.get("Content-Length") or 0)
            if drop_after is not None and length > drop_after:
                self.rfile.read(drop_after)
                return None
            return self.rfile.read(length)

        def _json(self) -> Any:
            raw = self._body() or b"{}"
            return json.loads(raw)

        def _authorized(self, required: bool) -> bool:
            auth = self.headers.get("Authorization")
            if auth:
                hub.seen_auth.append(auth)
            if hub.faults.reject_token:
                self._error(401, "Invalid credentials in Authorization header")
                return False
            if auth is None:
                if required:
                    self._error(401, "Invalid username or password.")
                    return False
                return True
            if auth != f"Bearer {hub.token}":
                self._error(401, "Invalid credentials in Authorization header")
                return False
            if required and hub.faults.read_only_token:
                self._error(403, "You don't have the rights to write to this repo")
                return False
            return True

        def _repo(self, repo_id: str) -> Repo | None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(404, "Repository not found", "RepoNotFound")
            return repo

        def _drop(self) -> None:
            hub.faults.dropped += 1
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

        # --------------------------------------------------------------- routing
        def _route(self, method: str) -> None:
            url = urlsplit(self.path)
            path, query = unquote(url.path), parse_qs(url.query)
            hub.requests.append((method, path))
            routes = [
                ("POST", r"/api/repos/create", self.create_repo),
                ("GET", r"/api/whoami-v2", self.whoami),
                ("POST", r"/api/validate-yaml", self.validate_yaml),
                ("GET", rf"/api/models/{repo_path}/revision/(?P<rev>.+)", self.repo_info),
                ("GET", rf"/api/models/{repo_path}", self.repo_info),
                ("POST", rf"/api/models/{repo_path}/preupload/(?P<rev>.+)", self.preupload),
                ("POST", rf"/api/models/{repo_path}/commit/(?P<rev>.+)", self.commit),
                ("GET", rf"/api/models/{repo_path}/tree/(?P<rev>[^/]+)(?P<sub>/.*)?", self.tree),
                ("GET", rf"/api/models/{repo_path}/refs", self.refs),
                ("POST", rf"/api/models/{repo_path}/tag/(?P<rev>.+)", self.tag),
                ("POST", rf"/{repo_path}\.git/info/lfs/objects/batch", self.lfs_batch),
                ("PUT", r"/lfs-upload/(?P<oid>[0-9a-f]{64})", self.lfs_upload),
                ("POST", r"/lfs-verify", self.lfs_verify),
            ]
            for m, pattern, fn in routes:
                if m == method and (match := re.fullmatch(pattern, path)):
                    with hub._lock if method != "PUT" else _nolock():
                        fn(query=query, **match.groupdict())
                    return
            self._error(404, f"no route for {method} {path}")

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_PUT(self) -> None:
            self._route("PUT")

        # ------------------------------------------------------------- endpoints
        def whoami(self, query) -> None:
            if self._authorized(required=True):
                self._send(
                    200,
                    {
                        "type": "user",
                        "name": "double-user",
                        "auth": {"accessToken": {"role": "write"}},
                    },
                )

        def create_repo(self, query) -> None:
            body = self._json()
            if not self._authorized(required=True):
                return
            repo_id = f"{body.get('organization') or 'double-user'}/{body['name']}"
            if repo_id in hub.repos:
                # The Hub's 409 carries the url; create_repo(exist_ok=True) returns it.
                self._send(
                    409,
                    {"error": "You already created this model repo", "url": f"{hub.url}/{repo_id}"},
                )
                return
            repo = hub.repos[repo_id] = Repo(repo_id)
            attrs = Blob(len(GITATTRIBUTES), git_blob_sha1(GITATTRIBUTES), None, GITATTRIBUTES)
            hub._commit(repo, "initial commit", {".gitattributes": attrs})
            self._send(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id})

        def repo_info(self, query, repo, rev="main") -> None:
            if not self._authorized(required=False) or (r := self._repo(repo)) is None:
                return
            commit = r.resolve(rev)
            if commit is None:
                self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
                return
            siblings = [{"rfilename": p} for p in sorted(commit.files)]
            self._send(200, {"id": repo, "sha": commit.oid, "private": False, "siblings": siblings})

        def preupload(self, query, repo, rev) -> None:
            body = self._json()
            if not self._authorized(required=True) or (r := self._repo(repo)) is None:
                return
            commit = r.resolve(rev)
            files = commit.files if commit else {}
            out = []
            for f in body["files"]:
                lfs = f["path"].endswith(LFS_PATTERNS) or f["size"] > REGULAR_MAX
                have = files.get(f["path"])
                oid = None if have is None else (have.sha256 if have.lfs else have.sha1)
                out.append(
                    {
                        "path": f["path"],
                        "uploadMode": "lfs" if lfs else "regular",
                        "shouldIgnore": False,
                        "oid": oid,
                    }
                )
            self._send(200, {"files": out, "commitOid": commit.oid if commit else None})

        def lfs_batch(self, query, repo) -> None:
            body = self._json()
            if not self._authorized(required=True) or (self._repo(repo)) is None:
                return
            objects = []
            for obj in body["objects"]:
                entry = {"oid": obj["oid"], "size": obj["size"]}
                if obj["oid"] not in hub.lfs:
                    entry["actions"] = {
                        "upload": {"href": f"{hub.url}/lfs-upload/{obj['oid']}", "header": {}},
                        "verify": {"href": f"{hub.url}/lfs-verify", "header": {}},
                    }
                objects.append(entry)
            self._send(
                200,
                {"transfer": "basic", "objects": objects},
                {"Content-Type": "application/vnd.git-lfs+json"},
            )

        def lfs_upload(self, query, oid) -> None:
            f = hub.faults
            with hub._lock:
                drop = f.drop_upload > 0 and f.drop_upload_oid in (None, oid)
                if drop:
                    f.drop_upload -= 1
            if drop:
                self._body(drop_after=f.drop_after_bytes)
                self._drop()
                return
            data = self._body()
            if hashlib.sha256(data).hexdigest() != oid:
                self._error(400, "sha256 of the uploaded content does not match the oid")
                return
            with hub._lock:
                hub.lfs[oid] = data
            self._send(200, {})

        def lfs_verify(self, query) -> None:
            body = self._json()
            data = hub.lfs.get(body["oid"])
            if data is None or len(data) != body["size"]:
                self._error(404, "object not found")
                return
            self._send(200, {})

        def commit(self, query, repo, rev) -> None:
            raw = self._body() or b""
            if not self._authorized(required=True) or (r := self._repo(repo)) is None:
                return
            if hub.faults.fail_commit > 0:
                hub.faults.fail_commit -= 1
                self._error(500, "Internal Error - the double failed this commit on purpose")
                return
            lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
            header = next(x["value"] for x in lines if x["key"] == "header")
            head = r.resolve(rev)
            if head is None:
                self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
                return
            parent = header.get("parentCommit")
            if parent and not head.oid.startswith(parent):
                self._error(412, "A commit has happened since. Please refresh and try again.")
                return
            files = dict(head.files)
            for item in lines:
                key, value = item["key"], item["value"]
                if key == "file":
                    data = base64.b64decode(value["content"])
                    files[value["path"]] = Blob(len(data), git_blob_sha1(data), None, data)
                elif key == "lfsFile":
                    data = hub.lfs.get(value["oid"])
                    if data is None:
                        self._error(422, f"LFS object {value['oid']} was never uploaded")
                        return
                    pointer = (
                        f"version https://git-lfs.github.com/spec/v1\noid sha256:"
                        f"{value['oid']}\nsize {len(data)}\n"
                    ).encode()
                    files[value["path"]] = Blob(len(data), git_blob_sha1(pointer), value["oid"])
                elif key == "deletedFile":
                    files.pop(value["path"], None)
            commit = hub._commit(r, header["summary"], files)
            url = f"{hub.url}/{repo}/commit/{commit.oid}"
            self._send(200, {"commitUrl": url, "commitOid": commit.oid, "pullRequestUrl": None})

        def tree(self, query, repo, rev, sub=None) -> None:
            if not self._authorized(required=False) or (r := self._repo(repo)) is None:
                return
            commit = r.resolve(rev)
            if commit is None:
                self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
                return
            prefix = (sub or "").strip("/")
            out = []
            for p, b in sorted(commit.files.items()):
                if prefix and not p.startswith(prefix + "/"):
                    continue
                entry: dict[str, Any] = {"type": "file", "path": p, "size": b.size, "oid": b.sha1}
                if b.lfs:
                    sha = hub.faults.listing_sha256.get(p, b.sha256)
                    entry["lfs"] = {"oid": sha, "size": b.size, "pointerSize": 134}
                out.append(entry)
            self._send(200, out)

        def refs(self, query, repo) -> None:
            if not self._authorized(required=False) or (r := self._repo(repo)) is None:
                return
            self._send(
                200,
                {
                    "branches": [
                        {"name": n, "ref": f"refs/heads/{n}", "targetCommit": c}
                        for n, c in sorted(r.branches.items())
                    ],
                    "tags": [
                        {"name": n, "ref": f"refs/tags/{n}", "targetCommit": c}
                        for n, c in sorted(r.tags.items())
                    ],
                    "converts": [],
                    "pullRequests": [],
                },
            )

        def tag(self, query, repo, rev) -> None:
            body = self._json()
            if not self._authorized(required=True) or (r := self._repo(repo)) is None:
                return
            commit = r.resolve(rev)
            if commit is None:
                self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
                return
            if body["tag"] in r.tags:
                self._error(409, f"Tag {body['tag']} already exists")
                return
            r.tags[body["tag"]] = commit.oid
            self._send(200, {})

        def validate_yaml(self, query) -> None:
            body = self._json()
            errors = _validate_card(body.get("content", ""))
            self._send(
                400 if errors else 200, {"errors": [{"message": e} for e in errors], "warnings": []}
            )

    return Handler


class _nolock:
    def __enter__(self):
        return self

    def __exit__(self, *_):
        return False


def _validate_card(content: str) -> list[str]:
    """The checks the Hub's validate-yaml makes that a card can get wrong."""
    match = re.match(r"^---\n(.*?)\n---\n", content, re.S)
    if not match:
        return []
    try:
        meta = yaml.safe_load(match[1]) or {}
    except yaml.YAMLError as exc:
        return [f"YAML: {exc}"]
    if not isinstance(meta, dict):
        return ["metadata must be a mapping"]
    errors = []
    for key in ("license", "pipeline_tag", "library_name"):
        if key in meta and not isinstance(meta[key], str):
            errors.append(f'"{key}" must be a string')
    if "tags" in meta and not (
        isinstance(meta["tags"], list) and all(isinstance(t, str) for t in meta["tags"])
    ):
        errors.append('"tags" must be an array of strings')
    base = meta.get("base_model")
    if base is not None and not (
        isinstance(base, str) or (isinstance(base, list) and all(isinstance(b, str) for b in base))
    ):
        errors.append('"base_model" must be a string or an array of strings')
    relation = meta.get("base_model_relation")
    if relation is not None:
        if relation not in VALID_RELATIONS:
            errors.append(f'"base_model_relation" must be one of {sorted(VALID_RELATIONS)}')
        if base is None:
            errors.append('"base_model_relation" needs "base_model"')
    return errors
