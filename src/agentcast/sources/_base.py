"""What a source is, and what it is given: the contract between sources and the runtime.

This module imports no third-party framework, so the runtime can depend on it without pulling
in LangChain (see DESIGN.md, layers).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from agentcast.events import BaseEvent, LLMEnd, Message, TokenKind
from agentcast.ids import session_key


@dataclass(frozen=True)
class RunRequest:
    """Everything a source needs to execute one run.

    Attributes:
        input: the user's prompt.
        history: the session's earlier messages, oldest first (already valid model input).
        run_id: the run's id.
        session_id: the conversation's id, if any.
        actor_id: who asked, if known.
        custom_data: opaque data the caller attached.
        owner: the namespace the session lives in (an API key's owner), None for the shared
            one. Another owner's session with the same id is another session.
        history_from_caller: the caller supplied `history` (a front-end that holds the
            conversation, as AG-UI and `useChat` do): the run answers from it and does not
            load the stored history; the turn is still saved to the session.
    """

    input: str
    history: Sequence[Message] = ()
    run_id: str = ""
    session_id: str | None = None
    actor_id: str | None = None
    custom_data: Any = None
    owner: str | None = None
    history_from_caller: bool = False

    @property
    def session_key(self) -> str | None:
        """Where the session is kept (store key, LangGraph `thread_id`): unique across owners."""
        return None if self.session_id is None else session_key(self.session_id, self.owner)


class RunSink(Protocol):
    """Where a source pushes what happens; implemented by `agentcast.runtime.Run`.

    `emit` stamps the envelope and must be called on the event loop's thread; a source's code
    running in a worker thread uses `emit_threadsafe`, which keeps the order of its calls.
    """

    @property
    def run_id(self) -> str:
        """The run's id."""
        ...

    def emit(self, event: BaseEvent) -> BaseEvent:
        """Stamp `event` with the envelope, append it to the run's log, and return it."""
        ...

    def emit_token(self, call_id: str, token: str, kind: TokenKind, depth: int) -> None:
        """Emit an `llm_token`, as `emit(LLMToken(...))` does, built with its envelope at once.

        The per-chunk path: one struct per token instead of an unstamped one and its stamped
        copy. On the loop's thread, like `emit`.
        """
        ...

    def emit_threadsafe(self, event: BaseEvent) -> None:
        """Like `emit`, callable from any thread; the event is stamped on the loop's thread."""
        ...

    def track_text(self, call_id: str, text: Callable[[], str]) -> None:
        """Tell the run where an open answer call's text so far is (it keeps no copy).

        A call cut short keeps that text in the turn, marked `interrupted`. A source calls this
        for each depth-0 LLM call before its `llm_start`; `LLMCallStream` does it when given
        `track_text`.
        """
        ...

    def message(self, message: Message, *, node: str | None = None) -> None:
        """Record a completed message for the session history and emit its `agent_step`."""
        ...

    def set_output(self, output: Any) -> None:
        """Set the run's output (default: the content of the turn's last assistant message)."""
        ...

    def interrupt(self, payload: Any) -> None:
        """Mark the run as paused for input (human in the loop): it ends `interrupted`."""
        ...

    async def wait_for_events(self, pending: Collection[asyncio.Future[Any]]) -> None:
        """Return when one of `pending` is done or a new event was pushed (by a task, a thread).

        For a source that must react to the events its concurrent work pushes; readers see
        them live without it (the run's log wakes them).
        """
        ...


def cut_llm_end(
    call_id: str,
    depth: int,
    reason: str,
    *,
    usage: dict[str, Any] | None = None,
    ttft_ms: float | None = None,
    duration_ms: float = 0.0,
) -> LLMEnd:
    """The `llm_end` of a call cut short (`error`, `cancelled`, `timeout`), whoever closes it.

    A source closes a call that failed while the run goes on (a retry, an LLM inside a tool
    that caught the error); the runtime closes what is still open when the run ends. Both
    build the closer here, so a cut call looks the same either way.

    Args:
        call_id: the LLM call.
        depth: its depth: 0 is the agent's answer, deeper calls are internal.
        reason: why it was cut short (its `finish_reason`).
        usage: the provider's usage so far, if the closer knows it.
        ttft_ms: time to its first token, if one came.
        duration_ms: how long it ran, if known.
    """
    return LLMEnd(
        call_id=call_id,
        finish_reason=reason,
        usage=usage,
        ttft_ms=ttft_ms,
        duration_ms=duration_ms,
        role="answer" if depth == 0 else "internal",
    )


@runtime_checkable
class Source(Protocol):
    """Anything that can execute a run by pushing events into a sink.

    `stream` is an async generator: it pushes events with `sink.emit`. The runtime iterates it
    in the run's own task and ignores what it yields; readers follow the run's log from theirs,
    and the log wakes them at every event, so a source need not yield for them to see it (and
    a yield per chunk would only cost a resume per chunk). It raises on failure; the
    runtime turns the exception into an `error` event, closes whatever the source left open,
    and ends the run. Closing the generator cancels the run:
    the source must stop its own tasks in `finally` and wait until they have ended (the run
    repairs and saves the turn right after), and close the generators it iterates.
    """

    def stream(self, request: RunRequest, sink: RunSink) -> AsyncIterator[Any]:
        """Execute one run."""
        ...
