"""The body of an event stream: the loop that writes a run's events, and its ASGI response.

Under `agentcast serve`, `EventStreamResponse` sends the head and hands the body to the
connection (`DirectBody.take_over`): the ASGI call returns, which frees the request's task
and the two dozen middleware and routing coroutines it was suspended in, and the body goes
on in a task of its own (`StreamBody.run_direct`), written straight to the connection. Once
caught up it hands the writing to the run's own task (`PushWriter`), so nothing wakes the
stream per token; the protocol reports a lost connection, so no task waits on `receive`.
Elsewhere (another ASGI server, a middleware that must see the body) `StreamBody.run` writes
through ASGI's `send` in a task of its own (a write per token resumes only that loop, not
the request's call chain) while another task waits for the disconnect. Either loop writes
every event a wake-up finds in one write, joining a long backlog's tokens (a slow client
catches up with the same text in fewer frames).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from agentcast.encoders import PING
from agentcast.errors import ResumeGap
from agentcast.events import BaseEvent
from agentcast.runtime import HEARTBEAT, LogReader, ManagedRun, RunManager, TokenBuffer, coalesce
from agentcast.server._push import PushWriter
from agentcast.server._transport import DirectBody

__all__ = ["BACKLOG", "EventStreamResponse", "Projection", "StreamBody", "WriteStats"]

BACKLOG = 64
"""Events found at one wake-up from which a reader counts as behind: its adjacent tokens of
one call are then joined (`agentcast.runtime.coalesce`), the same text in fewer frames."""


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


Write = Callable[[bytes], Awaitable[None] | None]
"""Writes one chunk of the body; returns what to wait for before the next, or None."""


class StreamBody:
    """What one event stream writes, and how (see the module's docstring).

    Args:
        manager: counts the stream as a reader of the run (the disconnect policy).
        managed: the run.
        projection: the protocol's bytes of each event.
        heartbeat: seconds of silence after which a comment keeps the line alive.
        after: the resume cursor (checked by `event_stream` before the response).
        stream_tokens: False leaves out `llm_token` events.
        buffer: joins tokens by count and time, as the stream's options ask.
        stats: the write counters.
        direct: returns the connection's `DirectBody` once the head went out, or None.
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
        self.heartbeat = heartbeat
        self.stream_tokens = stream_tokens
        self.buffer = buffer
        self.stats = stats
        self.direct = direct
        self.reader = LogReader(managed.run.log, after, tokens=stream_tokens, heartbeat=heartbeat)
        self.gone = False
        """Set when the client disconnected (what the ASGI path learns from `receive`)."""
        self._push: PushWriter | None = None

    def disconnected(self) -> None:
        """The client left: stop, also while waiting for the run."""
        self.gone = True
        self.reader.interrupt()
        if self._push is not None:
            self._push.stop()

    def direct_body(self, scope: Scope) -> DirectBody | None:
        """The connection's `DirectBody`, when this stream may write straight to it."""
        return self.direct(scope) if self.direct is not None else None

    async def run(self, send: Send) -> None:
        """Write the stream's body through ASGI's `send` (its head is sent), and its end."""

        async def via_asgi(data: bytes) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": True})

        # The reader is counted from here: whatever ends the body uncounts it (the
        # disconnect policy applies to a failed send, a dropped socket, a cancelled task).
        # `manager.reader()` inlined: its generator and context manager are ~0.4 KB a stream.
        self.manager.attach(self.managed)
        try:
            await self._write_all(via_asgi, lambda: self.gone)
        finally:
            self.manager.detach(self.managed)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def run_direct(self, body: DirectBody) -> None:
        """Write the stream's body straight to the connection (its head is sent), and its end.

        Run by `body` once it took the response over: the connection's loss reaches the
        stream through `body.on_lost`, and the end goes out through `body.end()`.
        """
        body.on_lost = self.disconnected
        self.manager.attach(self.managed)  # as in `run`
        try:
            self.stats.direct += 1
            gone = lambda: body.disconnected or self.gone  # noqa: E731
            if self.buffer is None:
                await self._push_all(body, gone)
            else:
                await self._write_all(body.write, gone)
        finally:
            self.manager.detach(self.managed)
            body.on_lost = None
        await body.end()

    def _batch(self, events: list[BaseEvent]) -> bytes:
        """The bytes of the events one wake-up found, counted as one write."""
        frames = self.projection.frames
        if len(events) >= BACKLOG:  # the reader fell behind (a slow client): join its tokens
            events = coalesce(events)
        data = frames(events[0]) if len(events) == 1 else b"".join(map(frames, events))
        if data:
            self.stats.writes += 1
            self.stats.events += len(events)
        return data

    def _write_batch(self, write: Write, events: list[BaseEvent]) -> Awaitable[None] | None:
        # Not in `_push_all`'s locals: that frame then sleeps in `push.wait()` for the rest of
        # the stream, and would keep the catch-up batch's bytes (~0.7 KB a stream) alive.
        data = self._batch(events)
        return write(data) if data else None

    async def _push_all(self, body: DirectBody, gone: Callable[[], bool]) -> None:
        # Catch up in batches; once caught up, let the run's task write (`PushWriter`).
        reader, log = self.reader, self.managed.run.log
        while not gone():
            try:
                ready = reader.take_ready()
            except ResumeGap:
                if not self.projection.closes_on_gap:
                    raise
                break
            if ready:
                pending = self._write_batch(body.write, ready)
                if pending is not None:
                    await pending
                continue
            if log.closed or reader.stopped:
                break
            push = PushWriter(
                log,
                reader,
                body,
                self.projection.frames,
                self.stats,
                tokens=self.stream_tokens,
                heartbeat=self.heartbeat,
            )
            self._push = push
            try:
                await push.wait()
            finally:
                self._push = None
            if push.failed is not None:
                raise push.failed
            if push.drain is not None:
                await push.drain
            if push.ping_due:
                pending = body.write(PING)
                if pending is not None:
                    await pending
        await self._end(body.write, gone)

    async def _write_all(self, write: Write, gone: Callable[[], bool]) -> None:
        reader, buffer = self.reader, self.buffer
        source: AsyncIterator[Any] = reader if buffer is None else buffer.events(reader)
        try:
            async for item in source:
                if item is HEARTBEAT:
                    data = PING
                elif buffer is None:
                    data = self._batch([item, *reader.take_ready()])
                else:  # a buffered stream's batches are the buffer's to make
                    data = self._batch([item])
                if data:
                    pending = write(data)
                    if pending is not None:
                        await pending
                if gone():
                    return
        except ResumeGap:
            if not self.projection.closes_on_gap:
                raise
        finally:
            if buffer is not None:
                await source.aclose()  # type: ignore[attr-defined]
        await self._end(write, gone)

    async def _end(self, write: Write, gone: Callable[[], bool]) -> None:
        tail = self.projection.end()
        if tail and not gone():
            pending = write(tail)
            if pending is not None:
                await pending


class EventStreamResponse(Response):
    """A `text/event-stream` response whose body is a run's events, written by `StreamBody`.

    Not a `StreamingResponse`: no async generator or task group between the log and the
    socket, and nothing per token in the request's task. A direct body outlives the ASGI
    call (see the module's docstring); an ASGI one is written by a task of its own, while
    another waits for the client's disconnect and the request's task waits for either.
    """

    media_type = "text/event-stream"

    def __init__(
        self, body: StreamBody, status_code: int = 200, *, headers: Mapping[str, str]
    ) -> None:
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
        direct = body.direct_body(scope)
        if direct is not None:
            # The app returns now, and frees the request's task with the middleware and
            # routing coroutines it is suspended in: the body goes on in a task of its own
            # (`DirectBody.take_over`), which wakes only at the stream's ends, for a drain or
            # a heartbeat (once caught up, the run's task writes each event).
            direct.take_over(body.run_direct(direct))
            return
        writer = asyncio.ensure_future(body.run(send))
        listener = asyncio.ensure_future(_until_disconnect(receive))
        try:
            # This task wakes once in a stream's life: when the writer is done (the end was
            # sent, or it failed: its error then ends the response and closes the
            # connection), or when the client left first (the writer is told, and stops).
            await asyncio.wait((writer, listener), return_when=asyncio.FIRST_COMPLETED)
            if not writer.done():
                body.disconnected()
            await writer
        except OSError:  # the client went away mid-write (ASGI 2.4 servers raise it)
            return
        finally:
            listener.cancel()
            if not writer.done():  # this task was cancelled (a shutdown): so is the writer
                writer.cancel()


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
