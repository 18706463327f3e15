"""The one base of every protocol encoder: agentcast's event stream projected onto a protocol.

A protocol encoder (AG-UI, the Vercel UI message stream, ...) is pure: it is fed agentcast
events in `seq` order and returns the protocol's chunks for each, holding only what the
protocol needs to remember (which message is open, which tool calls are streaming). No I/O,
no clock, no ids it did not derive from the events or its constructor, so a golden fixture
pins its output exactly.

Subclasses override the `on_<event type>` hooks they need (each returns the chunks for one
event; the default returns none) and `before_stream` / `after_stream`, which bracket the
stream. `close()` is the one ending: it runs `after_stream` exactly once, whether the stream
reached `agent_end` or was cut short (a reader that stopped, a log that ended early), so an
encoder can always close what it opened. This is the pattern of pydantic-ai's `ui/`
`UIEventStream`, over agentcast's events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

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
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolEnd,
    ToolStart,
)

__all__ = ["ProtocolEncoder"]

Chunk = TypeVar("Chunk")


class ProtocolEncoder(Generic[Chunk]):
    """Base class of the encoders that project agentcast events onto a front-end protocol.

    Use: `start()` once, `encode(event)` per event in order, `close()` once (also when the
    stream ended early). Each returns the list of the protocol's chunks to send, in order.
    `encode_all(events)` does all three for a finished stream (tests, golden fixtures).
    """

    def __init__(self) -> None:
        self._started = False
        self._closed = False
        self._hooks: dict[str, Callable[[BaseEvent], Iterable[Chunk]]] = {
            name: getattr(self, f"on_{name}") for name in _HOOKED
        }

    # -- driving -----------------------------------------------------------------------------

    def start(self) -> list[Chunk]:
        """Return the chunks that open the stream (idempotent: only the first call returns any)."""
        if self._started:
            return []
        self._started = True
        return list(self.before_stream())

    def encode(self, event: BaseEvent) -> list[Chunk]:
        """Return the protocol's chunks for one agentcast event (nothing after `close()`)."""
        if self._closed:
            return []
        chunks = self.start() if not self._started else []
        hook = self._hooks.get(event.type)
        if hook is not None:
            chunks.extend(hook(event))
        return chunks

    def close(self) -> list[Chunk]:
        """Return the chunks that end the stream; runs `after_stream` exactly once."""
        if self._closed:
            return []
        chunks = self.start() if not self._started else []
        self._closed = True
        chunks.extend(self.after_stream())
        return chunks

    @property
    def closed(self) -> bool:
        """Whether `close()` has run."""
        return self._closed

    def encode_all(self, events: Iterable[BaseEvent]) -> Iterator[Chunk]:
        """Yield every chunk of a whole stream: start, each event, close."""
        yield from self.start()
        for event in events:
            yield from self.encode(event)
        yield from self.close()

    # -- hooks (override what the protocol needs) --------------------------------------------

    def before_stream(self) -> Iterable[Chunk]:
        """Chunks sent before the first event."""
        return ()

    def after_stream(self) -> Iterable[Chunk]:
        """Chunks sent once at the end: close whatever is still open, then the terminal chunk."""
        return ()

    def on_agent_start(self, event: AgentStart) -> Iterable[Chunk]:
        """The run started."""
        return ()

    def on_llm_start(self, event: LLMStart) -> Iterable[Chunk]:
        """An LLM call started."""
        return ()

    def on_llm_token(self, event: LLMToken) -> Iterable[Chunk]:
        """A piece of text or reasoning."""
        return ()

    def on_tool_call_start(self, event: ToolCallStart) -> Iterable[Chunk]:
        """The model started writing a tool call."""
        return ()

    def on_tool_call_delta(self, event: ToolCallDelta) -> Iterable[Chunk]:
        """A piece of a tool call's raw JSON arguments."""
        return ()

    def on_tool_call_end(self, event: ToolCallEnd) -> Iterable[Chunk]:
        """A tool call's arguments are complete."""
        return ()

    def on_llm_end(self, event: LLMEnd) -> Iterable[Chunk]:
        """An LLM call ended."""
        return ()

    def on_tool_start(self, event: ToolStart) -> Iterable[Chunk]:
        """A tool started executing."""
        return ()

    def on_tool_end(self, event: ToolEnd) -> Iterable[Chunk]:
        """A tool finished (ok, error or cancelled)."""
        return ()

    def on_custom(self, event: Custom) -> Iterable[Chunk]:
        """A custom event from the agent."""
        return ()

    def on_agent_step(self, event: AgentStep) -> Iterable[Chunk]:
        """A completed message."""
        return ()

    def on_error(self, event: Error) -> Iterable[Chunk]:
        """An error inside the run."""
        return ()

    def on_agent_end(self, event: AgentEnd) -> Iterable[Chunk]:
        """The run ended; `after_stream` still follows via `close()`."""
        return ()


_HOOKED = (
    "agent_start",
    "llm_start",
    "llm_token",
    "tool_call_start",
    "tool_call_delta",
    "tool_call_end",
    "llm_end",
    "tool_start",
    "tool_end",
    "custom",
    "agent_step",
    "error",
    "agent_end",
)
