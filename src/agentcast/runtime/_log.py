"""The per-run event log: one writer, any number of readers, each with its own cursor.

Run lifetime is separate from reader lifetime: the run appends whether or not anyone reads, and a
reader that attaches late (or re-attaches after a dropped connection) continues from the `seq`
it last saw with no gap and no duplicate. Readers wait on a future that the next append
resolves, so a token reaches a reader in the same loop iteration: no polling, no sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final, Protocol

from agentcast.errors import InvalidInput, ResumeGap
from agentcast.events import BaseEvent, LLMToken

__all__ = ["HEARTBEAT", "EventLog", "LogListener", "LogReader", "ResumeGap"]

HEARTBEAT: Final = object()
"""Returned by a `LogReader` with a heartbeat instead of an event when the run was silent."""


class LogListener(Protocol):
    """Told of each append as it happens, in the appending task (`EventLog.listen`)."""

    def on_append(self, event: BaseEvent) -> bool:
        """Handle the event just appended; return False to stop listening. Must not raise."""
        ...

    def on_close(self) -> None:
        """The log closed (it stops listening then). Must not raise."""
        ...


class EventLog:
    """An append-only, bounded sequence of one run's events, indexed by `seq`.

    `next_seq` is the `seq` the next appended event will have.

    Args:
        limit: how many events to retain; older ones are dropped in batches once the log
            holds twice as many, so trimming costs O(1) amortized per append.
        first_seq: the `seq` of its first event: a copy of another process's log (a
            broker's replica) may start where that log's retained events start.
    """

    __slots__ = (
        "_closed",
        "_events",
        "_first_seq",
        "_limit",
        "_listeners",
        "_trim_at",
        "_waiter",
        "_waiters",
        "next_seq",
    )

    def __init__(self, limit: int = 100_000, first_seq: int = 0) -> None:
        self._events: list[BaseEvent] = []
        self._first_seq = first_seq
        self._limit = limit
        self._trim_at = 2 * limit
        self._closed = False
        # The readers waiting for the next append: the first in a slot of its own (the usual
        # case is one reader, woken once per token), any others in the list.
        self._waiter: asyncio.Future[None] | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._listeners: list[LogListener] = []
        # A plain attribute, not a property: readers check it twice per token.
        self.next_seq = first_seq

    @property
    def closed(self) -> bool:
        """Whether the run has ended (no event will be appended any more)."""
        return self._closed

    def append(self, event: BaseEvent) -> None:
        """Append an event (its `seq` must be `next_seq`) and wake the waiting readers."""
        events = self._events
        events.append(event)
        self.next_seq += 1
        if len(events) > self._trim_at:
            drop = len(events) - self._limit
            del events[:drop]
            self._first_seq += drop
        waiter = self._waiter
        if waiter is not None:
            # `_wake`, inlined for one reader: this runs once per token while it waits.
            self._waiter = None
            if not waiter.done():  # not when its reader was cancelled
                waiter.set_result(None)
            if self._waiters:
                self._wake()
        if self._listeners:
            self._tell(event)

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
        elif self._waiter is None:
            self._waiter = waiter
        else:
            self._waiters.append(waiter)
        return waiter

    def close(self) -> None:
        """Mark the log complete; readers finish after the last event."""
        self._closed = True
        self._wake()
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener.on_close()

    def listen(self, listener: LogListener) -> None:
        """Tell `listener` of every append from now on, synchronously, until it declines.

        What lets a reader that has caught up have each event written by the appending task
        itself, instead of being woken for it (a future, a loop callback, a task step per
        token). A closed log tells it `on_close()` at once.
        """
        if self._closed:
            listener.on_close()
        else:
            self._listeners.append(listener)

    def unlisten(self, listener: LogListener) -> None:
        """Stop telling `listener` (nothing when it is not listening)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _tell(self, event: BaseEvent) -> None:
        listeners = self._listeners
        if len(listeners) == 1:  # the usual case, once per token: no copy of the list
            listener = listeners[0]
            if not listener.on_append(event):
                self.unlisten(listener)
            return
        # No copy of the list per event (a replicated run has two listeners): a listener
        # never changes the list inside `on_append`, so the ones declining go after the loop.
        declined = [listener for listener in listeners if not listener.on_append(event)]
        for listener in declined:
            self.unlisten(listener)

    def snapshot(self) -> list[BaseEvent]:
        """Return the retained events."""
        return list(self._events)

    def check_resume(self, after: int) -> None:
        """Refuse a resume cursor this log cannot serve: the one decision for every reader.

        A reader checks it when it is created, so a refused resume is a clear error (HTTP 410
        or 400, a `ws_error` frame) rather than a stream that ends at once.

        Raises:
            ResumeGap: events after `after` are no longer retained.
            InvalidInput: `after` is past the run's last event (once the run ended), or more
                than one past it while it runs.
        """
        if after + 1 < self._first_seq:
            raise ResumeGap(
                f"events after seq {after} are no longer retained "
                f"(the oldest kept is {self._first_seq})"
            )
        if after >= self.next_seq and (self._closed or after > self.next_seq):
            raise InvalidInput(f"seq {after} is past this run's last event ({self.next_seq - 1})")

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        if self._waiter is not None:
            waiters.append(self._waiter)
            self._waiter = None
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class LogReader:
    """One reader of a log: its cursor, the resume check, the token filter, heartbeats.

    Every consumer of a run's events reads through this (`Run.events()`, the iterator
    `astream()` returns, event handlers, SSE and WebSocket). It is a plain async iterator,
    not an async generator: it holds nothing across the consumer's loop, and costs no
    generator resume per event.

    Args:
        log: the log to read.
        after: return events with `seq > after`; checked with `EventLog.check_resume`.
        tokens: False leaves out `llm_token` events.
        heartbeat: seconds of silence after which `HEARTBEAT` is returned instead of an
            event; None never returns it.

    Raises:
        ResumeGap: at creation, when `after` is older than what the log still holds.
        InvalidInput: at creation, when `after` is past the run's last event.
    """

    __slots__ = (
        "_closed",
        "_current",
        "_deadline",
        "_fired",
        "_heartbeat",
        "_log",
        "_loop",
        "_next",
        "_on_wait",
        "_timer",
        "_tokens",
    )

    def __init__(
        self,
        log: EventLog,
        after: int = -1,
        *,
        tokens: bool = True,
        heartbeat: float | None = None,
    ) -> None:
        log.check_resume(after)
        self._log = log
        self._next = after + 1
        self._tokens = tokens
        self._heartbeat = heartbeat
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop it reads on, once it waited
        self._on_wait: Callable[[], None] | None = None
        """Called before the reader next waits (a subclass's hook), unless None."""
        # The heartbeat: one timer per idle period, not one per wait (see `_silent`).
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._fired = False
        self._current: asyncio.Future[None] | None = None

    def __aiter__(self) -> LogReader:
        return self

    async def __anext__(self) -> BaseEvent:
        """Return the next event; wait for it when the reader has caught up with the run."""
        log = self._log
        while True:
            seq = self._next
            if seq < log.next_seq:
                # Every event logged since the last wake-up is returned without waiting. The
                # log's fields are read directly: this runs once per event.
                index = seq - log._first_seq  # noqa: SLF001
                if index < 0:
                    raise ResumeGap(f"the reader fell behind the retained log at seq {seq}")
                self._next = seq + 1
                event = log._events[index]  # noqa: SLF001
                if self._tokens or event.__class__ is not LLMToken:
                    return event
            elif self._closed or log._closed:  # noqa: SLF001
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                raise StopAsyncIteration
            else:
                if self._on_wait is not None:
                    self._on_wait()
                if self._heartbeat is None:
                    # `EventLog.waiter()` inlined (the log is open here): this runs once per
                    # token when the source hands over one token per loop iteration.
                    loop = self._loop
                    if loop is None:
                        loop = self._loop = asyncio.get_running_loop()
                    # `Future` itself: `loop.create_future()` is one Python call more.
                    waiter: asyncio.Future[None] = asyncio.Future(loop=loop)
                    if log._waiter is None:  # noqa: SLF001
                        log._waiter = waiter  # noqa: SLF001
                    else:
                        log._waiters.append(waiter)  # noqa: SLF001
                    self._current = waiter  # what `interrupt()` resolves
                    await waiter
                    self._current = None
                elif await self._silent(self._heartbeat):
                    # Only a reader created with a heartbeat (the server's) gets this.
                    return HEARTBEAT  # type: ignore[return-value]

    def take_ready(self) -> list[BaseEvent]:
        """Return, without waiting, every event already logged after the cursor (filtered).

        A writer that sends what a wake-up made available in one write (the server's
        streams) calls this after each `__anext__`: under load many events arrive between two
        wake-ups, and one send for all of them saves a system call and a transport write each.

        Raises:
            ResumeGap: the reader fell behind the retained log.
        """
        log = self._log
        start, end = self._next, log.next_seq
        if start >= end or self._closed:
            return []
        index = start - log._first_seq  # noqa: SLF001
        if index < 0:
            raise ResumeGap(f"the reader fell behind the retained log at seq {start}")
        ready = log._events[index : index + end - start]  # noqa: SLF001
        self._next = end
        if not self._tokens:
            ready = [event for event in ready if event.__class__ is not LLMToken]
        return ready

    @property
    def stopped(self) -> bool:
        """Whether `aclose()` or `interrupt()` was called."""
        return self._closed

    def passed(self, event: BaseEvent) -> None:
        """Count the event just logged as read (a listener wrote it for this reader)."""
        self._next = event.seq + 1

    async def aclose(self) -> None:
        """Stop reading: the next `__anext__` ends the iteration."""
        self._closed = True

    def interrupt(self) -> None:
        """Stop reading now, from outside the reader's task: a wait in progress ends too.

        What a transport calls when its client went away while the reader waits for the
        run (an idle stream ends at once, not at the next event or heartbeat).
        """
        self._closed = True
        waiter = self._current
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _silent(self, heartbeat: float) -> bool:
        """Wait for the next append or `heartbeat` seconds of silence; return whether silent.

        One timer serves a whole idle period: each event only moves the deadline (a float),
        and the timer, when it fires early, re-arms itself for what is left. A timer armed
        and cancelled per wait would cost a heap push and a handle per token.
        """
        log = self._log
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        waiter = log.waiter()
        self._current = waiter
        if self._timer is None:
            self._deadline = loop.time() + heartbeat
            self._timer = loop.call_at(self._deadline, self._fire)
        try:
            await waiter
        finally:
            self._current = None
            waiter.cancel()
        if self._fired:
            self._fired = False
            return self._next >= log.next_seq and not log.closed and not self._closed
        self._deadline = loop.time() + heartbeat  # activity: the silence starts again now
        return False

    def _fire(self) -> None:
        loop = self._loop
        assert loop is not None
        if loop.time() < self._deadline:  # events came since it was armed: wait what is left
            self._timer = loop.call_at(self._deadline, self._fire)
            return
        self._timer = None
        waiter = self._current
        if waiter is not None and not waiter.done():
            self._fired = True
            waiter.set_result(None)
