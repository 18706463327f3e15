"""`Run`: one execution of a source, driven by one lifecycle whoever reads it.

One driver executes the source: `execute()`, in a task of its own, independent of readers (they
follow the log with `events()`, or with `iterate()`, whose iterator also cancels the run when it
is closed or dropped). Nothing of the run lives in a reader's task: no cancel scope, no store
call, no source generator is held across a `yield` to a consumer, so a consumer that leaves early
(even one Python finalizes at `asyncio.run`'s exit) leaves no cleanup to a foreign context.

The parts: the source pushes into the run's `Sink` (`_sink`: stamping `seq`, the one place), which
keeps the run's `RunState` (`_state`: what is open, the turn, metrics) and appends to its
`EventLog` (`_log`); `RunCloser` (`_closing`) ends the run on every path. This module is the
lifecycle: start, the one cancel scope, the timeout, handlers, and the hand-off to the closer.

Flows:
- normal end: the source finishes -> session saved -> `agent_end(success)`.
- source raises: closers -> `error` -> session saved -> `agent_end(error)`.
- `cancel()` or timeout: the source's cancel scope is cancelled (LLM request and tools stop)
  -> closers -> (timeout: `error`) -> session saved -> `agent_end(cancelled|timeout)`.
- the task itself is cancelled from outside: the same closing, then the cancellation propagates.
- the save fails: `error` (the store's code) -> `agent_end(error)`: the turn was not kept;
  also when the store refuses the run's fencing token (`session_fenced`: it lost its lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

import anyio

from agentcast.events import AgentStart, BaseEvent, Outcome
from agentcast.runtime._closing import RunCloser
from agentcast.runtime._log import EventLog, LogReader
from agentcast.runtime._reader import RunEvents
from agentcast.runtime._result import RunResult, new_id
from agentcast.runtime._sink import Sink
from agentcast.runtime._state import RunState
from agentcast.sessions import SessionStore
from agentcast.sources._base import RunRequest, Source

__all__ = ["EventHandler", "Run", "RunEvents", "RunResult", "new_id"]

logger = logging.getLogger("agentcast")

EventHandler = Callable[[BaseEvent], Awaitable[None] | None]
"""A consumer that is called with every event of a run, in order."""


_detached: set[asyncio.Task[RunResult]] = set()
"""Runs executing in tasks of their own for an iterator: the loop holds tasks only weakly."""


class Run:
    """One execution of a `Source`: the source pushes into the run's sink, readers read its log.

    Args:
        source: what executes the run.
        request: the input; `history` is loaded from `store` when a store is given.
        store: where the session's history is loaded from and the turn saved to.
        timeout: seconds before the run is stopped with outcome `timeout`.
        handlers: called with every event, in order, from a task of their own (a slow handler
            never stalls the source).
        log_limit: how many events the run's log retains for late readers.
        fence: the fencing token the turn is saved with (`SessionStore.append`); None when
            no lock across processes holds the session.
    """

    def __init__(
        self,
        source: Source,
        request: RunRequest,
        *,
        store: SessionStore | None = None,
        timeout: float | None = None,
        handlers: Sequence[EventHandler] = (),
        log_limit: int = 100_000,
        fence: int | None = None,
    ) -> None:
        self._run_id = request.run_id or new_id()
        self.request = replace(request, run_id=self._run_id)
        self.session_id = request.session_id
        # What the store knows the session by: the id within its owner's namespace. Events
        # carry `session_id`, the caller's own name for it.
        self.session_key = self.request.session_key
        self._source = source
        self._store = store
        self._timeout = timeout
        self._fence = fence
        self._handlers = tuple(handlers)
        self.log = EventLog(log_limit)
        self._state = RunState()
        self._sink = Sink(self._run_id, self.session_id, self.log, self._state)
        self._spawned = False
        self._cancel_requested = False
        self._failure: Exception | None = None
        self._scope: anyio.CancelScope | None = None
        self.result: RunResult | None = None
        # Made by the first `wait()` only: an `asyncio.Event` (and its deque) per run is
        # ~0.8 KB that a streamed run, which nobody waits for, never needs.
        self._finished = False
        self._done: asyncio.Event | None = None

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self._run_id

    @property
    def done(self) -> bool:
        """Whether `agent_end` has been emitted."""
        return self._sink.ended

    @property
    def started(self) -> bool:
        """Whether the run was started (`execute()` called, or an iterator began reading)."""
        return self._spawned or self._sink.loop is not None

    def cancel(self) -> None:
        """Stop the run: the LLM request and the tools are cancelled; it ends `cancelled`."""
        self._cancel_requested = True
        if self._scope is not None:
            self._scope.cancel()

    def fail(self, error: Exception) -> None:
        """Stop the run because of `error`, from outside the source.

        For a process that lost what it needs to go on (its broker): the run ends with that
        `error` and outcome `error`.
        """
        if self._failure is None:
            self._failure = error
        self.cancel()

    async def wait(self) -> RunResult:
        """Wait until the run has ended and its session is saved."""
        if not self._finished:
            if self._done is None:
                self._done = asyncio.Event()
            await self._done.wait()
        assert self.result is not None
        return self.result

    def events(self, after: int = -1) -> LogReader:
        """Read the run's events with `seq > after`, live, until `agent_end`.

        Raises:
            ResumeGap: `after` is older than what the run's bounded log still holds.
            InvalidInput: `after` is past the run's last event.
        """
        return LogReader(self.log, after)

    async def execute(self) -> RunResult:
        """Execute the run to its end in the current task; readers follow with `events()`.

        The run's lifetime is independent of its readers: none, one or many may read, attach
        late, or leave. `cancel()` and the timeout apply. Never raises, except when the task
        is cancelled from outside (after the run was closed and saved).
        """
        if self._sink.loop is not None:
            raise RuntimeError(f"run {self._run_id} was already started")
        self._sink.loop = asyncio.get_running_loop()
        self._state.mark_started()
        try:
            if self._handlers:
                async with anyio.create_task_group() as handlers_group:
                    for handler in self._handlers:
                        handlers_group.start_soon(self._feed_handler, handler)
                    await self._execute()
            else:  # the server's case: no task group to enter and leave per run
                await self._execute()
        finally:
            if not self.log.closed:  # only after a bug in the runtime: readers must not hang
                self.log.close()
            self._finished = True
            if self._done is not None:
                self._done.set()
        assert self.result is not None
        return self.result

    def iterate(self, *, tokens: bool = True) -> RunEvents:
        """Read the run's events, executing it in a task of its own when nobody else does.

        The returned iterator owns the run: the run starts at the first `__anext__`, and
        closing the iterator (`aclose()`, `contextlib.aclosing`) cancels a run that has not
        ended and returns once it ended and its turn is saved. An iterator dropped without
        being closed (`break`, an exception in the loop, garbage collection) cancels the run
        too; the run's own task closes what is open, repairs and saves the turn, so nothing of
        it runs where Python finalizes the iterator. `tokens=False` leaves out `llm_token`.
        """
        return RunEvents(self, tokens=tokens)

    def _spawn(self) -> None:
        """Start `execute()` in a task of its own, unless the run was already started."""
        if self.started:
            return
        self._spawned = True
        task = asyncio.get_running_loop().create_task(self.execute(), name=self._run_id)
        # The loop keeps only weak references to tasks: a run nobody reads any more must
        # still get to its save.
        _detached.add(task)
        task.add_done_callback(_detached.discard)

    def _abandon(self) -> None:
        """Cancel the run from wherever its last reader was dropped (any thread, any time)."""
        loop = self._sink.loop
        if loop is None or self.done:
            if self._spawned:  # its task is about to start: stop it there
                self._cancel_requested = True
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self.cancel()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self.cancel)

    async def _begin(self) -> RunRequest:
        """Log `agent_start`, load the history, record the user's message."""
        request = self.request
        self._sink.emit(
            AgentStart(
                input=request.input, actor_id=request.actor_id, custom_data=request.custom_data
            )
        )
        if (
            self._store is not None
            and self.session_key is not None
            and not request.history_from_caller
        ):
            history = await self._store.load(self.session_key)
            request = replace(request, history=history)
        self._sink.message({"role": "user", "content": request.input})
        return request

    async def _execute(self) -> None:
        failure: BaseException | None = None
        outcome: Outcome = "cancelled"  # unless the source is seen through to its end
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                if self._cancel_requested:
                    scope.cancel()
                if self._timeout is not None:
                    scope.deadline = anyio.current_time() + self._timeout
                try:
                    request = await self._begin()
                    # Iterated here, not through another generator layer: each costs a resume
                    # per item.
                    stream = self._source.stream(request, self._sink)
                    async with contextlib.aclosing(stream):  # type: ignore[type-var]
                        async for _ in stream:
                            pass
                except Exception as exc:  # noqa: BLE001 - every failure becomes an event
                    failure = exc
                outcome = self._outcome(failure)
            if scope.cancelled_caught:
                outcome = "cancelled" if self._cancel_requested else "timeout"
            if self._failure is not None and failure is None:
                failure, outcome = self._failure, "error"
        finally:
            # Also reached when the task is cancelled from outside (by its owner, or by
            # `asyncio.run` cancelling what is left at exit): close, save, then propagate.
            self._scope = None
            closer = RunCloser(
                self._sink,
                self.log,
                store=self._store,
                session_key=self.session_key,
                actor_id=self.request.actor_id,
                timeout=self._timeout,
                fence=self._fence,
            )
            self.result, cancelled = await closer.finish(
                outcome, failure, session_id=self.session_id
            )
            if cancelled:
                raise asyncio.CancelledError  # the task was cancelled while it saved: honour it

    def _outcome(self, failure: BaseException | None) -> Outcome:
        if failure is not None:
            return "error"
        return "interrupted" if self._state.interrupted else "success"

    async def _feed_handler(self, handler: EventHandler) -> None:
        async for event in LogReader(self.log):
            try:
                result = handler(event)
                if result is not None:
                    await result
            except Exception:  # noqa: BLE001 - a broken handler must not break the run
                logger.exception("event handler %r failed on %s", handler, event.type)
