"""The reading end of a run's copy in Redis: the replica of a run executing elsewhere.

The worker executing a run keeps its in-memory `EventLog` (its own readers stay on the fast
path), and its replicator (`_replicator`, one per worker) writes the run's stream.

A worker serving a run executing elsewhere reads its history into a local replica `EventLog`,
then hands it to the worker's one follower (`_followers`: one blocking `XREAD` for every
replica), which fills it as the run goes on. The replica is shared by all its local readers:
`LogReader`, `event_stream`, the WebSocket, AG-UI and Vercel read it unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agentcast.broker.redis import RedisBroker
from agentcast.errors import ResumeGap
from agentcast.events import AgentEnd, BaseEvent
from agentcast.runtime import EventLog, RunResult

if TYPE_CHECKING:
    from agentcast.broker._followers import Follower

__all__ = ["RETRY", "RemoteRun", "open_replica"]

RETRY = 1.0
"""Seconds between two tries at an append or a read while Redis does not answer."""


class RemoteRun:
    """A run executing in another worker, as this worker's readers see it (`RunHandle`).

    Its log is filled by the worker's `Follower`; `cancel()` asks the executing worker to stop it.
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


async def open_replica(
    broker: RedisBroker,
    run_id: str,
    info: dict[str, str],
    request_cancel: Callable[[str], None],
    follower: Follower,
) -> RemoteRun:
    """Read a run's stream up to its end now, and hand it to `follower` for what comes next.

    Raises:
        BrokerUnavailable: Redis does not answer.
    """
    after, events = await broker.history(run_id)
    remote = RemoteRun(run_id, info, events[0].seq if events else 0, request_cancel)
    with contextlib.suppress(ResumeGap):
        remote.add(events)
    await follower.follow(remote, after)
    return remote
