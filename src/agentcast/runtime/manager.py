"""`RunManager`: runs that outlive the connections that started them.

The manager starts each run in a task of its own (`Run.execute`), keeps it addressable by
`run_id` while it runs and for `retention` seconds after (so a client can resume, even after
the end), applies the per-session policy when a run is already active on a session, and the
disconnect policy when the last reader of a run leaves:

- `continue`: the run goes on, its log is complete for whoever comes back;
- `cancel`: the run is cancelled at once (closers, `agent_end(cancelled)`, history saved);
- `grace` (default): the run goes on for `grace_period` seconds and is cancelled then if
  nobody re-attached.

Session policies: `reject` (raise `SessionBusy`), `enqueue` (the new run starts when the
previous one ended), `interrupt` (the previous run is cancelled, its partial answer kept, then
the new one starts). Each turn is saved whole by its own run, so history stays turn-atomic.

Ownership: a run started with an `owner` is visible (`get`) to that owner only, and its session
is the owner's: the policies apply per `(owner, session_id)`, so another owner's run on the same
session id is another session and never waits on, blocks or interrupts this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from agentcast.errors import InvalidInput, SessionBusy
from agentcast.events import Message
from agentcast.ids import check_id, session_key
from agentcast.runtime._handle import RunHandle
from agentcast.runtime._size import size_of
from agentcast.runtime.run import Run, RunResult

__all__ = [
    "CancelStatus",
    "RunHandle",
    "DisconnectPolicy",
    "ManagedRun",
    "RunManager",
    "SessionPolicy",
    "Starter",
]

SessionPolicy = Literal["reject", "enqueue", "interrupt"]
"""What a new request does while a run is active on its session."""

DisconnectPolicy = Literal["continue", "cancel", "grace"]
"""What happens to a run when its last reader leaves."""

CancelStatus = Literal["cancelling", "finished"]
"""The answer to a cancel: the run is stopping, or it had ended already."""


class Starter(Protocol):
    """Creates a run (not started); what `agentcast.Runner.start` is."""

    def __call__(
        self,
        prompt: str,
        *,
        session_id: str | None = ...,
        actor_id: str | None = ...,
        custom_data: Any = ...,
        owner: str | None = ...,
        history: Sequence[Message] | None = ...,
        run_id: str | None = ...,
        fence: int | None = ...,
    ) -> Run:
        """Create the run."""
        ...


@dataclass
class ManagedRun:
    """A run the manager owns.

    Attributes:
        run: the run.
        owner: the API key (actor) that started it, when keys are on.
        remote: the run executes in another process (a replica): its readers are counted
            here, and the disconnect policy is the executing process's to apply.
        readers: how many readers are attached now (in this process).
        remote_readers: how many readers other processes report (a broker keeps it).
        finished_at: monotonic time the run ended, None while it runs.
        size: about how many bytes its events take (JSON), known once it ended.
        is_idle: no reader is attached (after the last one left); `idle` is its event.
    """

    run: RunHandle
    owner: str | None
    remote: bool = False
    task: asyncio.Task[Any] | None = None
    readers: int = 0
    remote_readers: int = 0
    finished_at: float | None = None
    size: int = 0
    grace: asyncio.TimerHandle | None = field(default=None, repr=False)
    is_idle: bool = False
    # Made by the first read of `idle` only (tests, tools): an `asyncio.Event` and its deque
    # are ~0.8 KB per run, which the server itself never waits on.
    _idle: asyncio.Event | None = field(default=None, repr=False)

    @property
    def idle(self) -> asyncio.Event:
        """An event set while no reader is attached (after the last one left)."""
        if self._idle is None:
            self._idle = asyncio.Event()
            if self.is_idle:
                self._idle.set()
        return self._idle

    def set_idle(self, idle: bool) -> None:
        """Record whether no reader is attached (and tell the `idle` event, if made)."""
        self.is_idle = idle
        if self._idle is not None:
            self._idle.set() if idle else self._idle.clear()


class RunManager:
    """Owns the runs of a server process.

    Args:
        start: creates a run for a prompt (`Runner.start`).
        session_policy: `reject`, `enqueue` or `interrupt`.
        disconnect: `continue`, `cancel` or `grace`.
        grace_period: seconds a run without readers keeps going under `grace`.
        retention: seconds a finished run stays addressable for resume.
        max_retained_runs: at most this many finished runs are kept; the oldest go first.
        max_retained_bytes: and at most about this many bytes of their events.
        on_finish: called with every finished run's result (metrics).
        on_start: called with every run as it is started (a broker mirrors its log).
        on_readers: called with a remote run whenever its local reader count changes (a
            broker tells the executing process, which applies the disconnect policy).
    """

    def __init__(
        self,
        start: Starter,
        *,
        session_policy: SessionPolicy = "reject",
        disconnect: DisconnectPolicy = "grace",
        grace_period: float = 30.0,
        retention: float = 600.0,
        max_retained_runs: int = 1_000,
        max_retained_bytes: int = 256_000_000,
        on_finish: Callable[[RunResult], None] | None = None,
        on_start: Callable[[ManagedRun], None] | None = None,
        on_readers: Callable[[ManagedRun], None] | None = None,
    ) -> None:
        if session_policy not in ("reject", "enqueue", "interrupt"):
            raise InvalidInput(f"unknown session policy {session_policy!r}")
        if disconnect not in ("continue", "cancel", "grace"):
            raise InvalidInput(f"unknown disconnect policy {disconnect!r}")
        self._start = start
        self.session_policy = session_policy
        self.disconnect = disconnect
        self.grace_period = grace_period
        self.retention = retention
        self.max_retained_runs = max_retained_runs
        self.max_retained_bytes = max_retained_bytes
        self._on_finish = on_finish
        self.on_start = on_start
        self.on_readers = on_readers
        self._runs: dict[str, ManagedRun] = {}
        # Finished runs, oldest first (the order they ended): what retention evicts.
        # Not a dict: runs leave from the front, whose holes each walk from the oldest skips.
        self._finished: OrderedDict[str, ManagedRun] = OrderedDict()
        self._finished_bytes = 0
        # session key (the id within its owner's namespace) -> the run last started on it
        self._active: dict[str, ManagedRun] = {}
        self._closing = False

    @property
    def active_runs(self) -> int:
        """How many runs are executing now."""
        return sum(1 for m in self._runs.values() if m.finished_at is None)

    @property
    def readers(self) -> int:
        """How many readers are attached now, over all runs (a run with readers never expires)."""
        return sum(m.readers for m in self._runs.values())

    def get(self, run_id: str, *, owner: str | None = None) -> ManagedRun | None:
        """Return a run by id (None when unknown, expired, or another owner's)."""
        self._expire()
        managed = self._runs.get(run_id)
        if managed is None or (owner is not None and managed.owner != owner):
            return None
        return managed

    def active(self, session_id: str, *, owner: str | None = None) -> ManagedRun | None:
        """Return the run in progress on the owner's session `session_id`, if any.

        What a client that holds only the session id (the Vercel AI SDK's resume) reconnects
        to; another owner's session of the same id is another session (None here).
        """
        managed = self._active.get(session_key(check_id(session_id), owner))
        return managed if managed is not None and managed.finished_at is None else None

    def start(
        self,
        prompt: str,
        *,
        session_id: str | None,
        actor_id: str | None = None,
        custom_data: Any = None,
        owner: str | None = None,
        history: Sequence[Message] | None = None,
        run_id: str | None = None,
        fence: int | None = None,
    ) -> ManagedRun:
        """Start a run now (or queue it behind the session's active run, per policy).

        `run_id` names the run (a front-end protocol sends its own, as AG-UI does); an id the
        manager already knows, of any owner, is not reused: the run gets a new one, so a
        caller can neither reach nor detect another owner's run through it. `fence`: the
        token of a session lock across processes, saved with the turn (`SessionStore.append`).

        A session is busy until its run has logged `agent_end` (the turn is saved by then):
        a reader that saw the end may start the next turn at once, under every policy.

        Raises:
            SessionBusy: a run is active on the owner's session and the policy is `reject`.
            InvalidInput: the prompt is empty, an id breaks the id rule, or the server is
                shutting down.
        """
        if self._closing:
            raise InvalidInput("the server is shutting down; retry on another instance")
        if session_id is not None:
            check_id(session_id)  # before it is looked up: a bad id changes nothing
        self._expire()
        run = self._start(
            prompt,
            session_id=session_id,
            actor_id=actor_id,
            custom_data=custom_data,
            owner=owner,
            history=history,
            run_id=run_id if run_id is not None and run_id not in self._runs else None,
            fence=fence,
        )
        key = run.session_key
        previous = self._active.get(key) if key else None
        if previous is not None and (previous.finished_at is not None or previous.run.done):
            previous = None
        if previous is not None and self.session_policy == "reject":
            raise SessionBusy(
                f"session {session_id!r} already has a run in progress ({previous.run.run_id});"
                " wait for it, cancel it, or resume its stream"
            )
        managed = ManagedRun(run=run, owner=owner)
        self._runs[run.run_id] = managed
        if key:
            self._active[key] = managed
        if previous is not None and self.session_policy == "interrupt":
            previous.run.cancel()
        managed.task = asyncio.create_task(self._execute(managed, run, previous))
        if self.on_start is not None:
            self.on_start(managed)
        return managed

    async def _execute(self, managed: ManagedRun, run: Run, previous: ManagedRun | None) -> None:
        if previous is not None:
            # enqueue and interrupt both start the new turn only once the old one is saved
            await previous.run.wait()
        try:
            result = await run.execute()
        finally:
            managed.finished_at = time.monotonic()
            managed.size = size_of(managed.run)
            self._finished[managed.run.run_id] = managed
            self._finished_bytes += managed.size
            if managed.grace is not None:
                managed.grace.cancel()
            key = managed.run.session_key
            if key and self._active.get(key) is managed:
                del self._active[key]
        if self._on_finish is not None:
            self._on_finish(result)

    @contextlib.contextmanager
    def reader(self, managed: ManagedRun) -> Iterator[None]:
        """Count one reader of `managed` for the duration of the block, whatever ends it.

        Every transport reads through this, so a reader that fails (a failed send, a dropped
        socket, a cancelled task) is always detached and the disconnect policy always applies.
        """
        self.attach(managed)
        try:
            yield
        finally:
            self.detach(managed)

    def attach(self, managed: ManagedRun) -> None:
        """A reader attached: a pending grace-period cancel is called off."""
        managed.readers += 1
        managed.set_idle(False)
        if managed.remote:
            if self.on_readers is not None:
                self.on_readers(managed)
            return
        if managed.grace is not None:
            managed.grace.cancel()
            managed.grace = None

    def detach(self, managed: ManagedRun) -> None:
        """A reader left: apply the disconnect policy if it was the last."""
        managed.readers -= 1
        if managed.remote:
            if self.on_readers is not None:
                self.on_readers(managed)
            if managed.readers == 0:
                managed.set_idle(True)
            return
        if managed.readers > 0:
            return
        managed.set_idle(True)
        if managed.finished_at is not None or self.remote_readers(managed):
            return
        if self.disconnect == "cancel":
            managed.run.cancel()
        elif self.disconnect == "grace":
            loop = asyncio.get_running_loop()
            managed.grace = loop.call_later(self.grace_period, self._grace_expired, managed)

    def _grace_expired(self, managed: ManagedRun) -> None:
        managed.grace = None
        idle = managed.readers == 0 and not self.remote_readers(managed)
        if idle and managed.finished_at is None:
            managed.run.cancel()

    def remote_readers(self, managed: ManagedRun) -> int:
        """How many readers other processes report for a run executing here.

        0 without a broker. The disconnect policy and the grace period consult it.
        """
        return managed.remote_readers

    def remote_detached(self, managed: ManagedRun) -> None:
        """Another process's last reader of a run executing here left.

        The disconnect policy applies as if a local reader had left, unless readers remain
        here or elsewhere.
        """
        if managed.readers > 0 or managed.remote_readers > 0 or managed.finished_at is not None:
            return
        if managed.grace is not None:
            return
        if self.disconnect == "cancel":
            managed.run.cancel()
        elif self.disconnect == "grace":
            loop = asyncio.get_running_loop()
            managed.grace = loop.call_later(self.grace_period, self._grace_expired, managed)

    def remote_attached(self, managed: ManagedRun) -> None:
        """A reader in another process attached to a run executing here: no grace cancel."""
        if managed.grace is not None:
            managed.grace.cancel()
            managed.grace = None

    def cancel(self, managed: ManagedRun) -> CancelStatus:
        """Cancel a run; return `cancelling`, or `finished` when it had ended already.

        The one answer every transport gives to a cancel.
        """
        if managed.run.done:
            return "finished"
        managed.run.cancel()
        return "cancelling"

    async def aclose(self) -> None:
        """Cancel every run and wait until each has logged its `agent_end` and saved."""
        self._closing = True
        tasks = [m.task for m in self._runs.values() if m.task is not None and not m.task.done()]
        for managed in self._runs.values():
            managed.run.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _expire(self) -> None:
        """Forget finished runs past their retention time, or over the count or byte caps.

        The oldest finished runs go first; a running run is never forgotten, nor a finished
        one being read (its reader finishes first; it goes at a later call).
        """
        now = time.monotonic()
        count, size = len(self._finished), self._finished_bytes
        evicted = []
        for run_id, managed in self._finished.items():
            assert managed.finished_at is not None
            over = count > self.max_retained_runs or size > self.max_retained_bytes
            if not over and now - managed.finished_at <= self.retention:
                break  # the rest ended later
            if managed.readers > 0:
                continue
            evicted.append(run_id)
            count -= 1
            size -= managed.size
        for run_id in evicted:
            managed = self._finished.pop(run_id)
            self._finished_bytes -= managed.size
            del self._runs[run_id]
