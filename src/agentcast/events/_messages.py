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


class _MessageRequired(TypedDict):
    role: Role
    content: str


class Message(_MessageRequired, total=False):
    """One message of a conversation.

    `tool_calls` is set on assistant messages that asked for tools; `tool_call_id` and `name` on
    tool results; `reasoning` keeps thinking blocks (text and provider signature) verbatim;
    `status` is absent for ordinary messages.
    """

    tool_calls: list[ToolCallRecord]
    tool_call_id: str
    name: str
    status: MessageStatus
    reasoning: list[dict[str, Any]]
