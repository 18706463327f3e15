"""agentcast's event stream as the Vercel AI SDK's UI message stream (protocol `v1`).

One run is one assistant `UIMessage`, streamed as chunks (dicts), each framed as an SSE
`data: <json>` message, and ended by exactly one `data: [DONE]` (`frame`, `DONE`). What maps
to what:

- the stream: `start` (the message id, `messageMetadata` {runId, sessionId}) first,
  `finish` (`finishReason`, `messageMetadata` {outcome, metrics}) last;
- an LLM call of the agent (depth 0): a step, `start-step` ... `finish-step`. A step stays
  open while its tools run, so a tool's output is in the step of the call that asked for
  it and the answer that follows is in a later step;
- its text and reasoning: `text-start/delta/end`, `reasoning-start/delta/end`, a fresh id
  per part (a part ends when the call switches between text, reasoning and tool calls);
- its tool calls: `tool-input-start`, `tool-input-delta`s (the raw JSON), then
  `tool-input-available` with the parsed arguments (`tool-input-error` when they are not
  JSON); the tool's end: `tool-output-available` or `tool-output-error`. Parallel calls are
  keyed by their own ids; a call that never ran gets a `tool-output-error` at the end;
- an LLM called inside a tool (depth >= 1): never text parts; one `data-agentcast-llm` part
  per call, sent again with the same id at each token so the client replaces it in place
  (`data`: callId, parentId, depth, model, text, reasoning, toolCalls, state);
- `custom` events: `data-<name>` parts; an error the run went on after: a
  `data-agentcast-error` part; the error that ended the run: an `error` chunk; a cancelled
  run: `abort` before `finish`; an interrupted one (LangGraph `interrupt()`): a
  `data-agentcast-interrupt` part with the payload.

Only the fields both `ai` 5.0.216 (whose strict schemas reject unknown fields) and 6.x accept
are sent. Pure: no I/O, ids derived from the events and a per-stream counter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from agentcast.encoders._base import ProtocolEncoder
from agentcast.events import (
    AgentEnd,
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

__all__ = ["DONE", "HEADERS", "NESTED_PART", "Chunk", "VercelEncoder", "frame"]

Chunk = dict[str, Any]
"""One UI message chunk (JSON object)."""

HEADERS = {"x-vercel-ai-ui-message-stream": "v1"}
"""The header a UI message stream must carry (besides every event stream's no-cache ones)."""

DONE = b"data: [DONE]\n\n"
"""The stream's terminator, sent once after the last chunk."""

NESTED_PART = "data-agentcast-llm"
"""The data part type of an LLM called inside a tool."""

_encode = msgspec.json.Encoder(enc_hook=repr).encode


def frame(chunk: Chunk) -> bytes:
    """Return the SSE message of one chunk (JSON escapes newlines: one `data:` line)."""
    return b"data: " + _encode(chunk) + b"\n\n"


# Provider finish reasons -> the enum both SDK versions accept.
_FINISH_REASONS = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "max_tokens": "length",
    "content_filter": "content-filter",
    "content-filter": "content-filter",
    "tool_calls": "tool-calls",
    "tool_use": "tool-calls",
}
_OUTCOME_REASONS = {"error": "error", "timeout": "error", "cancelled": "other"}


class VercelEncoder(ProtocolEncoder[Chunk]):
    """Projects one run's events onto UI message chunks (see the module docstring).

    Args:
        message_id: the assistant message's id (`start.messageId`), e.g. the run id.
        metadata: message metadata sent on `start` (the client merges `finish`'s into it).
    """

    def __init__(
        self, *, message_id: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__()
        self._message_id = message_id
        self._metadata = dict(metadata) if metadata else None
        self._counter = 0
        self._depth: dict[str, int] = {}  # LLM call id -> depth
        self._open_calls: set[str] = set()  # depth-0 LLM calls not ended yet
        self._step_open = False
        self._part: dict[str, tuple[str, str]] = {}  # call id -> (kind, part id) open now
        self._tool_depth: dict[str, int] = {}  # tool call id -> depth of its LLM call
        self._tool_names: dict[str, str] = {}
        self._announced: set[str] = set()  # depth-0 tool calls the client knows of
        self._answered: set[str] = set()  # ... that have their output
        self._nested: dict[str, dict[str, Any]] = {}  # nested LLM call id -> its part's data
        self._nested_of_tool: dict[str, str] = {}  # nested tool call id -> its LLM call id
        self._pending_error: Error | None = None
        self._last_reason: str | None = None
        self._finished = False

    # -- stream ------------------------------------------------------------------------------

    def before_stream(self) -> Iterable[Chunk]:
        """The `start` chunk."""
        chunk: Chunk = {"type": "start"}
        if self._message_id is not None:
            chunk["messageId"] = self._message_id
        if self._metadata is not None:
            chunk["messageMetadata"] = self._metadata
        return [chunk]

    def after_stream(self) -> Iterable[Chunk]:
        """Close what is open; `finish` if `agent_end` never came (a stream cut short)."""
        if self._finished:
            return []
        return self._finish(None)

    def on_agent_end(self, event: AgentEnd) -> Iterable[Chunk]:
        """Close everything, then the outcome (`error`, `abort`) and `finish`."""
        return self._finish(event)

    def _finish(self, end: AgentEnd | None) -> list[Chunk]:
        self._finished = True
        outcome = end.outcome if end is not None else None
        chunks = self._close_parts(list(self._part))
        for tool_call_id in sorted(self._announced - self._answered):
            self._answered.add(tool_call_id)
            reason = outcome if outcome in ("error", "timeout", "cancelled") else "stopped"
            chunks.append(_tool_error(tool_call_id, f"the tool did not run (the run {reason})"))
        error = self._pending_error
        self._pending_error = None
        if outcome in ("error", "timeout"):
            message = error.error if error is not None else f"the run ended: {outcome}"
            chunks.append({"type": "error", "errorText": message})
        elif error is not None:
            chunks.append(self._error_part(error))
        if outcome == "interrupted" and end is not None:
            chunks.append({"type": "data-agentcast-interrupt", "data": end.output})
        if self._step_open:
            self._step_open = False
            chunks.append({"type": "finish-step"})
        if outcome == "cancelled":
            chunks.append({"type": "abort"})
        finish: Chunk = {"type": "finish"}
        if outcome == "success":
            finish["finishReason"] = _FINISH_REASONS.get(self._last_reason or "stop", "stop")
        else:
            finish["finishReason"] = _OUTCOME_REASONS.get(outcome or "", "other")
        if end is not None:
            finish["messageMetadata"] = {"outcome": end.outcome, "metrics": end.metrics}
        chunks.append(finish)
        return chunks

    # -- errors: the one right before agent_end ended the run; the others did not --------------

    def encode(self, event: BaseEvent) -> list[Chunk]:
        """Return the chunks of one event (an error waits for the next event to tell)."""
        chunks: list[Chunk] = []
        if self._pending_error is not None and event.type != "agent_end" and not self.closed:
            chunks.append(self._error_part(self._pending_error))
            self._pending_error = None
        chunks.extend(super().encode(event))
        return chunks

    def on_error(self, event: Error) -> Iterable[Chunk]:
        """Held: an `error` chunk if `agent_end` follows, else a `data-agentcast-error` part."""
        self._pending_error = event
        return []

    def _error_part(self, error: Error) -> Chunk:
        data = {
            "message": error.error,
            "type": error.error_type,
            "code": error.code,
            "retryable": error.retryable,
        }
        return {"type": "data-agentcast-error", "id": self._new_id("error"), "data": data}

    # -- LLM calls -----------------------------------------------------------------------------

    def on_llm_start(self, event: LLMStart) -> Iterable[Chunk]:
        """Depth 0: a new step (unless another top-level call is still open); else a part."""
        self._depth[event.call_id] = event.depth
        if event.depth > 0:
            self._nested[event.call_id] = {
                "callId": event.call_id,
                "parentId": event.parent_id,
                "depth": event.depth,
                "model": event.model,
                "text": "",
                "reasoning": "",
                "toolCalls": [],
                "state": "streaming",
            }
            return [self._nested_chunk(event.call_id)]
        chunks: list[Chunk] = []
        if not self._open_calls:
            if self._step_open:
                chunks.append({"type": "finish-step"})
            chunks.append({"type": "start-step"})
            self._step_open = True
        self._open_calls.add(event.call_id)
        return chunks

    def on_llm_token(self, event: LLMToken) -> Iterable[Chunk]:
        """Text or reasoning deltas of the call's open part (opened when the kind changes)."""
        if self._depth.get(event.call_id, event.depth) > 0:
            data = self._nested.get(event.call_id)
            if data is None:
                return []
            data[event.kind] += event.token
            return [self._nested_chunk(event.call_id)]
        chunks = self._ensure_step()
        current = self._part.get(event.call_id)
        if current is None or current[0] != event.kind:
            chunks.extend(self._close_parts([event.call_id]))
            part_id = self._new_id(event.kind)
            self._part[event.call_id] = (event.kind, part_id)
            chunks.append({"type": f"{event.kind}-start", "id": part_id})
        else:
            part_id = current[1]
        chunks.append({"type": f"{event.kind}-delta", "id": part_id, "delta": event.token})
        return chunks

    def on_llm_end(self, event: LLMEnd) -> Iterable[Chunk]:
        """Its open part ends; the step stays open for the tools the call asked for."""
        if self._depth.get(event.call_id, 0) > 0:
            data = self._nested.get(event.call_id)
            if data is None:
                return []
            data["state"] = "done"
            data["finishReason"] = event.finish_reason
            return [self._nested_chunk(event.call_id)]
        self._open_calls.discard(event.call_id)
        self._last_reason = event.finish_reason
        return self._close_parts([event.call_id])

    # -- tool calls and tools ------------------------------------------------------------------

    def on_tool_call_start(self, event: ToolCallStart) -> Iterable[Chunk]:
        """`tool-input-start` (a nested call's tool call goes into its data part)."""
        depth = self._depth.get(event.call_id, 0)
        self._tool_depth[event.tool_call_id] = depth
        self._tool_names[event.tool_call_id] = event.name
        if depth > 0:
            return self._nested_tool(event.call_id, event.tool_call_id, name=event.name)
        chunks = self._ensure_step()
        chunks.extend(self._close_parts([event.call_id]))
        chunk: Chunk = {
            "type": "tool-input-start",
            "toolCallId": event.tool_call_id,
            "toolName": event.name,
        }
        if event.executor == "provider":
            chunk["providerExecuted"] = True
        self._announced.add(event.tool_call_id)
        chunks.append(chunk)
        return chunks

    def on_tool_call_delta(self, event: ToolCallDelta) -> Iterable[Chunk]:
        """`tool-input-delta`: a piece of the raw argument JSON."""
        if self._tool_depth.get(event.tool_call_id, 0) > 0:
            return []
        chunk = {"type": "tool-input-delta", "toolCallId": event.tool_call_id}
        chunk["inputTextDelta"] = event.delta
        return [chunk]

    def on_tool_call_end(self, event: ToolCallEnd) -> Iterable[Chunk]:
        """`tool-input-available` with the parsed arguments, or `tool-input-error`."""
        if self._tool_depth.get(event.tool_call_id, 0) > 0:
            call_id = self._nested_of_tool.get(event.tool_call_id)
            if call_id is None:
                return []
            return self._nested_tool(call_id, event.tool_call_id, args=event.args)
        chunk: Chunk = {
            "type": "tool-input-available",
            "toolCallId": event.tool_call_id,
            "toolName": event.name,
            "input": event.args if event.args is not None else {},
        }
        if event.error is not None:
            chunk["type"] = "tool-input-error"
            chunk["input"] = event.raw if event.raw is not None else ""
            chunk["errorText"] = event.error
            self._answered.add(event.tool_call_id)
        if event.executor == "provider":
            chunk["providerExecuted"] = True
        self._announced.add(event.tool_call_id)
        return [chunk]

    def on_tool_start(self, event: ToolStart) -> Iterable[Chunk]:
        """Nothing for a streamed call; `tool-input-available` for one the client never saw."""
        depth = self._tool_depth.setdefault(event.tool_call_id, event.depth)
        self._tool_names.setdefault(event.tool_call_id, event.name)
        if depth > 0:
            call_id = event.call_id or self._nested_of_tool.get(event.tool_call_id)
            if call_id is None or call_id not in self._nested:
                return []
            return self._nested_tool(
                call_id, event.tool_call_id, name=event.name, args=event.input, status="running"
            )
        return self._announce(event.tool_call_id, event.name, event.input, event.executor)

    def on_tool_end(self, event: ToolEnd) -> Iterable[Chunk]:
        """`tool-output-available` (ok) or `tool-output-error` (error, cancelled)."""
        if self._tool_depth.get(event.tool_call_id, 0) > 0:
            call_id = self._nested_of_tool.get(event.tool_call_id)
            if call_id is None:
                return []
            result = {"output": event.output} if event.status == "ok" else {"error": event.error}
            return self._nested_tool(call_id, event.tool_call_id, status=event.status, **result)
        chunks = self._announce(event.tool_call_id, event.name, None, event.executor)
        if event.tool_call_id in self._answered:
            return chunks
        self._answered.add(event.tool_call_id)
        if event.status == "ok":
            chunk: Chunk = {
                "type": "tool-output-available",
                "toolCallId": event.tool_call_id,
                "output": event.output,
            }
        else:
            chunk = _tool_error(event.tool_call_id, event.error or f"the tool {event.status}")
        if event.executor == "provider":
            chunk["providerExecuted"] = True
        chunks.append(chunk)
        return chunks

    def on_custom(self, event: Custom) -> Iterable[Chunk]:
        """A `data-<name>` part (appended: no id)."""
        return [{"type": f"data-{event.name}", "data": event.data}]

    # -- helpers -------------------------------------------------------------------------------

    def _announce(self, tool_call_id: str, name: str, args: Any, executor: str) -> list[Chunk]:
        # A tool whose call was never streamed (some sources report only the execution):
        # the client needs its input before its output. Nothing for a known call.
        if tool_call_id in self._announced:
            return []
        self._announced.add(tool_call_id)
        chunks = self._ensure_step()
        chunk: Chunk = {
            "type": "tool-input-available",
            "toolCallId": tool_call_id,
            "toolName": name,
            "input": args if args is not None else {},
        }
        if executor == "provider":
            chunk["providerExecuted"] = True
        chunks.append(chunk)
        return chunks

    def _new_id(self, kind: str) -> str:
        self._counter += 1
        return f"{kind}-{self._counter}"

    def _ensure_step(self) -> list[Chunk]:
        # Output outside any LLM call (a source without llm_start): in a step all the same.
        if self._step_open:
            return []
        self._step_open = True
        return [{"type": "start-step"}]

    def _close_parts(self, call_ids: Iterable[str]) -> list[Chunk]:
        chunks: list[Chunk] = []
        for call_id in call_ids:
            part = self._part.pop(call_id, None)
            if part is not None:
                chunks.append({"type": f"{part[0]}-end", "id": part[1]})
        return chunks

    def _nested_chunk(self, call_id: str) -> Chunk:
        # A copy: the chunk may be serialized later than the next update.
        data = dict(self._nested[call_id])
        data["toolCalls"] = [dict(c) for c in data["toolCalls"]]
        return {"type": NESTED_PART, "id": call_id, "data": data}

    def _nested_tool(self, call_id: str, tool_call_id: str, **fields: Any) -> list[Chunk]:
        data = self._nested.get(call_id)
        if data is None:
            return []
        self._nested_of_tool[tool_call_id] = call_id
        calls: list[dict[str, Any]] = data["toolCalls"]
        entry = next((c for c in calls if c["toolCallId"] == tool_call_id), None)
        if entry is None:
            entry = {"toolCallId": tool_call_id, "name": self._tool_names.get(tool_call_id)}
            calls.append(entry)
        entry.update(fields)
        return [self._nested_chunk(call_id)]


def _tool_error(tool_call_id: str, message: str) -> Chunk:
    return {"type": "tool-output-error", "toolCallId": tool_call_id, "errorText": message}
