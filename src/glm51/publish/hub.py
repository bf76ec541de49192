"""The Hub, through huggingface_hub's HfApi (1.x and 2.x alike), behind one small adapter.

Every call goes through ``_errors``, which turns the client's exceptions into glm51's typed
errors with a one-line message: 401/403 are bad input (the token), a dropped connection or a
5xx is an infrastructure failure that a re-run resumes. The token is handed to HfApi's
constructor only: it never reaches an argv, a log line, an exception message or a report
(messages are scrubbed of it all the same).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from glm51.errors import InfraError, InputError
from glm51.publish.plan import RemoteFile, RemoteState

log = logging.getLogger(__name__)


def _hub():
    import huggingface_hub  # imported on use: `glm51 --help` stays light

    return huggingface_hub


class Hub:
    """One repo-independent client. ``token=None``: HF_TOKEN or the huggingface_hub login."""

    def __init__(self, endpoint: str | None = None, token: str | None = None) -> None:
        hub = _hub()
        self._token = token if token is not None else hub.get_token()
        self.api = hub.HfApi(endpoint=endpoint, token=self._token or None)
        self.endpoint = self.api.endpoint
        self.version = hub.__version__

    @property
    def has_token(self) -> bool:
        return bool(self._token)

    def scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        errors = _hub().errors
        try:
            yield
        except errors.HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            server = ""
            with contextlib.suppress(Exception):
                server = str(exc.response.json().get("error") or "")
            why = self.scrub(f" ({server})" if server else "")
            if status in (401, 403):
                raise InputError(
                    f"the Hub at {self.endpoint} refused the credentials while {action}: "
                    f"{status}{why}. "
                    + (
                        "Set HF_TOKEN to a token with write access, or run `hf auth login`."
                        if status == 401 or not self.has_token
                        else "The token lacks write access to this repo."
                    )
                ) from None
            if status is not None and status >= 500:
                raise InfraError(
                    f"the Hub at {self.endpoint} answered {status} while {action}{why}; that "
                    "step was not applied. Re-run `glm51 publish` to resume."
                ) from None
            raise InfraError(
                f"the Hub at {self.endpoint} answered {status} while {action}{why}"
            ) from None
        except ValueError as exc:
            # Raised before anything is sent: the card's metadata (validate-yaml) or a
            # malformed answer.
            kind = InputError if "metadata" in str(exc) else InfraError
            raise kind(f"{action}: {self.scrub(str(exc))}") from None
        except (OSError, RuntimeError) as exc:
            # Dropped connections arrive as httpx errors (OSError-like), or wrapped by the
            # LFS uploader in a RuntimeError ("Error while uploading ...").
            cause = exc.__cause__ or exc
            raise InfraError(
                f"lost the connection to {self.endpoint} while {action} "
                f"({type(cause).__name__}: {self.scrub(str(cause))[:200]}). Files already "
                "committed stay on the Hub: re-run `glm51 publish` to finish the job."
            ) from None
        except Exception as exc:
            if type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "h11"):
                raise InfraError(
                    f"lost the connection to {self.endpoint} while {action} "
                    f"({type(exc).__name__}). Re-run `glm51 publish` to finish the job."
                ) from None
            raise

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
            tagged = self._files(repo, tags[version]) if version in tags else None
        return RemoteState(True, head, files, tags, tagged)

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
        return info.oid

    def commit_files(
        self, repo: str, files: dict[str, bytes | Path], message: str, parent: str | None
    ) -> str:
        """One commit of small files (the card among them); ``parent`` makes it atomic
        against a concurrent push."""
        hub = _hub()
        ops = [
            hub.CommitOperationAdd(
                path_in_repo=path, path_or_fileobj=str(src) if isinstance(src, Path) else src
            )
            for path, src in sorted(files.items())
        ]
        with self._errors(f"committing the card and {len(files) - 1} small file(s) to {repo}"):
            info = self.api.create_commit(
                repo, ops, commit_message=message, repo_type="model", parent_commit=parent
            )
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
