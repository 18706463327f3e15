"""The per-run event log: one writer, any number of readers, each with its own cursor.

Run lifetime is separate from reader lifetime: the run appends whether or not anyone reads, and a
reader that attaches late (or re-attaches after a dropped connection) continues from the `seq`
it last saw with no gap and no duplicate. Readers wait on a future that the next append
resolves, so a token reaches a reader in the same loop iteration: no polling, no sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from agentcast.errors import ResumeGap
from agentcast.events import BaseEvent

__all__ = ["EventLog", "ResumeGap"]


class EventLog:
    """An append-only, bounded sequence of one run's events, indexed by `seq`.

    `next_seq` is the `seq` the next appended event will have.

    Args:
        limit: how many events to retain; older ones are dropped in batches once the log
            holds twice as many, so trimming costs O(1) amortized per append.
    """

    __slots__ = ("_closed", "_events", "_first_seq", "_limit", "_waiters", "next_seq")

    def __init__(self, limit: int = 100_000) -> None:
        self._events: list[BaseEvent] = []
        self._first_seq = 0
        self._limit = limit
        self._closed = False
        self._waiters: list[asyncio.Future[None]] = []
        # A plain attribute, not a property: readers check it twice per token.
        self.next_seq = 0

    @property
    def closed(self) -> bool:
        """Whether the run has ended (no event will be appended any more)."""
        return self._closed

    def append(self, event: BaseEvent) -> None:
        """Append an event (its `seq` must be `next_seq`) and wake the waiting readers."""
        events = self._events
        events.append(event)
        self.next_seq += 1
        if len(events) > 2 * self._limit:
            drop = len(events) - self._limit
            del events[:drop]
            self._first_seq += drop
        if self._waiters:
            self._wake()

    @property
    def first_seq(self) -> int:
        """The oldest `seq` still retained."""
        return self._first_seq

    def get(self, seq: int) -> BaseEvent:
        """Return the retained event with this `seq`."""
        return self._events[seq - self._first_seq]

    def waiter(self) -> asyncio.Future[None]:
        """Return a future that resolves at the next append (or at close)."""
        waiter = asyncio.get_running_loop().create_future()
        if self._closed:
            waiter.set_result(None)
        else:
            self._waiters.append(waiter)
        return waiter

    def close(self) -> None:
        """Mark the log complete; readers finish after the last event."""
        self._closed = True
        self._wake()

    def snapshot(self) -> list[BaseEvent]:
        """Return the retained events."""
        return list(self._events)

    async def read(self, after: int = -1) -> AsyncIterator[BaseEvent]:
        """Yield every event with `seq > after`, live, until the log is closed.

        Raises:
            ResumeGap: events after `after` were already dropped from the bounded log.
        """
        position = after + 1
        while True:
            index = position - self._first_seq
            if index < 0:
                raise ResumeGap(
                    f"events after seq {after} are no longer retained "
                    f"(the oldest kept is {self._first_seq})"
                )
            events = self._events
            while index < len(events):
                yield events[index]
                position += 1
                # The log may have been trimmed while we were suspended in `yield`.
                index = position - self._first_seq
                events = self._events
                if index < 0:
                    raise ResumeGap(f"the reader fell behind the retained log at seq {position}")
            if self._closed:
                return
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()
