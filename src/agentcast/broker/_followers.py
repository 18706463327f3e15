"""The follower: one task per worker fills the replicas of every run executing elsewhere.

A replica starts from its stream's history (`_replica.open_replica`), then is handed to its
worker's one `Follower`, which reads what comes next for all its runs at once: one
`XREAD COUNT 1000 BLOCK` on one connection, over every followed run's stream (each from its
last entry id) and the worker's wake stream. One reply carries the entries of many runs; each
goes to its replica's log, in order. A run is no longer followed once its `agent_end` is in
(its log closed), when its stream skipped events (`ResumeGap`: the replica closes), when it
is gone from Redis (nothing for a `BLOCK` period and no registry entry: the replica closes
and its readers end), or when the node discards it (an eviction, a shutdown).

A run added while the read is blocked would wait out `BLOCK` for its first live event:
`follow` then appends to the wake stream (`RedisBroker.wake`), which the blocked read
includes, so it returns at once and the next read includes the new run. The wake stream is
read from the last id seen (not `$`): a wake that reaches Redis before the read it is meant
for, on the other connection, still wakes it.

The task exists while something is followed (a worker serving no other worker's runs holds
no blocked connection) and ends when nothing is. When Redis does not answer, the read is
retried every `RETRY` s: the replicas' readers wait, and continue with no gap.

Every stream in one `XREAD`: Redis's cost per call is O(streams), and so is building the
command here, but under load one reply carries the entries of many runs, and at a low load
the calls are few; the streams are not split across connections (nothing measured says they
should be).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from agentcast.broker._replica import RETRY, RemoteRun
from agentcast.broker.redis import BROKER_ERRORS, RedisBroker
from agentcast.errors import ResumeGap

__all__ = ["BLOCK", "Follower"]

logger = logging.getLogger("agentcast")

BLOCK = 5.0
"""Seconds the follower's `XREAD` blocks; also the quiet period after which a run's registry
entry is checked (a run gone from Redis is not waited for)."""


class _Followed:
    """One followed run: its replica and the id of the last stream entry it took."""

    __slots__ = ("after", "remote")

    def __init__(self, remote: RemoteRun, after: bytes) -> None:
        self.remote = remote
        self.after = after


class Follower:
    """The one reader of every replica's stream on this worker (see the module docstring).

    Args:
        broker: the Redis broker.
    """

    def __init__(self, broker: RedisBroker) -> None:
        self._broker = broker
        self._runs: dict[str, _Followed] = {}
        self._task: asyncio.Task[None] | None = None
        self._reading = False  # an XREAD is in flight: a new run must wake it
        self._woken = False  # that XREAD was woken already (one wake per read is enough)
        self._wake_after = b"0-0"  # the wake stream's last entry id seen
        # The runs that took nothing since the last check of the registry, and when the
        # next check is due.
        self._quiet: set[str] = set()
        self._check_at = 0.0

    @property
    def following(self) -> list[str]:
        """The ids of the runs followed now."""
        return list(self._runs)

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The follower's task (None while nothing is followed)."""
        return self._task

    async def follow(self, remote: RemoteRun, after: bytes) -> None:
        """Fill `remote` from its stream's entries after id `after`, until its end.

        A run whose log is closed (its history ended) is not followed.
        """
        if remote.log.closed:
            return
        self._runs[remote.run_id] = _Followed(remote, after)
        if self._task is None:
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._run(), name="broker follower")
        elif self._reading and not self._woken:
            self._woken = True
            # A failed wake leaves the run to the next read: Redis is failing the read too,
            # which is retried.
            with contextlib.suppress(*BROKER_ERRORS):
                await self._broker.wake()

    def discard(self, run_id: str) -> None:
        """Stop following `run_id` (what its pending read brings is dropped)."""
        self._runs.pop(run_id, None)
        self._quiet.discard(run_id)

    async def aclose(self) -> None:
        """Stop following everything; cancel the task and wait for it."""
        self._runs.clear()
        self._quiet.clear()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            if self._reading:
                # A cancel that lands while redis-py sends the command is lost (Python 3.11's
                # `wait_for` around its drain): the read then returns on the wake, and the
                # task ends, following nothing.
                with contextlib.suppress(*BROKER_ERRORS):
                    await self._broker.wake()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        try:
            while self._runs:
                try:
                    await self._step()
                except BROKER_ERRORS:
                    await asyncio.sleep(RETRY)  # a retry period while Redis is down
        finally:
            if self._task is asyncio.current_task():  # not replaced since (`aclose`)
                self._task = None

    async def _step(self) -> None:
        """One read for every followed run, its entries given to their replicas."""
        asked = dict(self._runs)
        self._reading, self._woken = True, False  # from here on, a run added is not in it
        try:
            self._wake_after, found = await self._broker.read_many(
                {run_id: followed.after for run_id, followed in asked.items()},
                wake=self._wake_after,
                block=BLOCK,
            )
        finally:
            self._reading = False
        for run_id, entries in found.items():
            followed = self._runs.get(run_id)
            if followed is None or followed is not asked.get(run_id):
                continue  # discarded (or discarded and opened again) while the read was out
            self._quiet.discard(run_id)
            remote = followed.remote
            try:
                for entry, events in entries:
                    remote.add(events)
                    followed.after = entry
            except ResumeGap:
                logger.warning("replica of %s lost events; closing it", run_id)
                remote.log.close()
            if remote.log.closed:
                self.discard(run_id)
        if asyncio.get_running_loop().time() >= self._check_at:
            await self._close_gone()

    async def _close_gone(self) -> None:
        """Close the replicas of the runs gone from Redis (expired, or Redis restarted empty).

        Quiet for a whole period and without a registry entry, nothing more will come for
        them: their readers end rather than wait forever.
        """
        quiet = [run_id for run_id in self._quiet if run_id in self._runs]
        if quiet:
            known = await self._broker.known(quiet)
            for run_id in quiet:
                followed = self._runs.get(run_id)
                if run_id not in known and followed is not None:
                    logger.warning("run %s is gone from the broker; closing its replica", run_id)
                    followed.remote.log.close()
                    self.discard(run_id)
        self._quiet = set(self._runs)
        self._check_at = asyncio.get_running_loop().time() + BLOCK
