"""What the AG-UI client has open: LLM calls' messages, reasoning, tool calls (sans I/O).

`Messages` is the half of `AGUIEncoder` that opens and closes AG-UI's streamed entities: one
assistant message per LLM call (its `call_id` is the `messageId`), opened at the call's first
text or tool call so a call that said nothing leaves no empty message; its reasoning as
separate reasoning messages; its tool calls, several open at once, under that message. Each
entity keeps the `subagentRunId` it was opened with, and every event that continues or closes
it carries the same one, as `verifyEvents` requires. Closing is idempotent: whoever closes an
entity first (its own end, the call's end, the run's end) sends its END, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from agentcast.events import BaseEvent

__all__ = ["Chunk", "Messages", "as_text", "chunk"]

Chunk = dict[str, Any]
"""One AG-UI event, ready to be framed."""

_encode_json = msgspec.json.Encoder().encode


def chunk(kind: str, event: BaseEvent | None, **fields: Any) -> Chunk:
    """Return an AG-UI event: fields that are None are left out, `timestamp` is the event's."""
    built: Chunk = {"type": kind}
    built.update((k, v) for k, v in fields.items() if v is not None)
    if event is not None:
        built["timestamp"] = int(event.ts)
    return built


def as_text(value: Any) -> str:
    """A string as it is, anything else as its JSON text."""
    return value if isinstance(value, str) else _encode_json(value).decode()


@dataclass(slots=True)
class Call:
    """One LLM call: its assistant message, and what of it is open."""

    message_id: str
    subagent: str | None
    model: str | None
    opened: bool = False  # TEXT_MESSAGE_START was sent
    open: bool = False  # ... and no TEXT_MESSAGE_END yet
    reasoning: str | None = None  # the open reasoning span (and message) id
    spans: int = 0
    tool_calls: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ToolCall:
    """A tool call the client was told about."""

    name: str
    subagent: str | None
    open: bool = True


class Messages:
    """The LLM calls and tool calls of one run, and which of their AG-UI entities are open."""

    def __init__(self) -> None:
        self.calls: dict[str, Call] = {}
        self.tool_calls: dict[str, ToolCall] = {}

    def start_call(self, call_id: str, subagent: str | None, model: str | None) -> None:
        """Remember an LLM call; nothing is sent until it says something."""
        self.calls[call_id] = Call(call_id, subagent, model)

    def _tagged(
        self, kind: str, event: BaseEvent | None, call: Call, message_id: str, **fields: Any
    ) -> Chunk:
        return chunk(kind, event, messageId=message_id, **fields, subagentRunId=call.subagent)

    def text(self, call: Call, event: BaseEvent, delta: str) -> list[Chunk]:
        """A piece of the call's answer text."""
        if call.open and call.reasoning is None:  # per token: built directly, same fields
            content: Chunk = {"type": "TEXT_MESSAGE_CONTENT", "messageId": call.message_id}
            content["delta"] = delta
            if call.subagent is not None:
                content["subagentRunId"] = call.subagent
            content["timestamp"] = int(event.ts)
            return [content]
        chunks = self.open_message(call, event)
        chunks.append(
            self._tagged("TEXT_MESSAGE_CONTENT", event, call, call.message_id, delta=delta)
        )
        return chunks

    def reasoning(self, call: Call, event: BaseEvent, delta: str) -> list[Chunk]:
        """A piece of the call's reasoning: a span of its own, opened at its first piece."""
        chunks: list[Chunk] = []
        if call.reasoning is None:
            span = f"{call.message_id}-reasoning" + (f"-{call.spans}" if call.spans else "")
            call.reasoning, call.spans = span, call.spans + 1
            chunks.append(self._tagged("REASONING_START", event, call, span))
            chunks.append(
                self._tagged("REASONING_MESSAGE_START", event, call, span, role="reasoning")
            )
        chunks.append(
            self._tagged("REASONING_MESSAGE_CONTENT", event, call, call.reasoning, delta=delta)
        )
        return chunks

    def open_message(self, call: Call, event: BaseEvent) -> list[Chunk]:
        """Open the call's assistant message (ending its reasoning), once."""
        chunks = self._close_reasoning(call, event)
        if not call.opened:
            call.opened = call.open = True
            chunks.append(
                self._tagged("TEXT_MESSAGE_START", event, call, call.message_id, role="assistant")
            )
        return chunks

    def _close_reasoning(self, call: Call, event: BaseEvent | None) -> list[Chunk]:
        if call.reasoning is None:
            return []
        span, call.reasoning = call.reasoning, None
        return [
            self._tagged("REASONING_MESSAGE_END", event, call, span),
            self._tagged("REASONING_END", event, call, span),
        ]

    def close_call(self, call: Call, event: BaseEvent | None) -> list[Chunk]:
        """End the call's reasoning, its tool calls and its message (what is still open)."""
        chunks = self._close_reasoning(call, event)
        for tool_call_id in call.tool_calls:
            chunks += self.end_tool_call(tool_call_id, event)
        if call.open:
            call.open = False
            chunks.append(self._tagged("TEXT_MESSAGE_END", event, call, call.message_id))
        return chunks

    def start_tool_call(
        self, call: Call | None, event: BaseEvent, tool_call_id: str, name: str
    ) -> list[Chunk]:
        """`TOOL_CALL_START` under the call's message; calls already open stay open."""
        chunks = self.open_message(call, event) if call else []
        subagent = call.subagent if call else None
        self.tool_calls[tool_call_id] = ToolCall(name, subagent)
        if call:
            call.tool_calls.append(tool_call_id)
        chunks.append(
            chunk(
                "TOOL_CALL_START",
                event,
                toolCallId=tool_call_id,
                toolCallName=name,
                parentMessageId=call.message_id if call else None,
                subagentRunId=subagent,
            )
        )
        return chunks

    def tool_args(self, event: BaseEvent, tool_call_id: str, delta: str) -> list[Chunk]:
        """`TOOL_CALL_ARGS`, for a tool call still open."""
        tool = self.tool_calls.get(tool_call_id)
        if tool is None or not tool.open:
            return []
        return [
            chunk(
                "TOOL_CALL_ARGS",
                event,
                toolCallId=tool_call_id,
                delta=delta,
                subagentRunId=tool.subagent,
            )
        ]

    def end_tool_call(self, tool_call_id: str, event: BaseEvent | None) -> list[Chunk]:
        """`TOOL_CALL_END`, once."""
        tool = self.tool_calls.get(tool_call_id)
        if tool is None or not tool.open:
            return []
        tool.open = False
        return [chunk("TOOL_CALL_END", event, toolCallId=tool_call_id, subagentRunId=tool.subagent)]

    def announce(
        self,
        event: BaseEvent,
        tool_call_id: str,
        name: str,
        subagent: str | None,
        call: Call | None,
        args: str | None,
    ) -> list[Chunk]:
        """START, ARGS and END at once, for a tool call that was never streamed."""
        self.tool_calls[tool_call_id] = ToolCall(name, subagent)
        parent = call.message_id if call is not None and call.opened else None
        chunks = [
            chunk(
                "TOOL_CALL_START",
                event,
                toolCallId=tool_call_id,
                toolCallName=name,
                parentMessageId=parent,
                subagentRunId=subagent,
            )
        ]
        if args:
            chunks += self.tool_args(event, tool_call_id, args)
        return chunks + self.end_tool_call(tool_call_id, event)

    def close_calls_of(self, subagent: str, event: BaseEvent | None) -> list[Chunk]:
        """End what the calls of one subagent still have open."""
        chunks: list[Chunk] = []
        for call in self.calls.values():
            if call.subagent == subagent:
                chunks += self.close_call(call, event)
        return chunks

    def close_all(self, event: BaseEvent | None) -> list[Chunk]:
        """End everything still open."""
        chunks: list[Chunk] = []
        for call in self.calls.values():
            chunks += self.close_call(call, event)
        for tool_call_id in self.tool_calls:
            chunks += self.end_tool_call(tool_call_id, event)
        return chunks
