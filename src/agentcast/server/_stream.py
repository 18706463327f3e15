"""Reading a run's log for one connection: resume cursor, token filter, heartbeats.

Shared by the SSE and WebSocket routes. A reader waits on the log's next append or on a
heartbeat timer, whichever comes first; nothing polls.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from agentcast.events import BaseEvent, LLMToken
from agentcast.runtime import EventLog

__all__ = ["HEARTBEAT", "read_events"]

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
    cursor = after + 1
    if cursor < log.first_seq:
        from agentcast.runtime import ResumeGap

        raise ResumeGap(
            f"events after seq {after} are no longer retained (the oldest kept is {log.first_seq})"
        )
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


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
