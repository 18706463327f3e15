"""The reading end of a run's copy in Redis: the replica of a run executing elsewhere.

The worker executing a run keeps its in-memory `EventLog` (its own readers stay on the fast
path), and its replicator (`_replicator`, one per worker) writes the run's stream.

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

from agentcast.broker.redis import BROKER_ERRORS, RedisBroker
from agentcast.errors import ResumeGap
from agentcast.events import AgentEnd, BaseEvent
from agentcast.runtime import EventLog, RunResult

__all__ = ["RETRY", "RemoteRun", "follow", "open_replica"]

logger = logging.getLogger("agentcast")

RETRY = 1.0
"""Seconds between two tries at an append or a read while Redis does not answer."""

BLOCK = 5.0
"""Seconds a follower's `XREAD` blocks before it asks again (and notices a cancel)."""


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
