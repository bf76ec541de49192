"""The OpenAI-compatible endpoint, on one injected httpx client (sync for smoke, async for bench).

Every failure of the server comes back as a typed error: `RequestRejected` (an HTTP error
status, with the server's own words), `ServerGone` (refused, reset or closed mid-stream,
timed out), `BadAnswer` (an answer that is not a valid completion).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx

from glm51.endpoint.stream import (
    Accumulator,
    Completion,
    ProtocolViolation,
    Streamed,
    parse_completion,
)
from glm51.errors import InfraError, InputError

Message = Mapping[str, Any]


class EndpointError(InfraError):
    """The endpoint failed a request."""


class RequestRejected(EndpointError):
    def __init__(self, url: str, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"{url} answered HTTP {status}: {_said(detail)}")


def _said(detail: str) -> str:
    """An answer's body for one error line: an HTML page (a proxy's, a static server's) by its
    text, whitespace folded, cut at 300 characters."""
    if detail.lstrip().startswith("<"):
        detail = "HTML page: " + re.sub(r"<[^>]*>", " ", detail)
    folded = " ".join(detail.split())
    return folded if len(folded) <= 300 else folded[:300] + "..."


class Unauthorized(InputError):
    """HTTP 401: the endpoint wants an API key that was not sent, or not this one."""

    def __init__(self, url: str, sent_key: bool) -> None:
        why = (
            "the key sent was refused (a wrong key): check --api-key-file or $GLM51_API_KEY"
            if sent_key
            else "no API key was sent and the endpoint wants one: give --api-key-file FILE "
            "or set $GLM51_API_KEY (the recipe's deploy.api_key_env)"
        )
        super().__init__(f"{url} answered HTTP 401: {why}")


def _rejected(url: str, response: httpx.Response, sent_key: bool) -> Exception:
    """The error for a refused request: a 401 is bad input (the key), the rest the server's."""
    if response.status_code == 401:
        return Unauthorized(url, sent_key)
    return RequestRejected(url, response.status_code, _detail(response))


def _has_key(client: httpx.Client | httpx.AsyncClient) -> bool:
    return "authorization" in client.headers


class ServerGone(EndpointError):
    """Connection refused or reset, the stream cut short, or no answer in time."""


class BadAnswer(EndpointError):
    """An answer that is not a valid chat completion."""


def base_url(url: str, *, option: str = "--endpoint") -> str:
    """`http://h:p`, `http://h:p/`, `http://h:p/v1` all mean the same server. Anything that
    is not an http(s) URL with a host is bad input (exit 3) naming ``option``, not a server
    that failed."""
    parsed = httpx.URL(url) if "://" in url else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise InputError(f"{option} {url!r}: expected an http(s) URL, e.g. http://127.0.0.1:5000")
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def chat_body(
    model: str, messages: Sequence[Message], *, stream: bool, **params: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": list(messages), **params}
    body = {k: v for k, v in body.items() if v is not None}
    if stream:
        body["stream"] = True
        options = dict(body.get("stream_options") or {})
        options.setdefault("include_usage", True)
        body["stream_options"] = options
    return body


def _transport_error(url: str, exc: Exception) -> ServerGone:
    if isinstance(exc, httpx.TimeoutException):
        return ServerGone(f"{url}: no answer in time ({type(exc).__name__})")
    if isinstance(exc, httpx.ConnectError):
        return ServerGone(f"{url}: cannot connect ({exc})")
    return ServerGone(
        f"{url}: the server closed the connection mid-answer ({exc or type(exc).__name__})"
    )


def _detail(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    if isinstance(data, dict):
        err = data.get("detail") or data.get("error") or data.get("message") or data
        if isinstance(err, dict):
            err = err.get("message") or err
        return str(err)
    return str(data)


@contextlib.contextmanager
def _stream_errors(url: str) -> Iterator[None]:
    """A stream's transport failures and protocol violations, as the typed errors."""
    try:
        yield
    except httpx.HTTPError as exc:
        raise _transport_error(url, exc) from None
    except ProtocolViolation as exc:
        raise BadAnswer(f"{url}: {exc}") from None


def _finish_stream(url: str, acc: Accumulator) -> Streamed:
    result = acc.result(time.perf_counter())
    if not result.done_marker and result.finish_reason is None:
        raise ServerGone(
            f"{url}: the stream ended after {result.chunks} chunk(s) without a finish_reason "
            "or [DONE] (the server died or cut the answer)"
        )
    return result


def spec_accept_length(info: Mapping[str, Any] | None) -> float | None:
    """SGLang's average speculative accept length from /server_info: at the top level
    (older releases) or in `internal_states`; None when the server reports none."""
    if not info:
        return None
    for state in [info, *(info.get("internal_states") or [])]:
        if isinstance(state, Mapping) and state.get("avg_spec_accept_length") is not None:
            return float(state["avg_spec_accept_length"])
    return None


class Endpoint:
    """Synchronous client: health, models, server info, chat completions (whole or streamed)."""

    def __init__(self, url: str, model: str, client: httpx.Client) -> None:
        self.url = base_url(url)
        self.model = model
        self.client = client

    def _get(self, path: str) -> httpx.Response:
        url = self.url + path
        try:
            return self.client.get(url)
        except httpx.HTTPError as exc:
            raise _transport_error(url, exc) from None

    def health(self) -> int:
        """The HTTP status of GET /health."""
        return self._get("/health").status_code

    def models(self) -> list[str]:
        response = self._get("/v1/models")
        if response.status_code != 200:
            raise _rejected(self.url + "/v1/models", response, _has_key(self.client))
        try:
            return [str(m["id"]) for m in response.json()["data"]]
        except (ValueError, KeyError, TypeError):
            raise BadAnswer(
                f"{self.url}/v1/models: not a model list: {response.text[:300]}"
            ) from None

    def check_access(self) -> None:
        """Raise Unauthorized if the endpoint refuses this client's key (or its lack): a
        one-token chat, since a gateway may answer /v1/models without a key (smg does)."""
        with contextlib.suppress(EndpointError):  # down or odd: the caller's checks say so
            self.chat([{"role": "user", "content": "Hi"}], max_tokens=1)

    def server_info(self) -> dict[str, Any] | None:
        """SGLang's /server_info (older: /get_server_info); None when the server has neither."""
        for path in ("/server_info", "/get_server_info"):
            response = self._get(path)
            if response.status_code == 200:
                try:
                    data = response.json()
                except ValueError:
                    return None
                return data if isinstance(data, dict) else None
        return None

    def chat(self, messages: Sequence[Message], **params: Any) -> Completion:
        url = self.url + "/v1/chat/completions"
        body = chat_body(self.model, messages, stream=False, **params)
        try:
            response = self.client.post(url, json=body)
        except httpx.HTTPError as exc:
            raise _transport_error(url, exc) from None
        if response.status_code != 200:
            raise _rejected(url, response, _has_key(self.client))
        try:
            return parse_completion(response.json())
        except (ValueError, ProtocolViolation) as exc:
            raise BadAnswer(f"{url}: {exc}") from None

    def stream(self, messages: Sequence[Message], **params: Any) -> Streamed:
        url = self.url + "/v1/chat/completions"
        body = chat_body(self.model, messages, stream=True, **params)
        acc = Accumulator(time.perf_counter())
        with _stream_errors(url), self.client.stream("POST", url, json=body) as response:
            if response.status_code != 200:
                response.read()
                raise _rejected(url, response, _has_key(self.client))
            for line in response.iter_lines():
                if not acc.feed_line(line, time.perf_counter()):
                    break
        return _finish_stream(url, acc)


class AsyncEndpoint:
    """Asynchronous streaming for the bench: many streams on one pooled httpx.AsyncClient."""

    def __init__(self, url: str, model: str, client: httpx.AsyncClient) -> None:
        self.url = base_url(url)
        self.model = model
        self.client = client

    async def stream(self, messages: Sequence[Message], **params: Any) -> Streamed:
        url = self.url + "/v1/chat/completions"
        body = chat_body(self.model, messages, stream=True, **params)
        acc = Accumulator(time.perf_counter())
        with _stream_errors(url):
            async with self.client.stream("POST", url, json=body) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise _rejected(url, response, _has_key(self.client))
                async for line in response.aiter_lines():
                    if not acc.feed_line(line, time.perf_counter()):
                        break
        return _finish_stream(url, acc)


def _auth(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def sync_client(timeout_s: float, api_key: str | None = None) -> httpx.Client:
    return httpx.Client(timeout=httpx.Timeout(timeout_s, connect=10.0), headers=_auth(api_key))


def async_client(
    concurrency: int, timeout_s: float, api_key: str | None = None
) -> httpx.AsyncClient:
    """Connection limits that match the concurrency: one kept-alive connection per stream."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s, connect=10.0), limits=limits, headers=_auth(api_key)
    )
