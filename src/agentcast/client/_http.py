"""One HTTP connection to an agentcast server: requests, timeouts, and the error each failure is.

`Connection` is what `AsyncClient` and its event streams share: the httpx client with the
server's URL, the key and the timeouts, and the one mapping of a failed request (no server, an
HTTP error status, a body that is not agentcast's) onto agentcast's errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import quote as _url_quote

import httpx

from agentcast.client._errors import (
    ClientError,
    ConnectionLost,
    NotFound,
    ServerError,
    ServerUnreachable,
    Unauthorized,
)
from agentcast.errors import AgentcastError, ConfigError, InvalidInput, SessionBusy

__all__ = ["RESUMABLE", "RETRY_STATUSES", "UNREACHABLE", "Connection", "quote", "reason"]

RESUMABLE = (httpx.NetworkError, httpx.RemoteProtocolError, httpx.TimeoutException)
"""A stream that breaks with one of these is resumed; anything else is not a network accident."""

UNREACHABLE = (httpx.ConnectError, httpx.ConnectTimeout)
"""No connection could be opened: nothing reached the server."""

RETRY_STATUSES = frozenset({502, 503, 504})
"""Statuses of a proxy or load balancer between the client and a worker: worth another try."""


class Connection:
    """The httpx client of one server, with agentcast's timeouts and error mapping.

    Args:
        base_url: the server's URL (http or https).
        api_key: sent as `Authorization: Bearer <key>`, when given.
        timeout: seconds to connect, and to wait for a request that answers at once.
        read_timeout: seconds of silence after which an event stream is taken for dead.
        headers: extra headers sent with every request.
        transport: an httpx transport, or None for the network.

    Raises:
        ConfigError: the URL is not http(s).
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        timeout: float | None,
        read_timeout: float | None,
        headers: Mapping[str, str] | None,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        url = base_url.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"the server URL must start with http:// or https://, got {base_url!r}"
            )
        from agentcast._version import __version__

        self.base_url = url
        sent = {"User-Agent": f"agentcast-client/{__version__}", **(headers or {})}
        if api_key:
            sent["Authorization"] = f"Bearer {api_key}"
        self._timeout = httpx.Timeout(timeout)
        self._stream_timeout = httpx.Timeout(timeout, read=read_timeout)
        self._run_timeout = httpx.Timeout(timeout, read=None)  # invoke waits for the whole run
        self._http = httpx.AsyncClient(
            base_url=url, headers=sent, timeout=self._timeout, transport=transport
        )

    async def send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        whole_run: bool = False,
    ) -> httpx.Response:
        """Send a request that answers at once (or, with `whole_run`, when a run has ended).

        Raises:
            ServerUnreachable: no connection to the server.
            ConnectionLost: the connection broke before the answer.
            AgentcastError: the server answered with an error status (see `error`).
        """
        try:
            response = await self._http.request(
                method,
                path,
                json=json,
                params=params,
                timeout=self._run_timeout if whole_run else self._timeout,
            )
        except UNREACHABLE as exc:
            raise self.unreachable(exc) from exc
        except httpx.TransportError as exc:
            raise ConnectionLost(
                f"{method} {self.base_url}{path} failed: {reason(exc)}", url=self.base_url
            ) from exc
        if response.is_error:
            raise self.error(response)
        return response

    def stream(
        self,
        method: str,
        path: str,
        *,
        json: Any,
        params: Mapping[str, Any],
        headers: Mapping[str, str],
    ) -> AbstractAsyncContextManager[httpx.Response]:
        """Open a streamed response, with the event stream's read timeout."""
        return self._http.stream(
            method,
            path,
            json=json,
            params=params,
            headers=headers,
            timeout=self._stream_timeout,
        )

    def unreachable(self, exc: Exception) -> ServerUnreachable:
        """The error of a request that could not reach the server."""
        return ServerUnreachable(
            f"cannot reach the agentcast server at {self.base_url} ({reason(exc)})",
            url=self.base_url,
        )

    def error(self, response: httpx.Response) -> AgentcastError:
        """The error an HTTP error response stands for (its body read already)."""
        status = response.status_code
        code, message = _error_body(response)
        url = str(response.request.url)
        if status == 409:
            return SessionBusy(message, code=code)
        if status in (400, 410, 413, 422):
            return InvalidInput(message, code=code)
        if status in (401, 403):
            return Unauthorized(message, code=code, status_code=status, url=url)
        if status == 404:
            return NotFound(f"{message} on {self.base_url}", code=code, status_code=status, url=url)
        if status >= 500:
            return ServerError(
                f"the server failed ({status}): {message}", code=code, status_code=status, url=url
            )
        return ClientError(f"HTTP {status}: {message}", code=code, status_code=status, url=url)

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()


def quote(key: str) -> str:
    """Return an id quoted as one path segment."""
    return _url_quote(key, safe="")


def reason(exc: BaseException | None) -> str:
    """Say in a few words why a request or a stream failed (None: it ended early)."""
    if exc is None:
        return "the stream ended before agent_end"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _error_body(response: httpx.Response) -> tuple[str, str]:
    fallback = f"http_{response.status_code}"
    try:
        error = response.json()["error"]
        return str(error.get("code") or fallback), str(error["message"])
    except Exception:  # noqa: BLE001 - not agentcast's error body (a proxy's page, plain text)
        text = response.text.strip()[:200]
        return fallback, text or response.reason_phrase or fallback
