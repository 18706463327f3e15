"""The provider-neutral shape of conversation history, as stored by every session backend.

History is stored as plain JSON-safe dicts, never as LangChain objects or provider chunks, so a
session written by one provider can be read back for another, and every backend stores the same
thing. `agentcast.sources` converts them to and from LangChain messages.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

Role = Literal["system", "user", "assistant", "tool"]
"""Who wrote a message."""

MessageStatus = Literal["ok", "error", "cancelled", "interrupted"]
"""`interrupted` marks a partial assistant answer kept after a stop."""


class ToolCallRecord(TypedDict):
    """A tool call as stored in an assistant message."""

    id: str
    name: str
    args: dict[str, Any]


class MessageMetadata(TypedDict, total=False):
    """What a UI needs to redraw a finished turn as it looked live; never sent to a model.

    `nested` (on a tool result) lists, in order, the text of LLMs called inside the tool
    (`{"type": "text", "kind": "text" | "reasoning", "text"}`) and the tool's custom events
    (`{"type": "custom", "name", "data"}`). The turn's last message carries `run_id`, `outcome`
    (the run's `agent_end` outcome), `metrics` (its `agent_end` metrics) and, when it failed,
    `errors` (its `error` events' data: `error`, `type`, `code`, `retryable`, `partial`).
    """

    run_id: str
    outcome: str
    metrics: dict[str, Any]
    nested: list[dict[str, Any]]
    errors: list[dict[str, Any]]


class _MessageRequired(TypedDict):
    role: Role
    content: str


class Message(_MessageRequired, total=False):
    """One message of a conversation.

    `tool_calls` is set on assistant messages that asked for tools; `tool_call_id` and `name` on
    tool results; `reasoning` keeps thinking blocks (text and provider signature) verbatim;
    `status` is absent for ordinary messages; `metadata` is display data for UIs only.
    """

    tool_calls: list[ToolCallRecord]
    tool_call_id: str
    name: str
    status: MessageStatus
    reasoning: list[dict[str, Any]]
    metadata: MessageMetadata
