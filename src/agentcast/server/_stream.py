"""Reading a run's log for one connection: resume cursor, token filter, heartbeats.

Shared by the SSE and WebSocket routes. A reader waits on the log's next append or on a
heartbeat timer, whichever comes first; nothing polls.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from agentcast.errors import InvalidInput
from agentcast.events import BaseEvent, LLMToken
from agentcast.runtime import EventLog, ResumeGap

__all__ = ["HEARTBEAT", "check_resume", "read_events"]

HEARTBEAT = object()
"""Yielded instead of an event when the run was silent for a heartbeat interval."""


async def read_events(
    log: EventLog, *, after: int, heartbeat: float, stream_tokens: bool = True
) -> AsyncIterator[BaseEvent | object]:
    """Yield the log's events with `seq > after` (and `HEARTBEAT`s while idle) until it closes.

    Raises:
        ResumeGap: `after` is older than what the bounded log still holds.
    """
    loop = asyncio.get_running_loop()
    check_resume(log, after)
    cursor = after + 1
    while True:
        while cursor < log.next_seq:
            event = log.get(cursor)
            cursor += 1
            if stream_tokens or event.__class__ is not LLMToken:
                yield event
        if log.closed:
            return
        waiter = log.waiter()
        timer = loop.call_later(heartbeat, _resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            waiter.cancel()
        if cursor >= log.next_seq and not log.closed:
            yield HEARTBEAT


def check_resume(log: EventLog, after: int) -> None:
    """Refuse a resume cursor the log cannot serve: the one decision for SSE and WebSocket.

    Called before a response or frame is sent, so a refused resume is a clear error (HTTP 410
    or 400, a `ws_error` frame) rather than a stream that ends at once.

    Raises:
        ResumeGap: events after `after` are no longer retained.
        InvalidInput: `after` is past the run's last event (once the run ended), or more than
            one past it while it runs.
    """
    if after + 1 < log.first_seq:
        raise ResumeGap(
            f"events after seq {after} are no longer retained (the oldest kept is {log.first_seq})"
        )
    if after >= log.next_seq and (log.closed or after > log.next_seq):
        raise InvalidInput(f"seq {after} is past this run's last event ({log.next_seq - 1})")


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
