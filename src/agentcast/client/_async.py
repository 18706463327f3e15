"""`AsyncClient`: an agentcast server's runs, as the same event objects as the in-process API.

    async with AsyncClient("http://127.0.0.1:8000") as client:
        async with client.stream("What is 25 * 4?", session_id="s1") as events:
            async for event in events:
                ...

Events arrive as SSE messages (`id: <seq>`, `event: <type>`, `data: <canonical JSON>`) and are
decoded with `agentcast.events.from_json`, so each is the very dataclass `Agent.astream`
yields. A connection that breaks mid-run (a reset, a proxy timeout, a stream that ends
without `agent_end`) is resumed at `GET /runs/{run_id}/stream` with `Last-Event-ID` set to the
last seq delivered. Reconnects are bounded, with exponential backoff, and events are deduped
by seq. The consumer sees every event once, in order, up to `agent_end`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import quote

import anyio
import httpx
from httpx_sse import EventSource

from agentcast._backoff import backoff_delay
from agentcast.client._errors import (
    ClientError,
    ConnectionLost,
    NotFound,
    ServerError,
    ServerUnreachable,
    StreamError,
    Unauthorized,
)
from agentcast.errors import AgentcastError, ConfigError, InvalidInput, SessionBusy
from agentcast.events import EVENT_TYPES, BaseEvent, from_json

__all__ = ["AsyncClient", "EventStream"]

# A stream that breaks with one of these is resumed; anything else is not a network accident.
_RESUMABLE = (httpx.NetworkError, httpx.RemoteProtocolError, httpx.TimeoutException)
_UNREACHABLE = (httpx.ConnectError, httpx.ConnectTimeout)
_RETRY_STATUSES = frozenset({502, 503, 504})  # a proxy or load balancer between us and a worker


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    body: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)


class _RetryableStatus(Exception):
    """A resume request got a 502/503/504: worth another attempt."""

    def __init__(self, error: AgentcastError) -> None:
        super().__init__(error.message)
        self.error = error


class EventStream:
    """The events of one run read from a server: an async iterator and async context manager.

    Nothing is sent before the first event is awaited. `run_id` and `session_id` are set as
    soon as the server has answered (from `X-Run-Id` / `X-Session-Id`). Leaving early does not
    stop the run on the server: call `cancel()` for that (the server's disconnect policy
    cancels a run nobody reads after a grace period).

    Attributes:
        run_id: the run, once known.
        session_id: the run's session, once known.
        last_seq: the seq of the last event delivered (-1: none yet); the resume cursor.
        reconnects: how many times the stream was resumed after a broken connection.
        stream_tokens: False when `llm_token` events are left out.
    """

    def __init__(
        self,
        client: AsyncClient,
        request: _Request,
        *,
        run_id: str | None = None,
        after: int = -1,
        stream_tokens: bool = True,
    ) -> None:
        self.run_id = run_id
        self.session_id: str | None = None
        self.last_seq = after
        self.reconnects = 0
        self.stream_tokens = stream_tokens
        self._client = client
        self._events = client._follow(self, request)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> BaseEvent:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        """Close the connection (the run goes on on the server)."""
        await self._events.aclose()

    async def cancel(self) -> dict[str, Any]:
        """Cancel the run on the server; keep iterating to receive its closers and `agent_end`.

        Raises:
            ClientError: the server has not named the run yet.
        """
        if self.run_id is None:
            raise ClientError("the server has not started the run yet: nothing to cancel")
        return await self._client.cancel(self.run_id)

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


class AsyncClient:
    """An async client of an agentcast server (`agentcast serve`, `create_app`).

    Args:
        base_url: the server's URL, e.g. `http://127.0.0.1:8000`.
        api_key: sent as `Authorization: Bearer <key>` when the server requires keys.
        timeout: seconds to connect, and to wait for a request that answers at once.
        read_timeout: seconds of silence after which an event stream is taken for dead and
            resumed (the server sends a heartbeat every 15 s by default); None: no limit.
        max_reconnects: attempts to resume a broken stream in a row without receiving an
            event; the count starts again after each event received.
        backoff: seconds before the first resume attempt; doubled at each attempt after.
        max_backoff: the longest wait between two attempts.
        headers: extra headers sent with every request.
        transport: an httpx transport (e.g. `httpx.ASGITransport(app)` for an in-process
            server, `httpx.MockTransport` in tests).

    Raises:
        ConfigError: the URL is not http(s), or a retry setting is negative.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout: float | None = 30.0,
        read_timeout: float | None = 60.0,
        max_reconnects: int = 5,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        url = base_url.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"the server URL must start with http:// or https://, got {base_url!r}"
            )
        if max_reconnects < 0 or backoff < 0 or max_backoff < 0:
            raise ConfigError("max_reconnects, backoff and max_backoff must not be negative")
        from agentcast._version import __version__

        self.base_url = url
        self.max_reconnects = max_reconnects
        self.backoff = backoff
        self.max_backoff = max_backoff
        sent = {"User-Agent": f"agentcast-client/{__version__}", **(headers or {})}
        if api_key:
            sent["Authorization"] = f"Bearer {api_key}"
        self._timeout = httpx.Timeout(timeout)
        self._stream_timeout = httpx.Timeout(timeout, read=read_timeout)
        self._run_timeout = httpx.Timeout(timeout, read=None)  # invoke waits for the whole run
        self._http = httpx.AsyncClient(
            base_url=url, headers=sent, timeout=self._timeout, transport=transport
        )

    # -- runs ---------------------------------------------------------------------------------

    def stream(
        self,
        prompt: str,
        *,
        session_id: str | None = None,
        stream_tokens: bool = True,
        actor_id: str | None = None,
        custom_data: Any = None,
    ) -> EventStream:
        """Start a run (`POST /invoke`, `stream: true`) and iterate its events to `agent_end`.

        The events are those `Agent.astream` yields for the same run. `stream_tokens=False`
        leaves out `llm_token` events only.

        Raises:
            InvalidInput: the server refused the request (an empty prompt: 422).
            SessionBusy: a run is active on the session (409).
            Unauthorized: a key is required and missing or wrong (401).
            ServerUnreachable: no connection to the server.
            ConnectionLost: the stream broke and could not be resumed.
            StreamError: the response is not an agentcast event stream.
        """
        body = {
            "prompt": prompt,
            "session_id": session_id,
            "actor_id": actor_id,
            "stream": True,
            "stream_tokens": stream_tokens,
            "custom_data": custom_data,
        }
        return EventStream(self, _Request("POST", "/invoke", body), stream_tokens=stream_tokens)

    def join(self, run_id: str, *, after: int = -1, stream_tokens: bool = True) -> EventStream:
        """Attach to a running or finished run and iterate its events with `seq > after`.

        Raises:
            NotFound: the server has no such run (unknown, expired, another key's).
            InvalidInput: `after` is past the run's end, or no longer retained (410).
        """
        return EventStream(
            self,
            _join(run_id, stream_tokens),
            run_id=run_id,
            after=after,
            stream_tokens=stream_tokens,
        )

    async def invoke(
        self,
        prompt: str,
        *,
        session_id: str | None = None,
        actor_id: str | None = None,
        custom_data: Any = None,
    ) -> dict[str, Any]:
        """Run the agent to its end (`POST /invoke`, `stream: false`) and return the result.

        Returns:
            `{output, session_id, run_id, steps, metrics, outcome, error}`; a failed run is a
            result with `outcome` "error", not an exception.
        """
        body = {
            "prompt": prompt,
            "session_id": session_id,
            "actor_id": actor_id,
            "stream": False,
            "custom_data": custom_data,
        }
        response = await self._send("POST", "/invoke", json=body, limits=self._run_timeout)
        result: dict[str, Any] = response.json()
        return result

    async def cancel(self, run_id: str) -> dict[str, Any]:
        """Cancel a run; it ends with its closers and `agent_end(outcome="cancelled")`.

        Returns:
            `{run_id, status}`: status "cancelling", or "finished" when it had ended already.
        """
        response = await self._send("POST", f"/runs/{_quote(run_id)}/cancel")
        result: dict[str, Any] = response.json()
        return result

    async def run(self, run_id: str) -> dict[str, Any]:
        """Return a run's status.

        Returns:
            `{run_id, session_id, status ("running"/"finished"), last_seq, readers, outcome,
            output, metrics}`.
        """
        response = await self._send("GET", f"/runs/{_quote(run_id)}")
        result: dict[str, Any] = response.json()
        return result

    # -- sessions -----------------------------------------------------------------------------

    async def history(self, session_id: str) -> list[dict[str, Any]]:
        """Return a session's messages (user, assistant with tool calls, tool results).

        Raises:
            NotFound: the session has no history (or belongs to another key).
        """
        response = await self._send("GET", f"/sessions/{_quote(session_id)}")
        messages: list[dict[str, Any]] = response.json()["messages"]
        return messages

    async def delete_session(self, session_id: str) -> None:
        """Delete a session's history.

        Raises:
            NotFound: no such session.
        """
        await self._send("DELETE", f"/sessions/{_quote(session_id)}")

    async def sessions(self, limit: int = 100) -> list[dict[str, Any]]:
        """Return the sessions, most recent first."""
        response = await self._send("GET", "/sessions", params={"limit": limit})
        found: list[dict[str, Any]] = response.json()["sessions"]
        return found

    async def health(self) -> dict[str, Any]:
        """Return `GET /healthz`: `{status, active_runs, agent}`."""
        response = await self._send("GET", "/healthz")
        result: dict[str, Any] = response.json()
        return result

    # -- lifecycle ----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- internals ----------------------------------------------------------------------------

    async def _follow(
        self, stream: EventStream, first: _Request
    ) -> AsyncGenerator[BaseEvent, None]:
        request = first
        failures = 0  # attempts in a row that delivered no event
        while True:
            resuming = request is not first
            cause: BaseException | None = None
            try:
                async with self._http.stream(
                    request.method,
                    request.path,
                    json=request.body,
                    params=request.params,
                    headers=_cursor(request, stream.last_seq),
                    timeout=self._stream_timeout,
                ) as response:
                    await self._check_stream(response, stream, resuming=resuming)
                    stream.run_id = response.headers.get("x-run-id") or stream.run_id
                    stream.session_id = response.headers.get("x-session-id") or stream.session_id
                    async for sse in EventSource(response).aiter_sse():
                        # httpx-sse also dispatches a blank "message" after a heartbeat comment,
                        # and a newer server may send types this client does not know: skip both.
                        if sse.event not in EVENT_TYPES:
                            continue
                        event = _decode(sse.data, response)
                        if event.seq <= stream.last_seq:
                            continue  # delivered before the reconnect
                        stream.last_seq = event.seq
                        failures = 0
                        yield event
                        if event.type == "agent_end":
                            return
            except _UNREACHABLE as exc:
                if not resuming:  # nothing reached the server: no run was started
                    raise self._unreachable(exc) from exc
                cause = exc
            except _RESUMABLE as exc:
                cause = exc
            except _RetryableStatus as exc:
                cause = exc.error
            if cause is None and await self._ended_before(stream):
                return  # joined at or after the end of a finished run: nothing more to come
            # The connection broke, or the stream ended without `agent_end`: resume it.
            if stream.run_id is None:
                raise ConnectionLost(
                    f"the connection to {self.base_url} broke before the server named the run"
                    f" ({_reason(cause)}); the run may have started: see GET /sessions",
                    url=self.base_url,
                ) from cause
            failures += 1
            if failures > self.max_reconnects:
                raise ConnectionLost(
                    f"the event stream of run {stream.run_id} broke after seq {stream.last_seq}"
                    f" and {self.max_reconnects} reconnect attempts to {self.base_url} failed"
                    f" ({_reason(cause)})",
                    run_id=stream.run_id,
                    last_seq=stream.last_seq,
                    url=self.base_url,
                ) from cause
            await anyio.sleep(backoff_delay(failures, base=self.backoff, cap=self.max_backoff))
            request = _join(stream.run_id, stream.stream_tokens)
            stream.reconnects += 1

    async def _ended_before(self, stream: EventStream) -> bool:
        """Whether the run has ended and `stream` has every event up to its last."""
        if stream.run_id is None:
            return False
        try:
            status = await self.run(stream.run_id)
        except AgentcastError:
            return False  # the resume attempt will tell what is wrong
        return bool(status.get("status") == "finished" and status["last_seq"] <= stream.last_seq)

    async def _check_stream(
        self, response: httpx.Response, stream: EventStream, *, resuming: bool
    ) -> None:
        if response.is_error:
            await response.aread()
            error = self._http_error(response)
            if not resuming:
                raise error
            if response.status_code in _RETRY_STATUSES:
                raise _RetryableStatus(error)
            raise ConnectionLost(
                f"the event stream of run {stream.run_id} broke after seq {stream.last_seq}"
                f" and cannot be resumed: {error.message}",
                run_id=stream.run_id,
                last_seq=stream.last_seq,
                url=str(response.request.url),
            ) from error
        content_type = response.headers.get("content-type", "").partition(";")[0].strip()
        if content_type != "text/event-stream":
            raise StreamError(
                f"expected an event stream (text/event-stream) from {response.request.url},"
                f" got {content_type or 'no content type'!r}",
                status_code=response.status_code,
                url=str(response.request.url),
            )

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        limits: httpx.Timeout | None = None,
    ) -> httpx.Response:
        try:
            response = await self._http.request(
                method, path, json=json, params=params, timeout=limits or self._timeout
            )
        except _UNREACHABLE as exc:
            raise self._unreachable(exc) from exc
        except httpx.TransportError as exc:
            raise ConnectionLost(
                f"{method} {self.base_url}{path} failed: {_reason(exc)}", url=self.base_url
            ) from exc
        if response.is_error:
            raise self._http_error(response)
        return response

    def _unreachable(self, exc: Exception) -> ServerUnreachable:
        return ServerUnreachable(
            f"cannot reach the agentcast server at {self.base_url} ({_reason(exc)})",
            url=self.base_url,
        )

    def _http_error(self, response: httpx.Response) -> AgentcastError:
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


def _join(run_id: str, stream_tokens: bool) -> _Request:
    params = {} if stream_tokens else {"stream_tokens": "false"}
    return _Request("GET", f"/runs/{_quote(run_id)}/stream", None, params)


def _cursor(request: _Request, last_seq: int) -> dict[str, str]:
    # POST /invoke starts a run: there is nothing to resume from.
    return {"Last-Event-ID": str(last_seq)} if request.method == "GET" and last_seq >= 0 else {}


def _quote(key: str) -> str:
    return quote(key, safe="")


def _decode(data: str, response: httpx.Response) -> BaseEvent:
    try:
        return from_json(data)
    except InvalidInput as exc:
        raise StreamError(
            f"undecodable event from {response.request.url}: {exc.message}",
            url=str(response.request.url),
        ) from exc


def _error_body(response: httpx.Response) -> tuple[str, str]:
    fallback = f"http_{response.status_code}"
    try:
        error = response.json()["error"]
        return str(error.get("code") or fallback), str(error["message"])
    except Exception:  # noqa: BLE001 - not agentcast's error body (a proxy's page, plain text)
        text = response.text.strip()[:200]
        return fallback, text or response.reason_phrase or fallback


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return "the stream ended before agent_end"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
