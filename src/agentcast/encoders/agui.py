"""AG-UI events from agentcast's event stream (sans I/O), as `@ag-ui/core` 1.0 defines them.

`AGUIEncoder` turns one run's events into AG-UI event dicts (camelCase keys, absent fields
omitted, never `null`, `timestamp` = the event's `ts` in ms); `frame` makes an SSE message of
one: `data: <json>` and a blank line, LF only: all `@ag-ui/client`'s SSE parser reads.

What maps to what:

- `agent_start` -> `RUN_STARTED` (the request's `threadId` and `runId`, echoed, and
  `protocolVersion` 1.0);
- an LLM call's text -> one assistant message, `TEXT_MESSAGE_START/CONTENT/END`, opened at its
  first output; its tool calls -> `TOOL_CALL_START/ARGS/END` under that message
  (`parentMessageId`), several open at once, interleaved as the model wrote them;
- reasoning -> `REASONING_START`, `REASONING_MESSAGE_START` (role `reasoning`), CONTENT, END,
  `REASONING_END`, closed when the call turns to text or tools;
- `tool_end` -> `TOOL_CALL_RESULT` (a new `messageId`, the output as a string, role `tool`;
  `metadata.status` says `error` or `cancelled` when it did not succeed);
- LLMs called inside a tool (`depth > 0`) are never answer text: the tool's work is a subagent
  (`SUBAGENT_STARTED {subagentRunId, name, parentToolCallId}` at its first nested LLM call),
  whose messages and tool calls carry its `subagentRunId`; it ends with `SUBAGENT_FINISHED`
  (or `SUBAGENT_ERROR` when the tool failed) before the tool's result;
- `custom` -> `CUSTOM {name, value}`; a `retrying` error -> `CUSTOM` named `error`;
- `agent_end`: success -> `RUN_FINISHED` (outcome `success`, `result` = the output, `usage`
  per model); cancelled -> `RUN_FINISHED` outcome `cancelled`; interrupted ->
  `RUN_FINISHED` outcome `interrupt` (one `Interrupt` per payload); error or timeout ->
  `RUN_ERROR {message, code}`. Whatever is still open is closed first.

A stream that ends without `agent_end` is closed by `close()`: everything open is ended, then
`RUN_ERROR` with code `stream_ended`. Ids are derived from the events (an LLM call's
`call_id` is its message id), so the output of a stream is always the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from agentcast.encoders._agui_messages import Chunk, Messages, as_text, chunk
from agentcast.encoders._base import ProtocolEncoder
from agentcast.events import (
    AgentEnd,
    AgentStart,
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

__all__ = ["AGUI_PROTOCOL_VERSION", "AGUIEncoder", "Chunk", "frame"]

AGUI_PROTOCOL_VERSION = "1.0"
"""The AG-UI protocol version these events follow (`@ag-ui/core`'s `PROTOCOL_VERSION`)."""

_encode_json = msgspec.json.Encoder().encode

_USAGE_NAMES = (
    ("input_tokens", "inputTokens"),
    ("output_tokens", "outputTokens"),
    ("total_tokens", "totalTokens"),
)


def frame(event: Chunk) -> bytes:
    """Return the SSE message of one AG-UI event (JSON escapes every newline inside it)."""
    return b"data: " + _encode_json(event) + b"\n\n"


@dataclass(slots=True)
class _Subagent:
    """The work of one tool (or subgraph) that called LLMs of its own."""

    run_id: str
    parent: str | None  # the enclosing subagent's run id


class AGUIEncoder(ProtocolEncoder[Chunk]):
    """Encodes one agentcast run as AG-UI events (see the module docstring for the mapping).

    Args:
        thread_id: the request's `threadId`, echoed in `RUN_STARTED` / `RUN_FINISHED`.
        run_id: the request's `runId`, echoed likewise.
    """

    def __init__(self, thread_id: str, run_id: str) -> None:
        super().__init__()
        self.thread_id = thread_id
        self.run_id = run_id
        self._run_started = False
        self._ended = False
        self._messages = Messages()
        self._subagents: dict[str, _Subagent] = {}  # open ones, by what encloses them
        self._subagent_ids: set[str] = set()  # every one started in this run
        self._error: Error | None = None  # the last error, reported if the run fails
        self._usage: dict[str | None, dict[str, int]] = {}

    def encode(self, event: BaseEvent) -> list[Chunk]:
        """Return the AG-UI events for one agentcast event; `RUN_STARTED` always comes first."""
        if self._ended:  # nothing follows the terminal event
            return []
        if self._run_started or self.closed or event.type == "agent_start":
            return super().encode(event)
        return [self._start_run(event), *super().encode(event)]

    def _start_run(self, event: BaseEvent | None) -> Chunk:
        self._run_started = True
        return chunk(
            "RUN_STARTED",
            event,
            threadId=self.thread_id,
            runId=self.run_id,
            protocolVersion=AGUI_PROTOCOL_VERSION,  # absent would read as an older producer
        )

    # -- the run -----------------------------------------------------------------------------

    def on_agent_start(self, event: AgentStart) -> Iterable[Chunk]:
        """`RUN_STARTED`."""
        return [self._start_run(event)] if not self._run_started else []

    def on_error(self, event: Error) -> Iterable[Chunk]:
        """Kept for the run's end; a retry notice is told at once, as `CUSTOM` `error`."""
        if event.code == "retrying":
            return [self._error_as_custom(event)]
        self._error = event
        return []

    def on_custom(self, event: Custom) -> Iterable[Chunk]:
        """`CUSTOM {name, value}`, attributed to the subagent whose tool sent it."""
        tool = self._messages.tool_calls.get(event.tool_call_id or "")
        custom = chunk("CUSTOM", event, name=event.name, subagentRunId=tool and tool.subagent)
        custom["value"] = event.data  # required: a custom event without data says null
        return [custom]

    def on_agent_end(self, event: AgentEnd) -> Iterable[Chunk]:
        """Close what is open, then `RUN_FINISHED` or `RUN_ERROR`."""
        chunks = self._close_everything(event)
        self._ended = True
        if event.outcome in ("error", "timeout"):
            error = self._error
            message = error.error if error else f"the run ended with outcome {event.outcome}"
            code = error.code if error else event.outcome
            chunks.append(chunk("RUN_ERROR", event, message=message, code=code))
            return chunks
        if self._error is not None:  # an error the run got past: not lost
            chunks.append(self._error_as_custom(self._error))
        ids = {"threadId": self.thread_id, "runId": self.run_id}
        if event.outcome == "cancelled":
            finished = chunk("RUN_FINISHED", event, **ids, outcome={"type": "cancelled"})
        elif event.outcome == "interrupted":
            outcome = {"type": "interrupt", "interrupts": self._interrupts(event.output)}
            finished = chunk("RUN_FINISHED", event, **ids, outcome=outcome)
        else:
            finished = chunk(
                "RUN_FINISHED",
                event,
                **ids,
                result=event.output,
                outcome={"type": "success"},
                usage=self._usage_list(),
            )
        metrics = {k: v for k, v in event.metrics.items() if v is not None}
        if metrics:
            finished["metadata"] = {"metrics": metrics}
        chunks.append(finished)
        return chunks

    def after_stream(self) -> Iterable[Chunk]:
        """For a stream cut short: close what is open, then `RUN_ERROR` (`stream_ended`)."""
        if self._ended:
            return []
        chunks = [] if self._run_started else [self._start_run(None)]
        chunks += self._close_everything(None)
        self._ended = True
        message = "the run's event stream ended before the run did"
        chunks.append(chunk("RUN_ERROR", None, message=message, code="stream_ended"))
        return chunks

    @staticmethod
    def _error_as_custom(error: Error) -> Chunk:
        value = {"message": error.error, "code": error.code, "retryable": error.retryable}
        return chunk("CUSTOM", error, name="error", value=value)

    def _interrupts(self, payload: Any) -> list[Chunk]:
        values = payload if isinstance(payload, list) and payload else [payload]
        interrupts = []
        for index, value in enumerate(values):
            interrupt: Chunk = {"id": f"{self.run_id}-interrupt-{index}", "reason": "input"}
            if isinstance(value, str):
                interrupt["message"] = value
            if value is not None:
                interrupt["metadata"] = {"value": value}
            interrupts.append(interrupt)
        return interrupts

    def _usage_list(self) -> list[Chunk] | None:
        if not self._usage:
            return None
        return [({"model": model} if model else {}) | usage for model, usage in self._usage.items()]

    # -- LLM calls and tool calls ------------------------------------------------------------

    def on_llm_start(self, event: LLMStart) -> Iterable[Chunk]:
        """Remember the call; an LLM inside a tool opens (or joins) that tool's subagent."""
        chunks: list[Chunk] = []
        subagent = None
        if event.depth > 0:
            subagent, chunks = self._subagent_for(event.parent_id or event.call_id, event)
        self._messages.start_call(event.call_id, subagent, event.model)
        return chunks

    def on_llm_token(self, event: LLMToken) -> Iterable[Chunk]:
        """Text -> `TEXT_MESSAGE_CONTENT`; reasoning -> `REASONING_MESSAGE_CONTENT`."""
        chunks: list[Chunk] = []
        call = self._messages.calls.get(event.call_id)
        if call is None:  # a token of a call never started: as if it just had
            chunks += self.on_llm_start(LLMStart(call_id=event.call_id, depth=event.depth))
            call = self._messages.calls[event.call_id]
        if event.kind == "reasoning":
            return chunks + self._messages.reasoning(call, event, event.token)
        return chunks + self._messages.text(call, event, event.token)

    def on_tool_call_start(self, event: ToolCallStart) -> Iterable[Chunk]:
        """`TOOL_CALL_START` under the call's assistant message (opened if need be)."""
        if event.tool_call_id in self._messages.tool_calls:
            return []
        call = self._messages.calls.get(event.call_id)
        return self._messages.start_tool_call(call, event, event.tool_call_id, event.name)

    def on_tool_call_delta(self, event: ToolCallDelta) -> Iterable[Chunk]:
        """`TOOL_CALL_ARGS`: the deltas concatenate to the raw argument JSON."""
        return self._messages.tool_args(event, event.tool_call_id, event.delta)

    def on_tool_call_end(self, event: ToolCallEnd) -> Iterable[Chunk]:
        """`TOOL_CALL_END` (once, whoever closes the call first)."""
        return self._messages.end_tool_call(event.tool_call_id, event)

    def on_llm_end(self, event: LLMEnd) -> Iterable[Chunk]:
        """Close the call's reasoning, tool calls and message; count its usage."""
        call = self._messages.calls.get(event.call_id)
        if event.usage:
            model = call.model if call else None
            total = self._usage.setdefault(model, {})
            for key, name in _USAGE_NAMES:
                value = event.usage.get(key)
                if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                    total[name] = total.get(name, 0) + value
            if not total:
                del self._usage[model]
        return self._messages.close_call(call, event) if call else []

    # -- tools -------------------------------------------------------------------------------

    def on_tool_start(self, event: ToolStart) -> Iterable[Chunk]:
        """A tool call that was never streamed (a graph's own tool node) is announced whole."""
        if event.tool_call_id in self._messages.tool_calls:
            return []
        call = self._messages.calls.get(event.call_id or "")
        subagent = call.subagent if call else None
        if call is None and event.depth > 0 and event.parent_id in self._subagents:
            subagent = self._subagents[event.parent_id].run_id
        args = as_text(event.input if event.input is not None else {})
        return self._messages.announce(event, event.tool_call_id, event.name, subagent, call, args)

    def on_tool_end(self, event: ToolEnd) -> Iterable[Chunk]:
        """End the tool's subagent, then `TOOL_CALL_RESULT`."""
        chunks: list[Chunk] = []
        tool_call_id = event.tool_call_id
        if tool_call_id not in self._messages.tool_calls:
            chunks += self._messages.announce(event, tool_call_id, event.name, None, None, None)
        chunks += self._messages.end_tool_call(tool_call_id, event)
        if tool_call_id in self._subagents:
            chunks += self._finish_subagent(tool_call_id, event, event)
        if event.status == "ok":
            content = as_text(event.output if event.output is not None else "")
            metadata = None
        else:
            content = event.error or f"the tool ended with status {event.status}"
            metadata = {"status": event.status}
        chunks.append(
            chunk(
                "TOOL_CALL_RESULT",
                event,
                messageId=f"{tool_call_id}-result",
                toolCallId=tool_call_id,
                content=content,
                role="tool",
                subagentRunId=self._messages.tool_calls[tool_call_id].subagent,
                metadata=metadata,
            )
        )
        return chunks

    # -- subagents ---------------------------------------------------------------------------

    def _subagent_for(self, key: str, event: LLMStart) -> tuple[str, list[Chunk]]:
        """Return the subagent of what encloses a nested call, starting it if need be."""
        open_one = self._subagents.get(key)
        if open_one is not None:
            return open_one.run_id, []
        run_id, number = f"{key}-subagent", 1
        while run_id in self._subagent_ids:  # ids are per invocation, never reused
            number += 1
            run_id = f"{key}-subagent-{number}"
        tool = self._messages.tool_calls.get(key)
        parent = tool.subagent if tool else None
        self._subagents[key] = _Subagent(run_id, parent)
        self._subagent_ids.add(run_id)
        name = tool.name if tool else (event.node or event.name or event.model or "subagent")
        started = chunk(
            "SUBAGENT_STARTED",
            event,
            subagentRunId=run_id,
            name=name,
            parentSubagentRunId=parent,
            parentToolCallId=key if tool else None,
        )
        return run_id, [started]

    def _finish_subagent(
        self, key: str, event: BaseEvent | None, end: ToolEnd | None
    ) -> list[Chunk]:
        """End a subagent: those it encloses first, then what its calls still have open."""
        subagent = self._subagents.pop(key)
        chunks: list[Chunk] = []
        for inner_key, inner in list(self._subagents.items()):
            if inner.parent == subagent.run_id and inner_key in self._subagents:
                chunks += self._finish_subagent(inner_key, event, None)
        chunks += self._messages.close_calls_of(subagent.run_id, event)
        if end is not None and end.status != "ok":
            message = end.error or f"the tool ended with status {end.status}"
            code = "cancelled" if end.status == "cancelled" else "tool_error"
            chunks.append(
                chunk(
                    "SUBAGENT_ERROR",
                    event,
                    subagentRunId=subagent.run_id,
                    message=message,
                    code=code,
                )
            )
        else:
            chunks.append(chunk("SUBAGENT_FINISHED", event, subagentRunId=subagent.run_id))
        return chunks

    def _close_everything(self, event: BaseEvent | None) -> list[Chunk]:
        chunks = self._messages.close_all(event)
        for key in reversed(list(self._subagents)):
            if key in self._subagents:
                chunks += self._finish_subagent(key, event, None)
        return chunks
