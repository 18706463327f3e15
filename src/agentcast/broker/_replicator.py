"""The replicator: every run executing on this worker mirrored to its Redis stream by one task.

Each run is attached to its log as a listener (`EventLog.listen`): per event, the appending
task itself only adds the event to the run's pending list, marks the run dirty the first time,
and wakes the flusher if it sleeps. The flusher, one task per worker, takes every dirty run's
pending events and sends them in one pipeline (`RedisBroker.append_many`): one entry per run
(its batch), with a new run's registration before its first entry. While that round trip is in
flight, events pile up and go in the next one, so the batches grow with the load by
themselves: at 1,000 runs one round trip carries a token of each rather than one of them.
At a lower load the flusher also waits out `RedisBroker.flush_interval` (5 ms) after each
pipeline, so that one round trip (about 100 µs of a worker's CPU in redis-py, whatever it
carries) is not paid per token: what another worker's readers wait, at most, besides the
round trip. A new run's registration does not wait (its start waits for it).

Per run, after a round trip: a run whose stream was ended by another worker (fenced) is
cancelled and dropped; a run whose `agent_end` is stored gets its finishing commands (the
registry says finished, the running set forgets it, the keys get their TTL) in the next
pipeline, then it is detached and `on_replicated` runs. When Redis does not answer, every
run of the pipeline is told once (`on_broker_lost`: it ends with a typed error), keeps its
pending events, and the whole is sent again every `RETRY` s; the explicit entry ids store no
event twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from agentcast.broker._replica import RETRY
from agentcast.broker._wire import Batch
from agentcast.broker.redis import BROKER_ERRORS, RedisBroker
from agentcast.errors import AgentcastError, BrokerUnavailable
from agentcast.events import AgentEnd, BaseEvent
from agentcast.runtime import ManagedRun

__all__ = ["ReplicationStats", "Replicator"]

logger = logging.getLogger("agentcast")


class ReplicationStats:
    """What the replicator sent: Redis commands, events, round trips (`/metrics`)."""

    __slots__ = ("commands", "events", "round_trips")

    def __init__(self) -> None:
        self.commands = 0
        self.events = 0
        self.round_trips = 0


class _Copy:
    """One attached run: the listener on its log, and what of it is not in Redis yet."""

    __slots__ = (
        "closed",
        "dirty",
        "ended",
        "lost",
        "managed",
        "pending",
        "register",
        "registered",
        "replicator",
        "run_id",
    )

    def __init__(self, replicator: Replicator, managed: ManagedRun) -> None:
        run = managed.run
        self.replicator = replicator
        self.managed = managed
        self.run_id = run.run_id
        self.register: dict[str, str] | None = {
            "owner": managed.owner or "",
            "session_id": run.session_id or "",
            "session_key": run.session_key or "",
        }
        self.registered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending: list[BaseEvent] = []
        self.dirty = False  # in the replicator's dirty list
        self.closed = False  # the log closed: nothing more will come
        self.ended: str | None = None  # the outcome, once its `agent_end` is stored
        self.lost = False  # `on_broker_lost` was called for it

    def on_append(self, event: BaseEvent) -> bool:
        """Keep the event for the next pipeline (this runs inside `EventLog.append`)."""
        self.pending.append(event)
        if not self.dirty:
            self.replicator._mark(self)  # noqa: SLF001
        return True

    def on_close(self) -> None:
        """The run's log closed: once what is pending is stored, the run is detached."""
        self.closed = True
        if not self.dirty:
            self.replicator._mark(self)  # noqa: SLF001


class Replicator:
    """Mirrors every run executing on this worker to its stream, in one pipeline per flush.

    Args:
        broker: the Redis broker.
        stats: the counters it updates, once per pipeline.
        on_broker_lost: called once per run that Redis failed while it was pending.
        on_replicated: called with each run once it is detached: its end is stored (or it
            was fenced).
    """

    def __init__(
        self,
        broker: RedisBroker,
        stats: ReplicationStats,
        on_broker_lost: Callable[[ManagedRun, AgentcastError], None],
        on_replicated: Callable[[ManagedRun], None],
    ) -> None:
        self.broker = broker
        self.stats = stats
        self._on_broker_lost = on_broker_lost
        self._on_replicated = on_replicated
        self._copies: dict[str, _Copy] = {}
        self._dirty: list[_Copy] = []
        self._ending: list[_Copy] = []  # end stored: the finishing commands are due
        self._wake: asyncio.Future[None] | None = None  # set while the flusher sleeps
        self._idle: asyncio.Future[None] | None = None  # `flushed()` waits on it
        self._pause: asyncio.Future[None] | None = None  # set while it waits out the interval

    def attach(self, managed: ManagedRun) -> asyncio.Future[None]:
        """Start mirroring a run; return the future set once its registration is stored.

        The events already logged are taken now and the listener set in the same step (no
        await between them): none is missed or sent twice.
        """
        copy = _Copy(self, managed)
        self._copies[copy.run_id] = copy
        log = managed.run.log
        copy.pending = log.snapshot()
        log.listen(copy)  # a closed log calls `on_close` at once
        if not copy.dirty:
            self._mark(copy)
        return copy.registered

    @property
    def attached(self) -> int:
        """How many runs are mirrored now (not yet detached)."""
        return len(self._copies)

    async def flushed(self) -> None:
        """Wait until every attached run is detached: each run's end is in its stream."""
        while self._copies:
            if self._idle is None:
                self._idle = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._idle)

    def _mark(self, copy: _Copy) -> None:
        copy.dirty = True
        self._dirty.append(copy)
        wake = self._wake
        if wake is not None:
            self._wake = None
            if not wake.done():
                wake.set_result(None)
        if copy.register is not None:
            self._hurry()

    def _hurry(self) -> None:
        """End the wait between two pipelines now (a run's start waits for the next one)."""
        pause = self._pause
        if pause is not None:
            self._pause = None
            if not pause.done():
                pause.set_result(None)

    async def run(self) -> None:
        """The flusher: send what is pending, one pipeline at a time, until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            if not self._dirty and not self._ending:
                self._wake = loop.create_future()
                await self._wake
            started = loop.time()
            try:
                await self._flush()
            except Exception:  # a bug, not Redis: never let it stop every run's copy
                logger.exception("the broker's replicator failed; retrying")
                await asyncio.sleep(RETRY)
            rest = self.broker.flush_interval - (loop.time() - started)
            if rest > 0 and not any(copy.register is not None for copy in self._dirty):
                pause = self._pause = loop.create_future()
                timer = loop.call_later(rest, self._hurry)
                try:
                    await pause
                finally:
                    timer.cancel()

    async def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        ending, self._ending = self._ending, []
        sending: list[tuple[_Copy, list[BaseEvent]]] = []
        batches = []
        for copy in dirty:
            copy.dirty = False
            if self._copies.get(copy.run_id) is not copy:
                continue  # detached meanwhile
            events, copy.pending = copy.pending, []
            if events or copy.register is not None:
                sending.append((copy, events))
                batches.append(Batch(copy.run_id, events, register=copy.register))
            elif copy.closed and copy.ended is None:
                self._detach(copy)  # the log closed without an `agent_end` to store
        for copy in ending:
            batches.append(Batch(copy.run_id, finish=copy.ended))
        if not batches:
            return
        try:
            sent = await self.broker.append_many(batches)
        except Exception as exc:  # noqa: BLE001 - whatever failed, nothing pending is lost
            if not isinstance(exc, BROKER_ERRORS):
                logger.exception("the broker's replicator failed a pipeline")
            self._failed(exc, sending, ending)
            await asyncio.sleep(RETRY)  # a retry period while Redis is down
            return
        stats = self.stats  # updated after the await, once: no `+=` across it
        stats.commands += sent.commands
        stats.round_trips += sent.round_trips
        stats.events += sum(len(e) for c, e in sending if c.run_id not in sent.fenced)
        for copy, events in sending:
            if copy.register is not None:
                copy.register = None
                if not copy.registered.done():
                    copy.registered.set_result(None)
            if copy.run_id in sent.fenced:
                # Another worker declared this one dead and ended the run in the stream:
                # stop it here too; its readers here still see its own ending.
                logger.warning("run %s was ended by another worker; stopping it", copy.run_id)
                self._detach(copy)
                _tell(copy.managed.run.cancel)
            elif events and events[-1].__class__ is AgentEnd:
                copy.ended = getattr(events[-1], "outcome", "")
                self._ending.append(copy)
            elif copy.closed and not copy.pending:
                self._detach(copy)
        for copy in ending:
            self._detach(copy)

    def _failed(
        self,
        exc: BaseException,
        sending: list[tuple[_Copy, list[BaseEvent]]],
        ending: list[_Copy],
    ) -> None:
        """Redis failed a pipeline: every run in it is told once and sent again later."""
        error = exc if isinstance(exc, BrokerUnavailable) else self.broker.unavailable(exc)
        self._ending[:0] = ending
        for copy, events in sending:
            if copy.register is not None and not copy.registered.done():
                # Its start fails (503); its registration and events go again with the rest,
                # so that its stream still gets its end once Redis answers.
                copy.registered.set_exception(error)
                copy.registered.exception()  # retrieved: nobody may be waiting for it
            copy.pending[:0] = events
            if not copy.dirty:
                copy.dirty = True
                self._dirty.append(copy)
            if not copy.lost:  # the run ends with a typed error; its end still goes out
                copy.lost = True
                _tell(self._on_broker_lost, copy.managed, error)
        for copy in ending:
            if not copy.lost:
                copy.lost = True
                _tell(self._on_broker_lost, copy.managed, error)

    def _detach(self, copy: _Copy) -> None:
        if self._copies.get(copy.run_id) is not copy:
            return
        del self._copies[copy.run_id]
        copy.managed.run.log.unlisten(copy)
        copy.pending = []
        _tell(self._on_replicated, copy.managed)
        if not self._copies and self._idle is not None:
            idle, self._idle = self._idle, None
            if not idle.done():
                idle.set_result(None)


def _tell(callback: Callable[..., None], *args: Any) -> None:
    # A callback that fails is logged, not raised: raised inside a flush's loop over its runs,
    # it skipped the runs after it (never detached, their registrations never answered).
    try:
        callback(*args)
    except Exception:
        logger.exception("a broker replication callback failed")
