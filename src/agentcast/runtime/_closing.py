"""How a run ends, whatever ended it: closers, the error, the repaired turn, the save, `agent_end`.

One closing path for every outcome (`success`, `error`, `cancelled`, `timeout`, `interrupted`):

- everything still open gets its closer before `agent_end` (invariant 2): `tool_call_end`,
  `tool_end`, then `llm_end`, each marked with why it was cut short;
- the turn is repaired so the saved history is valid input for the next model call
  (invariant 9): every tool call gets a result, a partial answer is kept marked `interrupted`;
- the failure, or the timeout, becomes one `error` event;
- the turn is saved, and a failed save turns the outcome into `error` (the turn was lost),
  with the store's code: `store_unavailable`, or `session_fenced` for a lock lost meanwhile;
- `agent_end` is the last event, and the log closes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from agentcast.errors import AgentcastError, ProviderError
from agentcast.events import (
    AgentEnd,
    Error,
    MessageStatus,
    Outcome,
    ToolCallEnd,
    ToolEnd,
    ToolStatus,
)
from agentcast.runtime._log import EventLog
from agentcast.runtime._result import RunResult
from agentcast.runtime._sink import Sink
from agentcast.sessions import SessionStore
from agentcast.sources._base import cut_llm_end

__all__ = ["RunCloser", "unfinished_tool"]

logger = logging.getLogger("agentcast")


def unfinished_tool(reason: str) -> str:
    """The text of a tool cut short by `reason`, live (`tool_end`) and in the saved result."""
    # One wording for both, so a page shows the same text for a cut-short tool during the run
    # and after a reload.
    return f"the tool did not finish ({reason})"


class RunCloser:
    """Ends one run: emits what closes it, repairs and saves its turn, builds its result.

    Args:
        sink: the run's sink (its state says what is open).
        log: the run's log, closed after `agent_end`.
        store: where the turn is saved (None: nowhere).
        session_key: the session in the store.
        actor_id: who asked, saved with the turn.
        timeout: the run's timeout, for the message of a `timeout` error.
        fence: the fencing token the turn is saved with (None: no lock across processes).
    """

    def __init__(
        self,
        sink: Sink,
        log: EventLog,
        *,
        store: SessionStore | None,
        session_key: str | None,
        actor_id: str | None,
        timeout: float | None,
        fence: int | None = None,
    ) -> None:
        self._sink = sink
        self._state = sink.state
        self._log = log
        self._store = store
        self._session_key = session_key
        self._actor_id = actor_id
        self._timeout = timeout
        self._fence = fence

    async def finish(
        self, outcome: Outcome, failure: BaseException | None, *, session_id: str | None
    ) -> tuple[RunResult, bool]:
        """Close the run; return its result, and whether its task was cancelled while saving.

        The caller re-raises that cancellation once the result is in place.
        """
        sink, state = self._sink, self._state
        sink.sealed = True
        reason = {"error": "error", "timeout": "timeout"}.get(outcome, "cancelled")
        output = state.final_output()
        partial_output = self._close_open(reason)
        error_message: str | None = None
        if failure is not None:
            error_message = self._emit_error(failure)
        elif outcome == "timeout":
            error_message = f"the run did not finish within {self._timeout:g} s"
            state.error_code = "timeout"
            state.errors += 1
            sink.emit(
                Error(
                    error=error_message,
                    error_type="TimeoutError",
                    code="timeout",
                    retryable=True,
                    partial=state.first_answer_token is not None,
                )
            )
        if outcome not in ("success", "interrupted"):
            output = partial_output
        metrics = state.metrics()
        save_error, cancelled = await self._save(outcome, metrics)
        if save_error is not None:
            # The turn is lost: the outcome says so, whatever the run itself achieved.
            outcome, error_message = "error", save_error
            metrics = state.metrics()  # the failed save counts among the errors
        sink.emit(AgentEnd(outcome=outcome, output=output, steps=state.steps, metrics=metrics))
        sink.ended = True
        self._log.close()
        result = RunResult(
            output=output,
            run_id=sink.run_id,
            session_id=session_id,
            steps=state.steps,
            metrics=metrics,
            outcome=outcome,
            error=error_message,
            error_code=state.error_code,
        )
        return result, cancelled

    def _close_open(self, reason: str) -> str | None:
        """Emit the closers of everything still open; repair the turn; return partial text."""
        sink, state = self._sink, self._state
        for tool_call_id, name in list(state.open_tool_calls.items()):
            sink.emit(
                ToolCallEnd(
                    tool_call_id=tool_call_id,
                    name=name,
                    error=f"the tool call was not completed ({reason})",
                    raw="",
                )
            )
        status: ToolStatus = "error" if reason == "error" else "cancelled"
        for tool_call_id, name in list(state.open_tools.items()):
            sink.emit(
                ToolEnd(
                    tool_call_id=tool_call_id,
                    name=name,
                    status=status,
                    error=unfinished_tool(reason),
                )
            )
        # Each closer moves its call's text so far into `cut_text` (`RunState`, on `llm_end`).
        for call_id, depth in list(state.open_llm.items()):
            sink.emit(cut_llm_end(call_id, depth, reason))
        partial = "".join(state.cut_text)
        self._repair_history(reason, partial)
        return partial or None

    def _repair_history(self, reason: str, partial: str) -> None:
        messages = self._state.messages
        answered = {m.get("tool_call_id") for m in messages if m["role"] == "tool"}
        status: MessageStatus = "error" if reason == "error" else "cancelled"
        for message in list(messages):
            for call in message.get("tool_calls", ()):
                if call["id"] not in answered:
                    self._sink.record(
                        {
                            "role": "tool",
                            "content": unfinished_tool(reason),
                            "tool_call_id": call["id"],
                            "name": call["name"],
                            "status": status,
                        }
                    )
                    answered.add(call["id"])
        if partial:
            self._sink.record({"role": "assistant", "content": partial, "status": "interrupted"})

    def _emit_error(self, failure: BaseException) -> str:
        state = self._state
        state.errors += 1
        if isinstance(failure, AgentcastError):
            code, retryable = failure.code, failure.retryable
        else:
            code, retryable = "internal_error", False
        state.error_code = code
        message = str(failure) or type(failure).__name__
        if isinstance(failure, ProviderError) or not isinstance(failure, AgentcastError):
            logger.debug("run %s failed", self._sink.run_id, exc_info=failure)
        self._sink.emit(
            Error(
                error=message,
                error_type=type(failure).__name__,
                code=code,
                retryable=retryable,
                partial=state.first_answer_token is not None,
            )
        )
        return message

    async def _save(self, outcome: Outcome, metrics: dict[str, Any]) -> tuple[str | None, bool]:
        """Save the turn; return why it was not saved, and whether the task was cancelled.

        The append runs in a task of its own, awaited with `asyncio.wait`: anyio's shield
        does not stop asyncio's `Task.cancel()` (`asyncio.run` cancels every task left at exit),
        and a turn must not be lost half-way through its save.
        """
        store, session_key, state = self._store, self._session_key, self._state
        if store is None or session_key is None or not state.messages:
            return None, False
        state.display.annotate(
            state.messages, run_id=self._sink.run_id, outcome=outcome, metrics=metrics
        )
        began = False

        async def append() -> None:
            nonlocal began
            began = True
            if self._fence is None:
                # Without the keyword: a custom store from before `fence=` still saves here.
                await store.append(session_key, state.messages, actor_id=self._actor_id)
            else:
                await store.append(
                    session_key, state.messages, actor_id=self._actor_id, fence=self._fence
                )

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
            state.errors += 1
            state.error_code = "session_error"
            message = "the turn was not saved: its save was cancelled"
            self._sink.emit(Error(error=message, error_type="CancelledError", code="session_error"))
            return message, cancelled
        failure = save.exception()
        if failure is None:
            return None, cancelled
        if not isinstance(failure, Exception):
            raise failure
        return self._emit_error(failure), cancelled
