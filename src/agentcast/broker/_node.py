"""`BrokerNode`: one worker's part in a cluster of identical workers sharing one Redis.

It hooks into the worker's `RunManager` (the runtime does not know it is there): every run
started here is registered and mirrored to its stream by the worker's one replicator
(`_replicator`: one task, one pipeline for all its runs); a run executing elsewhere is found
in the registry and served from a replica, filled from its stream by the worker's one
follower (`_followers`: one task, one blocking read for every replica); a cancel for a run
executing elsewhere is published to every worker, and the one executing it stops it; reader
counts of remote readers go to the executing worker, which applies the disconnect policy
knowing them.

Liveness: every worker renews a lease (`SET PX`) every third of its time, and sweeps the runs
whose worker's lease expired: it ends them in their stream (closers, `error(worker_lost)`,
`agent_end(outcome="error")`), fenced by the entry ids (`RedisBroker.end_lost`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from agentcast.broker._followers import Follower
from agentcast.broker._replica import RemoteRun, open_replica
from agentcast.broker._replicator import ReplicationStats, Replicator
from agentcast.broker._sessions import SessionLocks
from agentcast.broker.redis import BROKER_ERRORS, RedisBroker
from agentcast.errors import AgentcastError, BrokerUnavailable, WorkerLost
from agentcast.runtime import ManagedRun, RunManager, SessionPolicy, close_lost_run

__all__ = ["BrokerNode"]

logger = logging.getLogger("agentcast")

MAX_REPLICAS = 1_000
"""Replicas of ended runs kept for resume at most; the oldest without a reader go first."""


class BrokerNode:
    """One worker's link to the broker: replication, replicas, cancels, readers, liveness.

    Args:
        broker: the Redis broker.
        manager: this worker's run manager (its hooks are set here).
    """

    def __init__(self, broker: RedisBroker, manager: RunManager) -> None:
        self.broker = broker
        self.manager = manager
        self.stats = ReplicationStats()
        self.replicator = Replicator(broker, self.stats, self._broker_lost, self._replicated)
        self.locks = SessionLocks(broker)
        self.follower = Follower(broker)
        self.down = False  # the last broker call failed (the server answers 503)
        self._registered: dict[str, asyncio.Future[None]] = {}
        self._replicas: OrderedDict[str, ManagedRun] = OrderedDict()
        self._opening: dict[str, asyncio.Future[None]] = {}
        self._reported: dict[str, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        manager.on_start = self._started
        manager.on_readers = self._readers_changed

    async def start(self) -> None:
        """Check Redis, take the liveness lease, start the subscriber and the sweeper.

        Raises:
            BrokerUnavailable: Redis does not answer.
        """
        await self.broker.connect()
        await self.broker.renew()
        self._spawn(self.replicator.run(), "broker replicator")
        subscribed = asyncio.Event()
        self._spawn(self._listen(subscribed.set), "broker subscriber")
        self._spawn(self._keep_alive(), "broker lease")
        try:  # from here on no cancel, reader count or lock change is missed
            await asyncio.wait_for(subscribed.wait(), self.broker.timeout)
        except asyncio.TimeoutError as exc:
            raise self.broker.unavailable(exc) from exc

    async def aclose(self) -> None:
        """Let the replicator write the runs' ends, then stop everything and disconnect.

        Called after the manager ended every run (a shutdown), so each stream gets its own
        `agent_end` rather than a sweeper's `worker_lost` a lease later.
        """
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.replicator.flushed(), self.broker.timeout)
        await self.follower.aclose()
        tasks = list(self._tasks)
        for _ in range(2):  # redis-py can lose a cancel landing while it sends (Python 3.11)
            for task in tasks:
                task.cancel()
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=self.broker.timeout)
                tasks = list(pending)
        await self.broker.aclose()

    def _spawn(self, coroutine: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- runs executing here ----------------------------------------------------------------

    def _started(self, managed: ManagedRun) -> None:
        run_id = managed.run.run_id
        self._registered[run_id] = self.replicator.attach(managed)
        key = managed.run.session_key
        if key is not None and key in self.locks.held:
            self._spawn(self._quietly(self.locks.bind(key, run_id)), f"bind {run_id}")

    def _replicated(self, managed: ManagedRun) -> None:
        """The run's end is in its stream (or the broker was lost): its session is free."""
        self._registered.pop(managed.run.run_id, None)
        key = managed.run.session_key
        if key is not None and key in self.locks.held:
            self._spawn(self._quietly(self.locks.release(key)), f"release {key}")

    async def claim_session(self, session_key: str, policy: SessionPolicy) -> int:
        """Apply the session policy across workers before a run starts on the session.

        Returns the session lock's fencing token, for the run's save (`fence=`).

        Raises:
            SessionBusy: `reject`, and a run is in progress on the session at some worker.
            BrokerUnavailable: Redis does not answer.
        """
        return int(
            await self._call(self.locks.claim(session_key, policy, self.cancel, self._ended))
        )

    async def _ended(self, run_id: str) -> bool:
        """Whether a run has logged its `agent_end`: known here, or the last in its stream."""
        managed = self.manager.get(run_id) or self._replicas.get(run_id)
        if managed is not None and managed.run.done:
            return True
        return await self.broker.ended(run_id)

    async def release_session(self, session_key: str) -> None:
        """Release a session claimed for a run that then did not start."""
        await self._quietly(self.locks.release(session_key))

    async def _quietly(self, awaitable: Any) -> None:
        # A lock not released (Redis down) expires with its lease.
        with contextlib.suppress(BrokerUnavailable):
            await self._call(awaitable)

    async def registered(self, managed: ManagedRun) -> None:
        """Wait until a run started here is in the registry (any worker can then find it).

        Raises:
            BrokerUnavailable: the broker did not answer.
        """
        registered = self._registered.get(managed.run.run_id)
        if registered is not None:
            await asyncio.shield(registered)

    def _broker_lost(self, managed: ManagedRun, error: AgentcastError) -> None:
        self.down = True
        logger.warning("broker lost while run %s executes: %s", managed.run.run_id, error)
        fail = getattr(managed.run, "fail", None)
        if fail is not None and not managed.run.done:  # an ended run only awaits its copy
            fail(error)

    # -- runs executing elsewhere -----------------------------------------------------------

    async def find(self, run_id: str, owner: str | None) -> ManagedRun | None:
        """The replica of a run this worker does not execute (None: unknown, or another's).

        Raises:
            BrokerUnavailable: Redis does not answer.
        """
        managed = self._replicas.get(run_id)
        if managed is not None and managed.run.log.closed and not managed.run.done:
            # Closed without its end: the run is gone from Redis (now a 404), or its stream
            # skipped past the replica (opened again from what the stream holds).
            del self._replicas[run_id]
            managed = None
        opening = self._opening.get(run_id)
        if managed is None and opening is not None:
            # Another request is opening it: one replica per run.
            await asyncio.shield(opening)
            return await self.find(run_id, owner)
        if managed is None:
            self._opening[run_id] = asyncio.get_running_loop().create_future()
            try:
                return await self._open(run_id, owner)
            finally:
                self._opening.pop(run_id).set_result(None)
        if owner is not None and managed.owner != owner:
            return None
        return managed

    async def _open(self, run_id: str, owner: str | None) -> ManagedRun | None:
        info = await self._call(self.broker.lookup(run_id))
        if info is None or (owner is not None and info.get("owner") != owner):
            return None
        remote = await self._call(
            open_replica(self.broker, run_id, info, self.cancel, self.follower)
        )
        managed = ManagedRun(run=remote, owner=info.get("owner") or None, remote=True)
        self._replicas[run_id] = managed
        self._evict()
        return managed

    async def holder(self, session_key: str) -> str | None:
        """The run holding a session's lock (None: free, or its run not named yet)."""
        value = await self._call(self.locks.holder(session_key))
        run_id = value.split(" ")[2] if value and value.count(" ") == 2 else "-"
        return None if run_id == "-" else run_id

    def _evict(self) -> None:
        for run_id, managed in list(self._replicas.items()):
            if len(self._replicas) <= MAX_REPLICAS:
                break
            if managed.readers == 0 and managed.run.log.closed:  # ended, gone, or cut
                del self._replicas[run_id]
                self._reported.pop(run_id, None)
                self.follower.discard(run_id)

    def cancel(self, run_id: str) -> None:
        """Ask every worker to cancel `run_id`; the one executing it does."""
        self._spawn(self._publish("cancel", run_id), f"cancel {run_id}")

    def _readers_changed(self, managed: ManagedRun) -> None:
        run_id = managed.run.run_id
        delta = managed.readers - self._reported.get(run_id, 0)
        if delta:
            self._reported[run_id] = managed.readers
            self._spawn(self._publish("readers", f"{run_id} {delta}"), f"readers {run_id}")

    async def _publish(self, channel: str, message: str) -> None:
        with contextlib.suppress(BrokerUnavailable):
            await self._call(self.broker.publish(channel, message))

    async def _call(self, awaitable: Any) -> Any:
        try:
            result = await awaitable
        except BROKER_ERRORS as exc:
            self.down = True
            raise self.broker.unavailable(exc) from exc
        self.down = False
        return result

    async def _listen(self, ready: Callable[[], None]) -> None:
        """Apply the cancels, reader counts and lock releases workers publish (reconnects)."""
        while True:
            try:
                channels = ("cancel", "readers", "locks")
                async for channel, message in self.broker.subscribe(*channels, ready=ready):
                    if channel == "cancel":
                        self._apply_cancel(message)
                    elif channel == "locks":
                        self.locks.changed(message)
                    else:
                        run_id, _, delta = message.partition(" ")
                        self._apply_readers(run_id, int(delta))
            except BROKER_ERRORS:
                self.down = True
                await asyncio.sleep(1.0)  # retry period while Redis is down

    def _apply_cancel(self, run_id: str) -> None:
        managed = self.manager.get(run_id)
        if managed is not None and not managed.remote:
            managed.run.cancel()

    def _apply_readers(self, run_id: str, delta: int) -> None:
        managed = self.manager.get(run_id)
        if managed is None or managed.remote:
            return
        managed.remote_readers = max(0, managed.remote_readers + delta)
        if delta > 0:
            self.manager.remote_attached(managed)
        elif managed.remote_readers == 0:
            self.manager.remote_detached(managed)

    # -- liveness ---------------------------------------------------------------------------

    async def _keep_alive(self) -> None:
        period = self.broker.lease / 3
        while True:
            try:
                await self.broker.renew()
                await self.locks.renew()
                self.down = False
                await self.sweep()
            except BROKER_ERRORS:
                self.down = True
            await asyncio.sleep(period)  # the lease's renewal period

    async def sweep(self) -> int:
        """End the runs whose worker's lease expired; return how many this worker ended."""
        running = await self.broker.running()
        me = self.broker.worker_id
        others = sorted({w for w in running.values() if w != me})
        alive = await self.broker.alive(others)
        ended = 0
        for run_id, worker in running.items():
            if worker == me or worker in alive:
                continue
            if await self.broker.claim(f"sweep:{run_id}", self.broker.lease):
                ended += await self._end_lost(run_id, worker)
        return ended

    async def _end_lost(self, run_id: str, worker: str) -> int:
        info = await self.broker.lookup(run_id) or {}
        last, events = await self.broker.history(run_id)
        failure = WorkerLost(
            f"the worker executing this run ({worker}) stopped answering; the run was ended"
            " by another worker and its turn was not saved"
        )
        closing = close_lost_run(run_id, info.get("session_id") or None, events, failure)
        if not closing:
            return 0
        if await self.broker.end_lost(run_id, last, closing):
            logger.warning("ended run %s of lost worker %s", run_id, worker)
            return 1
        return 0

    def remote(self, managed: ManagedRun) -> RemoteRun | None:
        """The replica behind `managed`, if it is one."""
        run = managed.run
        return run if isinstance(run, RemoteRun) else None
