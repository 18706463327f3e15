"""One way to stream a run over HTTP: the log's reader, one projection, one write per wake-up.

Every SSE route (`/invoke`, `/runs/{id}/stream`, `/agui`, `/api/chat`) streams through
`event_stream`: the runtime's `LogReader` (cursor, resume check, token filter, heartbeat), the
manager's reader accounting (`RunManager.reader`: the disconnect policy), and a `Projection`
that turns events into the protocol's bytes. When a wake-up finds several events logged
(a fast model, a busy loop), their frames go out in one write: one transport send instead of
one per event; when it finds a long backlog (a client that reads slower than the model
writes), adjacent tokens of one LLM call are joined first, so a slow reader catches up with
the same text in fewer frames and the run never waits for it (the log absorbs the lag).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from agentcast.encoders import PING, ProtocolEncoder, encode_event
from agentcast.errors import ResumeGap
from agentcast.events import BaseEvent
from agentcast.runtime import (
    HEARTBEAT,
    EventLog,
    LogReader,
    ManagedRun,
    RunManager,
    TokenBuffer,
    coalesce,
)
from agentcast.server._transport import DirectBody

__all__ = [
    "HEARTBEAT",
    "SSE_HEADERS",
    "EncoderProjection",
    "EventStreamResponse",
    "Projection",
    "WriteStats",
    "check_resume",
    "event_stream",
    "native_projection",
    "read_events",
]

BACKLOG = 64
"""Events found at one wake-up from which a reader counts as behind: its adjacent tokens of
one call are then joined (`agentcast.runtime.coalesce`), the same text in fewer frames."""

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}
"""Headers of every event stream: no caching, no proxy buffering."""


class WriteStats:
    """How many writes the event streams made and how many events they carried.

    Two ints, bumped once per write; `/metrics` exports them as `agentcast_stream_writes_total`
    and `agentcast_stream_events_total` (their ratio is the events per write), and the
    streams written straight to the connection (`DirectBody`) as `agentcast_stream_direct_total`.
    """

    __slots__ = ("direct", "events", "writes")

    def __init__(self) -> None:
        self.writes = 0
        self.events = 0
        self.direct = 0


class Projection(Protocol):
    """Turns a run's events into one protocol's bytes, for `event_stream`."""

    closes_on_gap: bool
    """Whether a reader that fell behind the bounded log ends the stream with `end()` (a
    protocol with a terminal error chunk) rather than breaking the connection (native SSE,
    whose client resumes with `Last-Event-ID` and gets the 410)."""

    def frames(self, event: BaseEvent) -> bytes:
        """The bytes of one event (empty when the protocol shows nothing for it)."""
        ...

    def end(self) -> bytes:
        """The bytes that end the stream, once, after the log's last event."""
        ...


class _Native:
    closes_on_gap = False

    def frames(self, event: BaseEvent) -> bytes:
        return encode_event(event)

    def end(self) -> bytes:
        return b""


def native_projection() -> Projection:
    """Agentcast's own SSE frames (`encoders.sse`)."""
    return _Native()


class EncoderProjection:
    """A `ProtocolEncoder`'s chunks, each framed by `frame`, plus a fixed trailer at the end.

    Args:
        encoder: the protocol encoder (one per stream: it holds what is open).
        frame: the SSE message of one chunk.
        trailer: bytes after the encoder's closing chunks (the UI message stream's `[DONE]`).
    """

    closes_on_gap = True

    def __init__(
        self, encoder: ProtocolEncoder[Any], frame: Callable[[Any], bytes], trailer: bytes = b""
    ) -> None:
        self.encoder = encoder
        self._frame = frame
        self._trailer = trailer

    def frames(self, event: BaseEvent) -> bytes:
        """The framed chunks of one event."""
        return self._join(self.encoder.encode(event))

    def end(self) -> bytes:
        """The framed closing chunks, then the trailer."""
        return self._join(self.encoder.close()) + self._trailer

    def _join(self, chunks: Iterable[Any]) -> bytes:
        return b"".join(map(self._frame, chunks))


def read_events(
    log: EventLog, *, after: int, heartbeat: float, stream_tokens: bool = True
) -> AsyncIterator[BaseEvent | object]:
    """Return the log's events with `seq > after` (and `HEARTBEAT`s while idle) until it closes.

    For transports that send one message per event (the WebSocket).

    Raises:
        ResumeGap: `after` is older than what the bounded log still holds.
        InvalidInput: `after` is past the run's last event.
    """
    return LogReader(log, after, tokens=stream_tokens, heartbeat=heartbeat)


def check_resume(log: EventLog, after: int) -> None:
    """Refuse a resume cursor the log cannot serve, before a response or frame is sent.

    Raises:
        ResumeGap: events after `after` are no longer retained.
        InvalidInput: `after` is past the run's last event.
    """
    log.check_resume(after)


def event_stream(
    manager: RunManager,
    managed: ManagedRun,
    projection: Projection,
    *,
    heartbeat: float,
    after: int = -1,
    stream_tokens: bool = True,
    headers: Mapping[str, str] = {},
    buffer: TokenBuffer | None = None,
    stats: WriteStats | None = None,
    direct: Callable[[Scope], DirectBody | None] | None = None,
) -> EventStreamResponse:
    """Return the SSE response of a run's events after `after`, through `projection`.

    The resume cursor is checked here, before any byte is sent. With `buffer`, tokens are
    joined as the stream's options ask (by count and time, `TokenBuffer.events`). `stats`
    counts the writes and the events they carried. `direct` returns, once the head went out,
    the connection's `DirectBody` when the body may bypass the ASGI send chain (or None).

    Raises:
        ResumeGap: `after` is older than what the bounded log still holds.
        InvalidInput: `after` is past the run's last event.
    """
    check_resume(managed.run.log, after)
    return EventStreamResponse(
        _Body(
            manager,
            managed,
            projection,
            heartbeat=heartbeat,
            after=after,
            stream_tokens=stream_tokens,
            buffer=buffer,
            stats=stats if stats is not None else WriteStats(),
            direct=direct,
        ),
        headers=dict(SSE_HEADERS, **headers),
    )


class _Body:
    """What one event stream writes, and how: the loop that `EventStreamResponse` runs.

    The loop runs in a task of its own (`EventStreamResponse`), so a wake-up per token resumes
    this loop and the reader, not the two dozen coroutines of the ASGI app's middleware and
    routing that the request's own task is nested in.
    """

    def __init__(
        self,
        manager: RunManager,
        managed: ManagedRun,
        projection: Projection,
        *,
        heartbeat: float,
        after: int,
        stream_tokens: bool,
        buffer: TokenBuffer | None,
        stats: WriteStats,
        direct: Callable[[Scope], DirectBody | None] | None,
    ) -> None:
        self.manager = manager
        self.managed = managed
        self.projection = projection
        self.buffer = buffer
        self.stats = stats
        self.direct = direct
        self.reader = LogReader(managed.run.log, after, tokens=stream_tokens, heartbeat=heartbeat)
        self.gone = False
        """Set when the client disconnected (what the ASGI path learns from `receive`)."""

    def disconnected(self) -> None:
        """The client left: stop, also while waiting for the run."""
        self.gone = True
        self.reader.interrupt()

    async def run(self, scope: Scope, send: Send) -> None:
        """Write the stream's body (its head is sent) and its end, unless the client left."""
        body = self.direct(scope) if self.direct is not None else None
        # The reader is counted from here: whatever ends the body uncounts it (the
        # disconnect policy applies to a failed send, a dropped socket, a cancelled task).
        with self.manager.reader(self.managed):
            if body is not None:
                self.stats.direct += 1
                await self._write_all(body.write, lambda: body.disconnected or self.gone)
            else:

                async def via_asgi(data: bytes) -> None:
                    await send({"type": "http.response.body", "body": data, "more_body": True})

                await self._write_all(via_asgi, lambda: self.gone)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _write_all(
        self, write: Callable[[bytes], Awaitable[None] | None], gone: Callable[[], bool]
    ) -> None:
        projection, counts, buffer, reader = self.projection, self.stats, self.buffer, self.reader
        frames = projection.frames
        source: AsyncIterator[Any] = reader if buffer is None else buffer.events(reader)
        try:
            async for item in source:
                if item is HEARTBEAT:
                    data, sent = PING, 0
                else:
                    # A buffered stream's batches are the buffer's to make.
                    ready = reader.take_ready() if buffer is None else ()
                    sent = 1 + len(ready)
                    if not ready:
                        data = frames(item)
                    elif len(ready) < BACKLOG:
                        data = b"".join([frames(item), *map(frames, ready)])
                    else:  # the reader fell behind (a slow client): join its tokens
                        data = b"".join(map(frames, coalesce([item, *ready])))
                if data:
                    if sent:
                        counts.writes += 1
                        counts.events += sent
                    pending = write(data)
                    if pending is not None:
                        await pending
                if gone():
                    return
        except ResumeGap:
            if not projection.closes_on_gap:
                raise
        finally:
            if buffer is not None:
                await source.aclose()  # type: ignore[attr-defined]
        tail = projection.end()
        if tail and not gone():
            pending = write(tail)
            if pending is not None:
                await pending


class EventStreamResponse(Response):
    """A `text/event-stream` response whose body is a run's events, written by `_Body`.

    Not a `StreamingResponse`: the body is written by a task of its own (straight to the
    connection under `agentcast serve`, see `DirectBody`) while the request's task waits for
    the client's disconnect: two tasks, as a `StreamingResponse` has, but no async generator
    or task group between the log and the socket, and nothing per token in the request's task.
    """

    media_type = "text/event-stream"

    def __init__(self, body: _Body, status_code: int = 200, *, headers: Mapping[str, str]) -> None:
        self._body = body
        self.status_code = status_code
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the head, then the body until the run's log ends or the client leaves."""
        body = self._body
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        writer = asyncio.ensure_future(body.run(scope, send))
        try:
            # Once the body's end is sent, `receive` answers `http.disconnect` (ASGI): this
            # task wakes twice in a stream's life, at its end or at the client's leaving.
            while (await receive())["type"] != "http.disconnect":
                pass
            if not writer.done():
                body.disconnected()
            await writer
        except OSError:  # the client went away mid-write (ASGI 2.4 servers raise it)
            return
        finally:
            if not writer.done():  # this task was cancelled (a shutdown): so is the writer
                writer.cancel()
