"""`RecordingSink`: a `RunSink` that records what a source pushes, for testing a source alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import msgspec

from agentcast.events import AgentStep, BaseEvent, LLMToken, Message, TokenKind

if TYPE_CHECKING:
    from agentcast.sources import RunSink

__all__ = ("RecordingSink",)

_STEP_TYPES = {"user": "human", "assistant": "ai", "tool": "tool"}


class RecordingSink:
    """A `RunSink` that keeps everything a source pushes, without the runtime.

    `emit` stamps `run_id`, `seq` and `ts` the way the runtime does; `message` records the
    message and emits its `agent_step`. It adds no `agent_start`/`agent_end` (the runtime
    does), so check a source's events with the runtime around it (`agentcast.run`), or
    inspect `events` directly.

    Attributes:
        events: every emitted event, stamped, in order.
        messages: the completed messages of the turn, in order.
        output: what the source set with `set_output` (or `interrupt`), else None.
        interrupted: whether the source called `interrupt`.
    """

    def __init__(self, run_id: str = "run-test", *, session_id: str | None = None) -> None:
        """Create an empty sink.

        Args:
            run_id: the id stamped on every event.
            session_id: the session id stamped on every event.
        """
        self._run_id = run_id
        self._session_id = session_id
        self._new_event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.events: list[BaseEvent] = []
        self.messages: list[Message] = []
        self.output: Any = None
        self.interrupted = False
        self.texts: dict[str, Callable[[], str]] = {}
        """Each tracked answer call's text so far (`track_text`), by call id."""

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self._run_id

    @property
    def types(self) -> list[str]:
        """The `type` of every recorded event, in order (handy in assertions)."""
        return [event.type for event in self.events]

    def emit(self, event: BaseEvent) -> BaseEvent:
        """Stamp `event` with the envelope, record it, and return it."""
        event = msgspec.structs.replace(
            event,
            run_id=self._run_id,
            seq=len(self.events),
            ts=time.time_ns() // 1_000_000,
            session_id=self._session_id,
        )
        self.events.append(event)
        if self._new_event is not None:
            self._new_event.set()
        return event

    def emit_token(self, call_id: str, token: str, kind: TokenKind, depth: int) -> None:
        """Record an `llm_token`, stamped as `emit` stamps it."""
        self.emit(LLMToken(call_id=call_id, token=token, kind=kind, depth=depth))

    def emit_threadsafe(self, event: BaseEvent) -> None:
        """Record from any thread; calls from one thread keep their order.

        Off the loop's thread (the loop is the one `wait_for_events` or a first `emit` on the
        loop ran on) the event is recorded on the loop; with no loop known it is recorded now.
        """
        loop = self._loop
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop:
            self.emit(event)
        else:
            loop.call_soon_threadsafe(self.emit, event)

    def track_text(self, call_id: str, text: Callable[[], str]) -> None:
        """Keep where an answer call's text so far is, as the runtime does (`texts`)."""
        self.texts[call_id] = text

    def message(self, message: Message, *, node: str | None = None) -> None:
        """Record a completed message and emit its `agent_step`."""
        self.messages.append(message)
        kind = _STEP_TYPES.get(message["role"], "ai")
        self.emit(
            AgentStep(
                step=len(self.messages),
                node=node,
                message_type=kind,  # type: ignore[arg-type]
                content=message.get("content"),
            )
        )

    def set_output(self, output: Any) -> None:
        """Record the run's output."""
        self.output = output

    def interrupt(self, payload: Any) -> None:
        """Record that the source paused for input, with `payload` as the output."""
        self.interrupted = True
        self.output = payload

    def bind(self) -> None:
        """Use the running event loop for `emit_threadsafe` (call before starting threads)."""
        self._loop = asyncio.get_running_loop()

    async def wait_for_events(self, pending: Collection[asyncio.Future[Any]]) -> None:
        """Return when one of `pending` is done or a new event was recorded."""
        self._loop = asyncio.get_running_loop()
        new_event = self._new_event = asyncio.Event()
        waiter = asyncio.ensure_future(new_event.wait())
        try:
            await asyncio.wait({waiter, *pending}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            self._new_event = None


if TYPE_CHECKING:
    # mypy checks here that the sink satisfies the protocol sources are typed against.
    _SINK: RunSink = RecordingSink()
