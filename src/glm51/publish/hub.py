"""The Hub, through huggingface_hub's HfApi (1.x and 2.x alike), behind one small adapter.

Every call goes through ``_errors``, which turns the client's exceptions into glm51's typed
errors with a one-line message: 401/403 are bad input (the token), offline mode and a bad
endpoint URL are bad input, a refused connection, an unknown host, a timeout, a dropped
connection or a 5xx are infrastructure failures, each in its own words. "Files already
committed stay on the Hub" is said only when this run made a commit. Every request has a
connect and read timeout (``timeout``). The token is handed to HfApi's constructor only: it
never reaches an argv, a log line, an exception message or a report (messages are scrubbed
of it all the same).
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

from glm51.errors import Glm51Error, InfraError, InputError, from_os_error
from glm51.publish.plan import RemoteFile, RemoteState

log = logging.getLogger(__name__)


def _hub():
    # Imported on use (`glm51 --help` stays light). The submodules this adapter reads are
    # imported by name: huggingface_hub 2.x loads them lazily, so an attribute access alone
    # fails when nothing else imported them first.
    import huggingface_hub
    import huggingface_hub.constants
    import huggingface_hub.errors
    import huggingface_hub.utils

    return huggingface_hub


DEFAULT_TIMEOUT_S = 60.0
_TIMEOUTS = frozenset(
    {"ConnectTimeout", "ReadTimeout", "WriteTimeout", "PoolTimeout", "TimeoutException"}
) | {"TimeoutError", "timeout"}
_TRANSPORT = ("httpx", "httpx2", "httpcore", "httpcore2", "h11")
_DNS_WORDS = (
    "Name or service not known",
    "nodename nor servname",
    "name resolution",
    "getaddrinfo",
)


def check_endpoint(endpoint: str | None) -> None:
    """A Hub URL that cannot be one is bad input, refused before anything is tried."""
    if endpoint is None:
        return
    problem = None
    try:
        url = urlparse(endpoint)
        url.port  # noqa: B018  # raises for a port that is no number or out of range
    except ValueError as exc:
        problem = str(exc)
    else:
        if url.scheme not in ("http", "https") or not url.hostname:
            problem = "no http(s) scheme and host"
        elif url.username or url.password:
            problem = "credentials in the URL (the token comes from HF_TOKEN)"
    if problem:
        raise InputError(
            f"--hub-endpoint (HF_ENDPOINT) {_no_userinfo(endpoint)!r}: expected an http(s) URL "
            f"such as https://huggingface.co ({problem})"
        )


def _no_userinfo(endpoint: str) -> str:
    scheme, sep, rest = endpoint.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else endpoint


def check_online() -> None:
    """HF_HUB_OFFLINE makes every Hub call fail: say so before any work, not mid-upload."""
    if _hub().constants.HF_HUB_OFFLINE:
        raise InputError(
            "HF_HUB_OFFLINE is set: publish reads and writes the Hub, which offline mode "
            "forbids; unset HF_HUB_OFFLINE (or set it to 0) to publish"
        )


def _timed_client_factory(timeout_s: float):
    """huggingface_hub's own client (its hooks and redirects), with a connect and read
    timeout: a Hub that accepts the connection and never answers fails in ``timeout_s``."""
    import huggingface_hub.utils._http as http

    def factory():
        client = http.default_client_factory()
        client.timeout = type(client.timeout)(timeout_s, connect=min(timeout_s, 30.0))
        return client

    return factory


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


class Hub:
    """One repo-independent client. ``token=None``: HF_TOKEN or the huggingface_hub login."""

    def __init__(
        self,
        endpoint: str | None = None,
        token: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        check_endpoint(endpoint)
        hub = _hub()
        hub.set_client_factory(_timed_client_factory(timeout_s))
        self._token = token if token is not None else hub.get_token()
        self.api = hub.HfApi(endpoint=endpoint, token=self._token or None)
        self.endpoint = self.api.endpoint
        self.version = hub.__version__
        self.timeout_s = timeout_s
        self.commits_made = 0  # by this run: what an interruption leaves on the Hub

    @property
    def has_token(self) -> bool:
        return bool(self._token)

    def scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except Glm51Error:
            raise
        except Exception as exc:
            typed = self._typed(exc, action)
            if typed is None:
                raise  # none of the outside world's faults: a bug, shown as one
            raise typed from None

    def _http_error(self, exc: Exception, action: str) -> Glm51Error:
        response = getattr(exc, "response", None)
        status = response.status_code if response is not None else None
        server = ""
        with contextlib.suppress(Exception):
            server = str(response.json().get("error") or "")
        why = self.scrub(f" ({server})" if server else "")
        if status in (401, 403):
            return InputError(
                f"the Hub at {self.endpoint} refused the credentials while {action}: "
                f"{status}{why}. "
                + (
                    "Set HF_TOKEN to a token with write access, or run `hf auth login`."
                    if status == 401 or not self.has_token
                    else "The token lacks write access to this repo."
                )
            )
        if status is not None and status >= 500:
            return InfraError(
                f"the Hub at {self.endpoint} answered {status} while {action}{why}; that "
                "step was not applied. Re-run `glm51 publish` to resume."
            )
        return InfraError(f"the Hub at {self.endpoint} answered {status} while {action}{why}")

    def _resume_hint(self) -> str:
        if self.commits_made:
            return (
                f" The {self.commits_made} commit(s) this run made stay on the Hub (untagged): "
                "re-run `glm51 publish` to finish the job."
            )
        return " Nothing was committed: re-run `glm51 publish` when the Hub is reachable."

    def _typed(self, exc: Exception, action: str) -> Glm51Error | None:
        """The outside world's fault, named by what it was; the client wraps them (the LFS
        uploader in a RuntimeError), so the chain of causes is read, the HTTP answer first.
        None when it is none of them: a bug."""
        chain = list(_chain(exc))
        http = _hub().errors.HfHubHTTPError
        for e in chain:
            if isinstance(e, http):
                return self._http_error(e, action)
        for e in chain:
            name, text = type(e).__name__, str(e)
            if name == "OfflineModeIsEnabled":
                return InputError(
                    f"HF_HUB_OFFLINE is set, so the Hub cannot be reached while {action}; "
                    "unset it to publish"
                )
            if name == "HFValidationError":
                return InputError(f"{action}: {self.scrub(text)}")
            if name in _TIMEOUTS:
                writing = action.startswith(("uploading", "committing", "tagging", "creating"))
                return InfraError(
                    f"the Hub at {self.endpoint} did not answer within {self.timeout_s:g} s "
                    f"(--hub-timeout) while {action}."
                    + (
                        " The Hub may still apply it: re-run `glm51 publish`, which checks what "
                        "the Hub holds before it uploads or tags anything."
                        if writing
                        else self._resume_hint()
                    )
                )
            if isinstance(e, ssl.SSLError):
                return InfraError(
                    f"TLS with the Hub at {self.endpoint} failed while {action} ({text[:160]}): "
                    "behind a proxy that re-signs HTTPS, point SSL_CERT_FILE at its CA bundle"
                )
            if any(w in text for w in _DNS_WORDS):
                return InfraError(
                    f"cannot resolve the Hub's host {urlparse(self.endpoint).hostname!r} while "
                    f"{action} (DNS: {self.scrub(text)[:120]}).{self._resume_hint()}"
                )
            if name == "ConnectionRefusedError" or "Connection refused" in text:
                return InfraError(
                    f"the Hub at {self.endpoint} refused the connection while {action} "
                    f"(nothing listens there).{self._resume_hint()}"
                )
        for e in chain:
            transport = type(e).__module__.split(".")[0] in _TRANSPORT
            if transport or isinstance(e, ConnectionError):
                return InfraError(
                    f"lost the connection to {self.endpoint} while {action} "
                    f"({type(e).__name__}: {self.scrub(str(e))[:200]}).{self._resume_hint()}"
                )
        for e in chain:
            if isinstance(e, OSError):  # a local file the client read: its own words
                return from_os_error(e)
            if isinstance(e, ValueError) and "metadata" in str(e):
                return InputError(f"{action}: {self.scrub(str(e))}")  # the card's metadata
        return None

    def validate_card(self, card: bytes) -> None:
        """The Hub's own check of the card's metadata (validate-yaml), before anything is
        created or uploaded: a card it rejects is bad input, found in seconds."""
        hub = _hub()
        with self._errors("checking the card's metadata with the Hub"):
            response = hub.utils.get_session().post(
                f"{self.endpoint}/api/validate-yaml",
                json={"repoType": "model", "content": card.decode("utf-8", "replace")},
                headers={"Accept": "text/plain"},
            )
            if response.status_code == 400:
                raise InputError(
                    "the card's metadata: the Hub rejects it: " + self.scrub(response.text)[:500]
                )
            hub.utils.hf_raise_for_status(response)

    # ---------------------------------------------------------------- reading
    def _files(self, repo: str, revision: str) -> dict[str, RemoteFile]:
        out = {}
        for entry in self.api.list_repo_tree(repo, revision=revision, recursive=True):
            if not hasattr(entry, "blob_id"):
                continue  # a folder
            lfs = getattr(entry, "lfs", None)
            out[entry.path] = RemoteFile(
                entry.path, int(entry.size), entry.blob_id, lfs.sha256 if lfs else None
            )
        return out

    def state(self, repo: str, version: str) -> RemoteState:
        """The repo's branch head, its files there, its tags, and the files at ``version``."""
        errors = _hub().errors
        with self._errors(f"reading {repo}"):
            try:
                refs = self.api.list_repo_refs(repo)
            except errors.RepositoryNotFoundError as exc:
                if exc.response is not None and exc.response.status_code == 401 and self.has_token:
                    raise  # a rejected token reads as "not found" on the Hub: say which
                return RemoteState(exists=False)
            head = next((b.target_commit for b in refs.branches if b.name == "main"), None)
            tags = {t.name: t.target_commit for t in refs.tags}
            files = self._files(repo, head) if head else {}
            trees = {name: self._files(repo, commit) for name, commit in tags.items()}
            tagged = trees.get(version)
            published = frozenset(p for tree in trees.values() for p in tree)
        return RemoteState(True, head, files, tags, tagged, published)

    def files_at(self, repo: str, revision: str) -> dict[str, RemoteFile]:
        with self._errors(f"listing {repo} at {revision[:12]}"):
            return self._files(repo, revision)

    def head(self, repo: str) -> str:
        with self._errors(f"reading {repo}'s branches"):
            refs = self.api.list_repo_refs(repo)
        return next(b.target_commit for b in refs.branches if b.name == "main")

    # ---------------------------------------------------------------- writing
    def create_repo(self, repo: str) -> None:
        with self._errors(f"creating {repo}"):
            self.api.create_repo(repo, repo_type="model", exist_ok=True)

    def upload_weights(self, repo: str, folder: Path, paths: tuple[str, ...], message: str) -> str:
        """One commit of these files, with upload_folder: streamed (and, with hf_xet,
        chunk-deduplicated and resumable inside the call)."""
        with self._errors(f"uploading {len(paths)} weight file(s) to {repo}"):
            info = self.api.upload_folder(
                repo_id=repo,
                folder_path=str(folder),
                allow_patterns=list(paths),
                commit_message=message,
                repo_type="model",
            )
        self.commits_made += 1
        return info.oid

    def commit_files(
        self,
        repo: str,
        files: dict[str, bytes | Path],
        message: str,
        parent: str | None,
        delete: tuple[str, ...] = (),
    ) -> str:
        """One commit of small files (the card among them) that also deletes ``delete``;
        ``parent`` makes it atomic against a concurrent push."""
        hub = _hub()
        ops: list = [
            hub.CommitOperationAdd(
                path_in_repo=path, path_or_fileobj=str(src) if isinstance(src, Path) else src
            )
            for path, src in sorted(files.items())
        ]
        ops += [hub.CommitOperationDelete(path_in_repo=path) for path in delete]
        what = f"{len(files)} file(s)" + (f" and deleting {len(delete)}" if delete else "")
        with self._errors(f"committing {what} to {repo}"):
            info = self.api.create_commit(
                repo, ops, commit_message=message, repo_type="model", parent_commit=parent
            )
        self.commits_made += 1
        return info.oid

    def tag(self, repo: str, version: str, revision: str, message: str) -> bool:
        """Create the tag; False when it already exists (it is never moved)."""
        errors = _hub().errors
        with self._errors(f"tagging {repo} {version}"):
            try:
                self.api.create_tag(repo, tag=version, revision=revision, tag_message=message)
            except errors.HfHubHTTPError as exc:
                if exc.response is not None and exc.response.status_code == 409:
                    return False
                raise
        return True
