"""Callback handlers, for people who prefer callbacks to iterators.

A handler is attached to a run (`Agent(callbacks=[...])` or `agent.astream(..., callbacks=[...])`)
and sees the same events, in the same order, as an iterator on that run: it reads the run's log
from a task of its own, so a slow handler never stalls the model. Methods may be sync or async.
`on_llm_new_token` always receives a plain `str`, whatever the provider streamed.
"""

from __future__ import annotations

import inspect
import sys
from collections import defaultdict
from typing import Any, TextIO

from agentcast.events import (
    AgentEnd,
    BaseEvent,
    Error,
    LLMEnd,
    LLMStart,
    LLMToken,
    ToolEnd,
    ToolStart,
)

__all__ = ["CallbackHandler", "ConsolePrinter", "ProgressTracker", "TokenAccumulator"]


class CallbackHandler:
    """Base class: override the methods you need (sync or async); the rest do nothing.

    An instance is called with each event (`handler(event)`), which dispatches to the methods.
    """

    def on_event(self, event: BaseEvent) -> Any:
        """Called first for every event."""

    def on_llm_start(self, event: LLMStart) -> Any:
        """An LLM call started."""

    def on_llm_new_token(self, token: str, event: LLMToken) -> Any:
        """A token arrived; `token` is always a non-empty str (`event.kind` says text/reasoning)."""

    def on_llm_end(self, event: LLMEnd) -> Any:
        """An LLM call ended normally."""

    def on_llm_error(self, event: LLMEnd) -> Any:
        """An LLM call ended with an error, a timeout or a cancel (`event.finish_reason`)."""

    def on_tool_start(self, event: ToolStart) -> Any:
        """A tool started."""

    def on_tool_end(self, event: ToolEnd) -> Any:
        """A tool finished successfully."""

    def on_tool_error(self, event: ToolEnd) -> Any:
        """A tool failed or was cancelled."""

    def on_error(self, event: Error) -> Any:
        """An `error` event."""

    def on_agent_finish(self, event: AgentEnd) -> Any:
        """The run ended (any outcome)."""

    async def __call__(self, event: BaseEvent) -> None:
        """Dispatch one event to `on_event` and its specific method."""
        await _maybe_await(self.on_event(event))
        cls = event.__class__
        if cls is LLMToken:
            assert isinstance(event, LLMToken)
            result = self.on_llm_new_token(event.token, event)
        elif cls is LLMStart:
            result = self.on_llm_start(event)  # type: ignore[arg-type]
        elif cls is LLMEnd:
            assert isinstance(event, LLMEnd)
            failed = event.finish_reason in ("error", "cancelled", "timeout")
            result = self.on_llm_error(event) if failed else self.on_llm_end(event)
        elif cls is ToolStart:
            result = self.on_tool_start(event)  # type: ignore[arg-type]
        elif cls is ToolEnd:
            assert isinstance(event, ToolEnd)
            result = self.on_tool_end(event) if event.status == "ok" else self.on_tool_error(event)
        elif cls is Error:
            result = self.on_error(event)  # type: ignore[arg-type]
        elif cls is AgentEnd:
            result = self.on_agent_finish(event)  # type: ignore[arg-type]
        else:
            return
        await _maybe_await(result)


async def _maybe_await(result: Any) -> None:
    if inspect.isawaitable(result):
        await result


class TokenAccumulator(CallbackHandler):
    """Collects the answer text (top-level text tokens) and the text of every LLM call.

    Attributes:
        text: the agent's answer text so far (depth 0, kind text).
        by_call: every call's text, keyed by `call_id`.
        reasoning: the reasoning text so far.
    """

    def __init__(self) -> None:
        self.text = ""
        self.reasoning = ""
        self.by_call: dict[str, str] = defaultdict(str)

    def on_llm_new_token(self, token: str, event: LLMToken) -> None:
        """Accumulate."""
        if event.kind == "reasoning":
            self.reasoning += token
            return
        self.by_call[event.call_id] += token
        if event.depth == 0:
            self.text += token


class ProgressTracker(CallbackHandler):
    """Counts what happened, for a progress display or a log line.

    Attributes:
        llm_calls, tokens, tool_calls, tools_running, tool_errors, errors: counters.
        outcome: the run's outcome once it ended, else None.
    """

    def __init__(self) -> None:
        self.llm_calls = 0
        self.tokens = 0
        self.tool_calls = 0
        self.tools_running = 0
        self.tool_errors = 0
        self.errors = 0
        self.outcome: str | None = None

    def on_llm_start(self, event: LLMStart) -> None:
        """Count an LLM call."""
        self.llm_calls += 1

    def on_llm_new_token(self, token: str, event: LLMToken) -> None:
        """Count a token."""
        self.tokens += 1

    def on_tool_start(self, event: ToolStart) -> None:
        """Count a running tool."""
        self.tool_calls += 1
        self.tools_running += 1

    def on_tool_end(self, event: ToolEnd) -> None:
        """A tool stopped running."""
        self.tools_running -= 1

    def on_tool_error(self, event: ToolEnd) -> None:
        """A tool failed."""
        self.tools_running -= 1
        self.tool_errors += 1

    def on_error(self, event: Error) -> None:
        """Count an error."""
        self.errors += 1

    def on_agent_finish(self, event: AgentEnd) -> None:
        """Record the outcome."""
        self.outcome = event.outcome

    def summary(self) -> str:
        """Return a one-line summary."""
        return (
            f"{self.llm_calls} LLM calls, {self.tokens} tokens, {self.tool_calls} tool calls"
            f" ({self.tool_errors} failed), {self.errors} errors,"
            f" outcome {self.outcome or 'running'}"
        )


class ConsolePrinter(CallbackHandler):
    """Prints the answer as it streams and one line per tool call, as plain text.

    Args:
        stream: where to write (default stdout).
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def on_llm_new_token(self, token: str, event: LLMToken) -> None:
        """Print top-level answer text."""
        if event.depth == 0 and event.kind == "text":
            self._write(token)

    def on_tool_start(self, event: ToolStart) -> None:
        """Print the tool call."""
        self._write(f"\n[tool] {event.name} {event.input}\n")

    def on_tool_end(self, event: ToolEnd) -> None:
        """Print the tool result."""
        self._write(f"[tool] {event.name} -> {event.output}\n")

    def on_tool_error(self, event: ToolEnd) -> None:
        """Print the tool failure."""
        self._write(f"[tool] {event.name} {event.status}: {event.error}\n")

    def on_error(self, event: Error) -> None:
        """Print the error."""
        self._write(f"\n[error] {event.error}\n")

    def on_agent_finish(self, event: AgentEnd) -> None:
        """End the line."""
        self._write("\n")
