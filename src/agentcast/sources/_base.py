"""What a source is, and what it is given: the contract between sources and the runtime.

This module imports no third-party framework, so the runtime can depend on it without pulling
in LangChain (see DESIGN.md, layers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from agentcast.events import BaseEvent, Message


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
    """

    input: str
    history: Sequence[Message] = ()
    run_id: str = ""
    session_id: str | None = None
    actor_id: str | None = None
    custom_data: Any = None
    options: dict[str, Any] = field(default_factory=dict)


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

    def emit_threadsafe(self, event: BaseEvent) -> None:
        """Like `emit`, callable from any thread; the event is stamped on the loop's thread."""
        ...

    def message(self, message: Message, *, node: str | None = None) -> None:
        """Record a completed message for the session history and emit its `agent_step`."""
        ...


@runtime_checkable
class Source(Protocol):
    """Anything that can execute a run by pushing events into a sink.

    `run` returns the final answer. It raises on failure; the runtime turns the exception into
    an `error` event, closes whatever the source left open, and ends the run.
    """

    async def run(self, request: RunRequest, sink: RunSink) -> Any:
        """Execute one run."""
        ...
