"""`Run`: one execution of a source, and the guarantees every consumer relies on.

The run is the only place that stamps `seq`, so order is decided once, on the event loop's
thread, whatever produced the event (the agent loop, a tool's task, a sync tool's worker thread,
a nested LLM's callbacks). It tracks what is open and, on error, timeout or cancel, closes it
before `agent_end` (invariant 2). It keeps the turn's messages and repairs them on a stop
(invariant 9): every tool call gets a result, a partial answer is kept marked `interrupted`.

One driver executes the source: `execute()`, in a task of its own, independent of readers (they
follow the log with `events()`, or with `iterate()`, whose iterator also cancels the run when it
is closed or dropped). Nothing of the run lives in a reader's task: no cancel scope, no store
call, no source generator is held across a `yield` to a consumer, so a consumer that leaves early
(even one Python finalizes at `asyncio.run`'s exit) leaves no cleanup to a foreign context. A
source is an async generator: it pushes events into the run (the sink) and yields whenever a
reader should see them before it waits on something.

Flows:
- normal end: the source finishes -> session saved -> `agent_end(success)`.
- source raises: closers -> `error` -> session saved -> `agent_end(error)`.
- `cancel()` or timeout: the source's cancel scope is cancelled (LLM request and tools stop)
  -> closers -> (timeout: `error`) -> session saved -> `agent_end(cancelled|timeout)`.
- the task itself is cancelled from outside: the same closing, then the cancellation propagates.
- the save fails: `error` (the store's code) -> `agent_end(error)`: the turn was not kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import replace
from typing import Any

import anyio
import msgspec

from agentcast.errors import AgentcastError, ProviderError
from agentcast.events import (
    AgentEnd,
    AgentStart,
    AgentStep,
    BaseEvent,
    Custom,
    Error,
    LLMEnd,
    LLMStart,
    LLMToken,
    Message,
    MessageStatus,
    Outcome,
    ToolCallEnd,
    ToolCallStart,
    ToolEnd,
    ToolStart,
    ToolStatus,
)
from agentcast.runtime._display import TurnRecorder
from agentcast.runtime._log import EventLog, LogReader
from agentcast.runtime._reader import RunEvents
from agentcast.runtime._result import RunResult, new_id
from agentcast.sessions import SessionStore
from agentcast.sources._base import RunRequest, Source, cut_llm_end

__all__ = ["Run", "RunEvents", "RunResult", "new_id"]

logger = logging.getLogger("agentcast")

EventHandler = Callable[[BaseEvent], Awaitable[None] | None]
"""A consumer that is called with every event of a run, in order."""


_CUT_SHORT = frozenset({"error", "cancelled", "timeout"})

_detached: set[asyncio.Task[RunResult]] = set()
"""Runs executing in tasks of their own for an iterator: the loop holds tasks only weakly."""


def _unfinished_tool(reason: str) -> str:
    # One wording for the live `tool_end` and the saved tool result, so a page shows the same
    # text for a cut-short tool during the run and after a reload.
    return f"the tool did not finish ({reason})"


class Run:
    """One execution of a `Source`; implements the `RunSink` the source pushes into.

    Args:
        source: what executes the run.
        request: the input; `history` is loaded from `store` when a store is given.
        store: where the session's history is loaded from and the turn saved to.
        timeout: seconds before the run is stopped with outcome `timeout`.
        handlers: called with every event, in order, from a task of their own (a slow handler
            never stalls the source).
        log_limit: how many events the run's log retains for late readers.
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
        self._handlers = tuple(handlers)
        self.log = EventLog(log_limit)
        self._seq = 0
        self._ended = False
        self._sealed = False  # the turn is being repaired and saved: no more messages
        self._spawned = False
        self._cancel_requested = False
        self._scope: anyio.CancelScope | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = time.perf_counter()
        self._first_answer_token: float | None = None
        # what is open, for the closers
        self._open_llm: dict[str, int] = {}  # call_id -> depth
        self._open_tool_calls: dict[str, str] = {}  # tool_call_id -> name
        self._open_tools: dict[str, str] = {}
        # top-level call_id -> its text so far, read from the source's call (`track_text`)
        self._text_of: dict[str, Callable[[], str]] = {}
        self._cut_text: list[str] = []  # text of top-level calls that ended in error/cancel
        # the turn
        self._messages: list[Message] = []
        self._display = TurnRecorder()  # what a page needs to redraw the turn from history
        self._steps = 0
        # metrics
        self._tokens = 0
        self._generating: list[tuple[float, float]] = []  # each call's first output -> end
        self._tool_calls = 0
        self._errors = 0
        self._llm_calls = 0
        self._usage: dict[str, int] | None = None
        self._output: Any = None
        self._has_output = False
        self._interrupted = False
        self._error_code: str | None = None
        self.result: RunResult | None = None
        self._done = asyncio.Event()

    # -- RunSink --------------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self._run_id

    def emit(self, event: BaseEvent) -> BaseEvent:
        """Stamp the envelope, track what opens and closes, append to the log."""
        if self._ended:
            logger.debug("dropped %s emitted after agent_end of %s", event.type, self._run_id)
            return event
        seq = self._seq
        self._seq = seq + 1
        event = msgspec.structs.replace(
            event,
            run_id=self._run_id,
            seq=seq,
            ts=time.time_ns() // 1_000_000,
            session_id=self.session_id,
        )
        if event.__class__ is LLMToken:
            self._on_token(event)  # type: ignore[arg-type]
        else:
            self._track(event)
        self.log.append(event)
        return event

    def emit_threadsafe(self, event: BaseEvent) -> None:
        """Emit from any thread; calls from one thread keep their order."""
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self.emit(event)
        else:
            loop.call_soon_threadsafe(self._emit_from_thread, event)

    def _emit_from_thread(self, event: BaseEvent) -> None:
        # A worker thread can outlive its tool's task (a sync tool is not interrupted): once the
        # run is closing, what it still sends would land after the closers.
        if self._sealed:
            logger.debug("dropped %s from a thread: %s is closing", event.type, self._run_id)
            return
        self.emit(event)

    def track_text(self, call_id: str, text: Callable[[], str]) -> None:
        """Read an open answer call's text from `text()` if the call is cut short."""
        # Callable from a worker thread: one dict store is atomic, and the loop only pops.
        self._text_of[call_id] = text

    def message(self, message: Message, *, node: str | None = None) -> None:
        """Record a completed message of the turn and emit its `agent_step`.

        Ignored once the run is closing: the turn is repaired and saved once, and a result
        arriving after that (a tool that outlived the cancel) would contradict the repair.
        """
        if self._sealed:
            logger.debug("dropped a %s message: %s is closing", message["role"], self._run_id)
            return
        self._record(message, node)

    def _record(self, message: Message, node: str | None = None) -> None:
        self._messages.append(message)
        self._emit_step(message, node)

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """Whether `agent_end` has been emitted."""
        return self._ended

    @property
    def started(self) -> bool:
        """Whether the run was started (`execute()` called, or an iterator began reading)."""
        return self._spawned or self._loop is not None

    def cancel(self) -> None:
        """Stop the run: the LLM request and the tools are cancelled; it ends `cancelled`."""
        self._cancel_requested = True
        if self._scope is not None:
            self._scope.cancel()

    async def wait(self) -> RunResult:
        """Wait until the run has ended and its session is saved."""
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
        if self._loop is not None:
            raise RuntimeError(f"run {self._run_id} was already started")
        self._loop = asyncio.get_running_loop()
        self._started = time.perf_counter()
        try:
            async with anyio.create_task_group() as handlers_group:
                for handler in self._handlers:
                    handlers_group.start_soon(self._feed_handler, handler)
                await self._execute()
        finally:
            if not self.log.closed:  # only after a bug in the runtime: readers must not hang
                self.log.close()
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
        if self._spawned or self._loop is not None:
            return
        self._spawned = True
        task = asyncio.get_running_loop().create_task(self.execute(), name=self._run_id)
        # The loop keeps only weak references to tasks: a run nobody reads any more must
        # still get to its save.
        _detached.add(task)
        task.add_done_callback(_detached.discard)

    def _abandon(self) -> None:
        """Cancel the run from wherever its last reader was dropped (any thread, any time)."""
        loop = self._loop
        if loop is None or self._ended:
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
        self.emit(
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
        self.message({"role": "user", "content": request.input})
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
                    # per token.
                    stream = self._source.stream(request, self)
                    async with contextlib.aclosing(stream):  # type: ignore[type-var]
                        async for _ in stream:
                            pass
                except Exception as exc:  # noqa: BLE001 - every failure becomes an event
                    failure = exc
                outcome = self._outcome(failure)
            if scope.cancelled_caught:
                outcome = "cancelled" if self._cancel_requested else "timeout"
        finally:
            # Also reached when the task is cancelled from outside (by its owner, or by
            # `asyncio.run` cancelling what is left at exit): close, save, then propagate.
            self._scope = None
            await self._finish(outcome, failure)

    async def wait_for_events(self, pending: Collection[asyncio.Future[Any]]) -> None:
        """Return when one of `pending` is done or a new event has been logged."""
        waiter = self.log.waiter()

        def wake(_: object) -> None:
            if not waiter.done():
                waiter.set_result(None)

        for future in pending:
            future.add_done_callback(wake)
        try:
            await waiter
        finally:
            waiter.cancel()
            for future in pending:
                future.remove_done_callback(wake)

    def set_output(self, output: Any) -> None:
        """Set the run's output (default: the content of the turn's last assistant message)."""
        self._output = output
        self._has_output = True

    def interrupt(self, payload: Any) -> None:
        """Mark the run as paused for input: it ends `interrupted`, its output the payload."""
        self._interrupted = True
        self.set_output(payload)

    async def _finish(self, outcome: Outcome, failure: BaseException | None) -> None:
        self._sealed = True
        reason = {"error": "error", "timeout": "timeout"}.get(outcome, "cancelled")
        output = self._final_output()
        partial_output = self._close_open(reason)
        error_message: str | None = None
        if failure is not None:
            error_message = self._emit_error(failure)
        elif outcome == "timeout":
            error_message = f"the run did not finish within {self._timeout:g} s"
            self._error_code = "timeout"
            self._errors += 1
            self.emit(
                Error(
                    error=error_message,
                    error_type="TimeoutError",
                    code="timeout",
                    retryable=True,
                    partial=self._first_answer_token is not None,
                )
            )
        if outcome not in ("success", "interrupted"):
            output = partial_output
        metrics = self._metrics()
        save_error, cancelled = await self._save(outcome, metrics)
        if save_error is not None:
            # The turn is lost: the outcome says so, whatever the run itself achieved.
            outcome, error_message = "error", save_error
            metrics = self._metrics()  # the failed save counts among the errors
        self.emit(AgentEnd(outcome=outcome, output=output, steps=self._steps, metrics=metrics))
        self._ended = True
        self.log.close()
        self.result = RunResult(
            output=output,
            run_id=self._run_id,
            session_id=self.session_id,
            steps=self._steps,
            metrics=metrics,
            outcome=outcome,
            error=error_message,
            error_code=self._error_code,
        )
        if cancelled:
            raise asyncio.CancelledError  # the task was cancelled while it saved: honour it

    # -- tracking -------------------------------------------------------------------------

    def _on_token(self, event: LLMToken) -> None:
        self._tokens += 1
        if event.depth == 0 and event.kind == "text":
            if self._first_answer_token is None:
                self._first_answer_token = time.perf_counter()
        elif event.depth:
            self._display.token(event)

    def _track(self, event: BaseEvent) -> None:
        cls = event.__class__
        if cls is LLMStart:
            assert isinstance(event, LLMStart)
            self._open_llm[event.call_id] = event.depth
            self._llm_calls += 1
            self._display.llm_start(event)
        elif cls is LLMEnd:
            assert isinstance(event, LLMEnd)
            self._open_llm.pop(event.call_id, None)
            text = self._text_of.pop(event.call_id, None)
            if text is not None and event.finish_reason in _CUT_SHORT:
                # The source closed a call that failed mid-answer: keep what it said.
                self._cut_text.append(text())
            if event.usage:
                total = self._usage or {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
                for key in total:
                    total[key] += int(event.usage.get(key) or 0)
                self._usage = total
            self._count_output(event)
        elif cls is ToolCallStart:
            assert isinstance(event, ToolCallStart)
            self._open_tool_calls[event.tool_call_id] = event.name
            self._tool_calls += 1
        elif cls is ToolCallEnd:
            assert isinstance(event, ToolCallEnd)
            self._open_tool_calls.pop(event.tool_call_id, None)
        elif cls is ToolStart:
            assert isinstance(event, ToolStart)
            if event.tool_call_id in self._open_tool_calls:
                raise RuntimeError(f"tool {event.name!r} started before its tool_call_end")
            self._open_tools[event.tool_call_id] = event.name
        elif cls is ToolEnd:
            assert isinstance(event, ToolEnd)
            self._open_tools.pop(event.tool_call_id, None)
            if event.status == "error":
                self._errors += 1
        elif cls is Custom:
            assert isinstance(event, Custom)
            self._display.custom(event)
        elif cls is Error:
            assert isinstance(event, Error)
            self._display.error(event)

    def _close_open(self, reason: str) -> str | None:
        """Emit the closers of everything still open; repair the turn; return partial text."""
        for tool_call_id, name in list(self._open_tool_calls.items()):
            self.emit(
                ToolCallEnd(
                    tool_call_id=tool_call_id,
                    name=name,
                    error=f"the tool call was not completed ({reason})",
                    raw="",
                )
            )
        status: ToolStatus = "error" if reason == "error" else "cancelled"
        for tool_call_id, name in list(self._open_tools.items()):
            self.emit(
                ToolEnd(
                    tool_call_id=tool_call_id,
                    name=name,
                    status=status,
                    error=_unfinished_tool(reason),
                )
            )
        # Each closer moves its call's text so far into `_cut_text` (`_track`, on `llm_end`).
        for call_id, depth in list(self._open_llm.items()):
            self.emit(cut_llm_end(call_id, depth, reason))
        partial = "".join(self._cut_text)
        self._repair_history(reason, partial)
        return partial or None

    def _repair_history(self, reason: str, partial: str) -> None:
        answered = {m.get("tool_call_id") for m in self._messages if m["role"] == "tool"}
        status: MessageStatus = "error" if reason == "error" else "cancelled"
        for message in list(self._messages):
            for call in message.get("tool_calls", ()):
                if call["id"] not in answered:
                    self._record(
                        {
                            "role": "tool",
                            "content": _unfinished_tool(reason),
                            "tool_call_id": call["id"],
                            "name": call["name"],
                            "status": status,
                        }
                    )
                    answered.add(call["id"])
        if partial:
            self._record({"role": "assistant", "content": partial, "status": "interrupted"})

    def _emit_error(self, failure: BaseException) -> str:
        self._errors += 1
        if isinstance(failure, AgentcastError):
            code, retryable = failure.code, failure.retryable
        else:
            code, retryable = "internal_error", False
        self._error_code = code
        message = str(failure) or type(failure).__name__
        if isinstance(failure, ProviderError) or not isinstance(failure, AgentcastError):
            logger.debug("run %s failed", self._run_id, exc_info=failure)
        self.emit(
            Error(
                error=message,
                error_type=type(failure).__name__,
                code=code,
                retryable=retryable,
                partial=self._first_answer_token is not None,
            )
        )
        return message

    def _emit_step(self, message: Message, node: str | None) -> None:
        self._steps += 1
        kind = {"user": "human", "assistant": "ai", "tool": "tool"}.get(message["role"], "ai")
        self.emit(
            AgentStep(
                step=self._steps,
                node=node,
                message_type=kind,  # type: ignore[arg-type]
                content=message.get("content"),
            )
        )

    async def _save(self, outcome: Outcome, metrics: dict[str, Any]) -> tuple[str | None, bool]:
        """Save the turn; return why it was not saved, and whether the task was cancelled.

        The append runs in a task of its own, awaited with `asyncio.wait`: anyio's shield
        does not stop asyncio's `Task.cancel()` (`asyncio.run` cancels every task left at exit),
        and a turn must not be lost half-way through its save.
        """
        store, session_key = self._store, self.session_key
        if store is None or session_key is None or not self._messages:
            return None, False
        self._display.annotate(
            self._messages, run_id=self._run_id, outcome=outcome, metrics=metrics
        )
        began = False

        async def append() -> None:
            nonlocal began
            began = True
            await store.append(session_key, self._messages, actor_id=self.request.actor_id)

        cancelled = False
        while True:
            save = asyncio.ensure_future(append())
            while not save.done():
                try:
                    await asyncio.wait((save,))  # never cancels `save`, never raises its error
                except asyncio.CancelledError:
                    cancelled = True
            if not save.cancelled() or began:
                break
            # Cancelled before its first step (the round of cancels at `asyncio.run`'s exit):
            # nothing was written, and a task created after that round is not in it.
        if save.cancelled():
            self._errors += 1
            self._error_code = "session_error"
            message = "the turn was not saved: its save was cancelled"
            self.emit(Error(error=message, error_type="CancelledError", code="session_error"))
            return message, cancelled
        failure = save.exception()
        if failure is None:
            return None, cancelled
        if not isinstance(failure, Exception):
            raise failure
        return self._emit_error(failure), cancelled

    def _outcome(self, failure: BaseException | None) -> Outcome:
        if failure is not None:
            return "error"
        return "interrupted" if self._interrupted else "success"

    def _final_output(self) -> Any:
        if self._has_output:
            return self._output
        for message in reversed(self._messages):
            if message["role"] == "assistant":
                return message["content"]
        return None

    def _count_output(self, end: LLMEnd) -> None:
        """Record when an ended LLM call was generating: from its first output to its end."""
        if end.ttft_ms is not None and end.duration_ms > end.ttft_ms:
            now = time.perf_counter()  # `llm_end` is emitted as the call ends
            self._generating.append((now - (end.duration_ms - end.ttft_ms) / 1000, now))

    def _generating_s(self) -> float:
        """Seconds during which at least one LLM call was generating (overlaps counted once)."""
        total, reach = 0.0, float("-inf")
        for start, end in sorted(self._generating):
            if end > reach:
                total += end - max(start, reach)
                reach = end
        return total

    def _metrics(self) -> dict[str, Any]:
        """The run's metrics (README, "Metrics", defines each one).

        `tokens_per_s` is the models' generation speed: output tokens divided by the time the
        LLM calls were generating (each call from its first output to its end; parallel calls'
        overlap counted once). Waiting for a first token, tools and the runtime's own work are
        left out, so tools or reasoning do not inflate or dilute it. Computed from the calls'
        `llm_end` timings, with no work per token.
        """
        end = time.perf_counter()
        tokens = self._usage["output_tokens"] if self._usage else self._tokens
        first = self._first_answer_token
        generating = self._generating_s()
        return {
            "tokens": tokens,
            "tool_calls": self._tool_calls,
            "errors": self._errors,
            "ttft_ms": round((first - self._started) * 1000, 3) if first is not None else None,
            "duration_ms": round((end - self._started) * 1000, 3),
            "tokens_per_s": round(tokens / generating, 1) if generating > 0 else None,
            "llm_calls": self._llm_calls,
            "usage": dict(self._usage, source="provider") if self._usage else None,
        }

    async def _feed_handler(self, handler: EventHandler) -> None:
        async for event in LogReader(self.log):
            try:
                result = handler(event)
                if result is not None:
                    await result
            except Exception:  # noqa: BLE001 - a broken handler must not break the run
                logger.exception("event handler %r failed on %s", handler, event.type)
