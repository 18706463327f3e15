"""`EventStream`: one run's events read off the server's SSE stream, resumed when it breaks.

Events arrive as SSE messages (`event: <type>`, `data: <the event's flat JSON>`, `id: <seq>`),
read with httpx-sse and decoded by `agentcast.encoders.sse.decode_event`, so each is the very
struct `Agent.astream` yields. A connection that breaks mid-run (a reset, a proxy timeout, a
stream that ends without `agent_end`) is resumed at `GET /runs/{run_id}/stream` with
`Last-Event-ID` set to the last seq delivered. Reconnects are bounded, with exponential
backoff, and events are deduped by seq. The consumer sees every event once, in order, up to
`agent_end`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import anyio
import httpx
from httpx_sse import EventSource

from agentcast._backoff import backoff_delay
from agentcast.client._errors import ClientError, ConnectionLost, StreamError
from agentcast.client._http import (
    RESUMABLE,
    RETRY_STATUSES,
    UNREACHABLE,
    Connection,
    quote,
    reason,
)
from agentcast.encoders.sse import decode_event
from agentcast.errors import AgentcastError, InvalidInput
from agentcast.events import EVENT_TYPES, BaseEvent

__all__ = ["EventStream", "Reconnect", "StreamRequest", "join_request"]


@dataclass(frozen=True)
class StreamRequest:
    """The request that opens an event stream: `POST /invoke` or `GET /runs/{id}/stream`."""

    method: str
    path: str
    body: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reconnect:
    """How a broken stream is resumed (see `AsyncClient`'s arguments of the same names)."""

    max_reconnects: int
    backoff: float
    max_backoff: float


def join_request(run_id: str, stream_tokens: bool) -> StreamRequest:
    """The request that joins (or resumes) a run's stream."""
    params = {} if stream_tokens else {"stream_tokens": "false"}
    return StreamRequest("GET", f"/runs/{quote(run_id)}/stream", None, params)


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
        connection: Connection,
        reconnect: Reconnect,
        request: StreamRequest,
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
        self._connection = connection
        self._events = _follow(connection, reconnect, self, request)

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
        response = await self._connection.send("POST", f"/runs/{quote(self.run_id)}/cancel")
        result: dict[str, Any] = response.json()
        return result

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


async def _follow(
    connection: Connection, reconnect: Reconnect, stream: EventStream, first: StreamRequest
) -> AsyncGenerator[BaseEvent, None]:
    base_url = connection.base_url
    request = first
    failures = 0  # attempts in a row that delivered no event
    while True:
        resuming = request is not first
        cause: BaseException | None = None
        try:
            async with connection.stream(
                request.method,
                request.path,
                json=request.body,
                params=request.params,
                headers=_cursor(request, stream.last_seq),
            ) as response:
                await _check_stream(connection, response, stream, resuming=resuming)
                stream.run_id = response.headers.get("x-run-id") or stream.run_id
                stream.session_id = response.headers.get("x-session-id") or stream.session_id
                async for sse in EventSource(response).aiter_sse():
                    # httpx-sse also dispatches a blank "message" after a heartbeat comment,
                    # and a newer server may send types this client does not know: skip both.
                    if sse.event not in EVENT_TYPES:
                        continue
                    event = _decode(sse.event, sse.data, response)
                    if event.seq <= stream.last_seq:
                        continue  # delivered before the reconnect
                    stream.last_seq = event.seq
                    failures = 0
                    yield event
                    if event.type == "agent_end":
                        return
        except UNREACHABLE as exc:
            if not resuming:  # nothing reached the server: no run was started
                raise connection.unreachable(exc) from exc
            cause = exc
        except RESUMABLE as exc:
            cause = exc
        except _RetryableStatus as exc:
            cause = exc.error
        if cause is None and await _ended_before(connection, stream):
            return  # joined at or after the end of a finished run: nothing more to come
        # The connection broke, or the stream ended without `agent_end`: resume it.
        if stream.run_id is None:
            raise ConnectionLost(
                f"the connection to {base_url} broke before the server named the run"
                f" ({reason(cause)}); the run may have started: see GET /sessions",
                url=base_url,
            ) from cause
        failures += 1
        if failures > reconnect.max_reconnects:
            raise ConnectionLost(
                f"the event stream of run {stream.run_id} broke after seq {stream.last_seq}"
                f" and {reconnect.max_reconnects} reconnect attempts to {base_url} failed"
                f" ({reason(cause)})",
                run_id=stream.run_id,
                last_seq=stream.last_seq,
                url=base_url,
            ) from cause
        await anyio.sleep(
            backoff_delay(failures, base=reconnect.backoff, cap=reconnect.max_backoff)
        )
        request = join_request(stream.run_id, stream.stream_tokens)
        stream.reconnects += 1


async def _ended_before(connection: Connection, stream: EventStream) -> bool:
    """Whether the run has ended and `stream` has every event up to its last."""
    if stream.run_id is None:
        return False
    try:
        status = (await connection.send("GET", f"/runs/{quote(stream.run_id)}")).json()
    except AgentcastError:
        return False  # the resume attempt will tell what is wrong
    return bool(status.get("status") == "finished" and status["last_seq"] <= stream.last_seq)


async def _check_stream(
    connection: Connection, response: httpx.Response, stream: EventStream, *, resuming: bool
) -> None:
    if response.is_error:
        await response.aread()
        error = connection.error(response)
        if not resuming:
            raise error
        if response.status_code in RETRY_STATUSES:
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


def _cursor(request: StreamRequest, last_seq: int) -> dict[str, str]:
    # POST /invoke starts a run: there is nothing to resume from.
    return {"Last-Event-ID": str(last_seq)} if request.method == "GET" and last_seq >= 0 else {}


def _decode(event_type: str, data: str, response: httpx.Response) -> BaseEvent:
    try:
        return decode_event(event_type, data)
    except InvalidInput as exc:
        raise StreamError(
            f"undecodable event from {response.request.url}: {exc.message}",
            url=str(response.request.url),
        ) from exc
