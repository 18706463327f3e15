"""Reading a run's log for one connection: the runtime's `LogReader`, with heartbeats.

Shared by the SSE and WebSocket routes; the cursor, resume check, token filter and heartbeat
are the runtime's (`agentcast.runtime.LogReader`), so every consumer reads the log one way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from agentcast.events import BaseEvent
from agentcast.runtime import HEARTBEAT, EventLog, LogReader

__all__ = ["HEARTBEAT", "check_resume", "read_events"]


def read_events(
    log: EventLog, *, after: int, heartbeat: float, stream_tokens: bool = True
) -> AsyncIterator[BaseEvent | object]:
    """Return the log's events with `seq > after` (and `HEARTBEAT`s while idle) until it closes.

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
