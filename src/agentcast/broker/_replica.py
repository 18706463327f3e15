"""Both ends of a run's copy in Redis: the replicator that writes it, the replica that reads it.

The worker executing a run keeps its in-memory `EventLog` (its own readers stay on the fast
path) and one replicator task per run reads that log like any reader and appends what each
wake-up found in one pipelined round trip: while a round trip is in flight, events pile up
and go in the next one, so the batches grow with the load by themselves.

A worker serving a run executing elsewhere fills a local replica `EventLog` with one follower
task per run (`XREAD` from the last entry id, blocking once caught up), shared by all its local
readers: `LogReader`, `event_stream`, the WebSocket, AG-UI and Vercel read it unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from agentcast.broker.redis import BROKER_ERRORS, Fenced, RedisBroker
from agentcast.errors import AgentcastError, ResumeGap
from agentcast.events import AgentEnd, BaseEvent
from agentcast.runtime import EventLog, LogReader, ManagedRun, RunResult

__all__ = ["RemoteRun", "ReplicationStats", "follow", "replicate"]

logger = logging.getLogger("agentcast")

RETRY = 1.0
"""Seconds between two tries at an append or a read while Redis does not answer."""

BLOCK = 5.0
"""Seconds a follower's `XREAD` blocks before it asks again (and notices a cancel)."""


class ReplicationStats:
    """What the replicators sent: Redis commands, events, round trips (`/metrics`)."""

    __slots__ = ("commands", "events", "round_trips")

    def __init__(self) -> None:
        self.commands = 0
        self.events = 0
        self.round_trips = 0


async def replicate(
    broker: RedisBroker,
    managed: ManagedRun,
    registered: asyncio.Future[None],
    stats: ReplicationStats,
    on_broker_lost: Callable[[ManagedRun, AgentcastError], None],
) -> None:
    """Register a run executing here, then mirror its log to its stream until `agent_end`."""
    run = managed.run
    try:
        await broker.register(
            run.run_id,
            {
                "owner": managed.owner or "",
                "session_id": run.session_id or "",
                "session_key": run.session_key or "",
            },
        )
    except BROKER_ERRORS as exc:
        registered.set_exception(broker.unavailable(exc))
        on_broker_lost(managed, broker.unavailable(exc))
        return
    registered.set_result(None)
    reader = LogReader(run.log)
    lost = False
    async for first in reader:
        batch = [first, *reader.take_ready()]
        while True:
            try:
                # Awaited first, then added: `+=` over an await would read the counter
                # before it and lose the other replicators' updates made meanwhile.
                sent = await broker.append(run.run_id, batch, last=batch[-1].__class__ is AgentEnd)
                stats.commands += sent
                break
            except Fenced:
                # Another worker declared this one dead and ended the run in the stream:
                # stop it here too; its readers here still see its own ending.
                logger.warning("run %s was ended by another worker; stopping it", run.run_id)
                run.cancel()
                return
            except BROKER_ERRORS as exc:
                if not lost:  # the run ends with a typed error; its end still goes out
                    lost = True
                    on_broker_lost(managed, broker.unavailable(exc))
                # A retry period while Redis is down: the log keeps every event meanwhile,
                # and the explicit ids make a retried entry impossible to store twice.
                await asyncio.sleep(RETRY)
                batch.extend(reader.take_ready())
        stats.events += len(batch)
        stats.round_trips += 1


class RemoteRun:
    """A run executing in another worker, as this worker's readers see it (`RunHandle`).

    Its log is filled by `follow`; `cancel()` asks the executing worker to stop it.
    """

    def __init__(
        self,
        run_id: str,
        info: dict[str, str],
        first_seq: int,
        request_cancel: Callable[[str], None],
        log_limit: int = 100_000,
    ) -> None:
        self._run_id = run_id
        self.session_id: str | None = info.get("session_id") or None
        self.session_key: str | None = info.get("session_key") or None
        self.log = EventLog(log_limit, first_seq)
        self.result: RunResult | None = None
        self._ended = asyncio.Event()
        self._request_cancel = request_cancel

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self._run_id

    @property
    def done(self) -> bool:
        """Whether its `agent_end` reached this worker."""
        return self.result is not None

    def cancel(self) -> None:
        """Ask the worker executing the run to cancel it."""
        self._request_cancel(self._run_id)

    async def wait(self) -> RunResult:
        """Wait until the run's `agent_end` reached this worker."""
        await self._ended.wait()
        assert self.result is not None
        return self.result

    def add(self, events: list[BaseEvent]) -> None:
        """Append the next events read from the stream (a seq already held is skipped).

        Raises:
            ResumeGap: the stream skipped seqs (it was trimmed past this replica).
        """
        log = self.log
        for event in events:
            if event.seq < log.next_seq or log.closed:
                continue
            if event.seq > log.next_seq:
                raise ResumeGap(f"the run's stream lost events {log.next_seq}..{event.seq - 1}")
            log.append(event)
            if event.__class__ is AgentEnd:
                self._end(event)  # type: ignore[arg-type]

    def _end(self, event: AgentEnd) -> None:
        error = next((e for e in reversed(self.log.snapshot()) if e.type == "error"), None)
        data: Any = error
        self.result = RunResult(
            output=event.output,
            run_id=self._run_id,
            session_id=self.session_id,
            steps=event.steps,
            metrics=event.metrics,
            outcome=event.outcome,
            error=getattr(data, "error", None),
            error_code=getattr(data, "code", None),
        )
        self.log.close()
        self._ended.set()


async def follow(broker: RedisBroker, remote: RemoteRun, after: bytes) -> None:
    """Fill a replica from its stream (entries after id `after`) until its `agent_end`.

    A broker that stops answering is retried every second: the replica's readers wait, and
    continue with no gap once it answers again.
    """
    while not remote.log.closed:
        try:
            entries = await broker.read(remote.run_id, after, block=BLOCK)
            if not entries and await broker.lookup(remote.run_id) is None:
                # The run is gone from Redis (expired, or a Redis restarted empty): nothing
                # more will come; its readers end rather than wait forever.
                logger.warning("run %s is gone from the broker; closing its replica", remote.run_id)
                remote.log.close()
                return
        except BROKER_ERRORS:
            await asyncio.sleep(RETRY)  # a retry period while Redis is down
            continue
        for entry, events in entries:
            after = entry
            try:
                remote.add(events)
            except ResumeGap:
                logger.warning("replica of %s lost events; closing it", remote.run_id)
                remote.log.close()
                return


async def open_replica(
    broker: RedisBroker,
    run_id: str,
    info: dict[str, str],
    request_cancel: Callable[[str], None],
) -> tuple[RemoteRun, asyncio.Task[None]]:
    """Read a run's stream up to its end now, and start its follower for what comes next.

    Raises:
        BrokerUnavailable: Redis does not answer.
    """
    after, events = await broker.history(run_id)
    remote = RemoteRun(run_id, info, events[0].seq if events else 0, request_cancel)
    with contextlib.suppress(ResumeGap):
        remote.add(events)
    task = asyncio.create_task(follow(broker, remote, after), name=f"follow {run_id}")
    return remote, task
