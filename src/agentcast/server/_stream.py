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

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

from starlette.types import Scope

from agentcast.encoders import ProtocolEncoder, encode_event
from agentcast.events import BaseEvent
from agentcast.runtime import (
    HEARTBEAT,
    EventLog,
    LogReader,
    ManagedRun,
    RunManager,
    TokenBuffer,
)
from agentcast.server._body import (
    BACKLOG,
    EventStreamResponse,
    Projection,
    StreamBody,
    WriteStats,
)
from agentcast.server._transport import DirectBody

__all__ = [
    "BACKLOG",
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

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}
"""Headers of every event stream: no caching, no proxy buffering."""


class _Native:
    closes_on_gap = False
    # The encoder itself, not a method calling it: one Python call less per token.
    frames = staticmethod(encode_event)

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
        StreamBody(
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
