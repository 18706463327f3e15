"""`RunState`: what a run has opened and not closed, its turn so far, and its metrics.

The one owner of a run's state. The sink updates it as it logs events (`track`, and the token
path inline, see `Sink.emit_token`); the closing path reads what is still open from it; `metrics`
turns its counters into `agent_end`'s metrics. It does no I/O and emits nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from agentcast.events import (
    BaseEvent,
    Custom,
    Error,
    LLMEnd,
    LLMStart,
    LLMToken,
    Message,
    ToolCallEnd,
    ToolCallStart,
    ToolEnd,
    ToolStart,
)
from agentcast.runtime._display import TurnRecorder

__all__ = ["RunState"]

_CUT_SHORT = frozenset({"error", "cancelled", "timeout"})


class RunState:
    """One run's bookkeeping, updated from the events it logs.

    Attributes:
        started: `perf_counter()` when the run started executing.
        first_answer_token: when the agent's first answer token was logged.
        open_llm: open LLM calls, `call_id -> depth`.
        open_tool_calls: tool calls the model is still writing, `tool_call_id -> name`.
        open_tools: tools still executing, `tool_call_id -> name`.
        text_of: where each open top-level call's text so far is (`RunSink.track_text`).
        cut_text: the text of top-level calls that ended in error, cancel or timeout.
        messages: the turn's completed messages, for the session history.
        display: what a page needs to redraw the turn from history.
        steps: messages completed (`agent_step` events).
        tokens: `llm_token` events logged.
        tool_calls: tool calls the models made.
        errors: errors the run reported (failed tools included).
        llm_calls: LLM calls started.
        usage: the provider usage of the ended calls, summed (None: no provider gave any).
        output: the output a source set (`has_output`), else the last answer is the output.
        interrupted: the source paused the run for input.
        error_code: the code of the last error that ends the run.
    """

    __slots__ = (
        "cut_text",
        "display",
        "error_code",
        "errors",
        "first_answer_token",
        "generating",
        "has_output",
        "interrupted",
        "llm_calls",
        "messages",
        "open_llm",
        "open_tool_calls",
        "open_tools",
        "output",
        "started",
        "steps",
        "text_of",
        "tokens",
        "tool_calls",
        "usage",
    )

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.first_answer_token: float | None = None
        self.open_llm: dict[str, int] = {}
        self.open_tool_calls: dict[str, str] = {}
        self.open_tools: dict[str, str] = {}
        self.text_of: dict[str, Callable[[], str]] = {}
        self.cut_text: list[str] = []
        self.messages: list[Message] = []
        self.display = TurnRecorder()
        self.steps = 0
        self.tokens = 0
        self.generating: list[tuple[float, float]] = []  # each ended call's first output -> end
        self.tool_calls = 0
        self.errors = 0
        self.llm_calls = 0
        self.usage: dict[str, int] | None = None
        self.output: Any = None
        self.has_output = False
        self.interrupted = False
        self.error_code: str | None = None

    def mark_started(self) -> None:
        """Start the run's clock (`ttft_ms` and `duration_ms` count from here)."""
        self.started = time.perf_counter()

    def on_token(self, event: LLMToken) -> None:
        """Count a token; note the first answer token; keep a nested LLM's text for display."""
        self.tokens += 1
        if event.depth:
            self.display.token(event)
        elif event.kind == "text" and self.first_answer_token is None:
            self.first_answer_token = time.perf_counter()

    def track(self, event: BaseEvent) -> None:
        """Record what an event (other than `llm_token`) opens, closes or counts.

        Raises:
            RuntimeError: a tool starts before its `tool_call_end` (invariant 5).
        """
        cls = event.__class__
        if cls is LLMStart:
            assert isinstance(event, LLMStart)
            self.open_llm[event.call_id] = event.depth
            self.llm_calls += 1
            self.display.llm_start(event)
        elif cls is LLMEnd:
            assert isinstance(event, LLMEnd)
            self._llm_end(event)
        elif cls is ToolCallStart:
            assert isinstance(event, ToolCallStart)
            self.open_tool_calls[event.tool_call_id] = event.name
            self.tool_calls += 1
        elif cls is ToolCallEnd:
            assert isinstance(event, ToolCallEnd)
            self.open_tool_calls.pop(event.tool_call_id, None)
        elif cls is ToolStart:
            assert isinstance(event, ToolStart)
            if event.tool_call_id in self.open_tool_calls:
                raise RuntimeError(f"tool {event.name!r} started before its tool_call_end")
            self.open_tools[event.tool_call_id] = event.name
        elif cls is ToolEnd:
            assert isinstance(event, ToolEnd)
            self.open_tools.pop(event.tool_call_id, None)
            if event.status == "error":
                self.errors += 1
        elif cls is Custom:
            assert isinstance(event, Custom)
            self.display.custom(event)
        elif cls is Error:
            assert isinstance(event, Error)
            self.display.error(event)

    def final_output(self) -> Any:
        """The run's output: what the source set, else the turn's last assistant content."""
        if self.has_output:
            return self.output
        for message in reversed(self.messages):
            if message["role"] == "assistant":
                return message["content"]
        return None

    def metrics(self) -> dict[str, Any]:
        """The run's metrics (README, "Metrics", defines each one).

        `tokens_per_s` is the models' generation speed: output tokens divided by the time the
        LLM calls were generating (each call from its first output to its end; parallel calls'
        overlap counted once). Waiting for a first token, tools and the runtime's own work are
        left out, so tools or reasoning do not inflate or dilute it. Computed from the calls'
        `llm_end` timings, with no work per token.
        """
        end = time.perf_counter()
        tokens = self.usage["output_tokens"] if self.usage else self.tokens
        first = self.first_answer_token
        generating = self._generating_s()
        return {
            "tokens": tokens,
            "tool_calls": self.tool_calls,
            "errors": self.errors,
            "ttft_ms": round((first - self.started) * 1000, 3) if first is not None else None,
            "duration_ms": round((end - self.started) * 1000, 3),
            "tokens_per_s": round(tokens / generating, 1) if generating > 0 else None,
            "llm_calls": self.llm_calls,
            "usage": dict(self.usage, source="provider") if self.usage else None,
        }

    def _llm_end(self, event: LLMEnd) -> None:
        self.open_llm.pop(event.call_id, None)
        text = self.text_of.pop(event.call_id, None)
        if text is not None and event.finish_reason in _CUT_SHORT:
            # The call failed mid-answer (closed by its source or by the runtime): keep what
            # it said.
            self.cut_text.append(text())
        if event.usage:
            total = self.usage or {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
            for key in total:
                total[key] += int(event.usage.get(key) or 0)
            self.usage = total
        # When the call was generating: from its first output to its end, which is now
        # (`llm_end` is emitted as the call ends).
        if event.ttft_ms is not None and event.duration_ms > event.ttft_ms:
            now = time.perf_counter()
            self.generating.append((now - (event.duration_ms - event.ttft_ms) / 1000, now))

    def _generating_s(self) -> float:
        """Seconds during which at least one LLM call was generating (overlaps counted once)."""
        total, reach = 0.0, float("-inf")
        for start, end in sorted(self.generating):
            if end > reach:
                total += end - max(start, reach)
                reach = end
        return total
