"""The typed deltas `normalize_chunk` turns provider chunks into (see `normalize`)."""

from __future__ import annotations

from typing import Any, NamedTuple, Union

__all__ = [
    "Delta",
    "OpaqueBlock",
    "ProviderToolResult",
    "ReasoningDelta",
    "RefusalDelta",
    "TextDelta",
    "ToolChunk",
]


class TextDelta(NamedTuple):
    """A piece of answer text."""

    text: str


class RefusalDelta(NamedTuple):
    """The model's refusal (OpenAI `refusal`): shown as the call's answer text."""

    text: str


class ReasoningDelta(NamedTuple):
    """A piece of reasoning text, or the signature that closes a reasoning block.

    `shape` names the provider block it came in (`thinking`: Anthropic, `reasoning_content`:
    Bedrock), so a signed block can be sent back to that provider in its own shape.
    """

    text: str
    signature: str | None = None
    shape: str = ""


class ToolChunk(NamedTuple):
    """A fragment of a tool call; providers send the id and name once and arguments in pieces.

    `provider` is the provider's own block (without `index`) when the provider executes the
    tool (Anthropic `server_tool_use`, OpenAI `web_search_call`...): it is kept verbatim for
    the next request and the tool is never run locally. None for the agent's own tools.
    """

    index: int | None  # type: ignore[assignment]  # shadows tuple.index on purpose
    id: str | None
    name: str | None
    args: str
    provider: dict[str, Any] | None = None


class ProviderToolResult(NamedTuple):
    """What a tool the provider executed returned.

    Attributes:
        tool_call_id: the provider's id of the tool call it answers.
        output: the result, JSON-safe (search results, code output...).
        error: the provider's error code or message when the tool failed, else None.
        block: the provider's result block (without `index`) to keep verbatim for the next
            request, or None when the call's own block already carries the result (OpenAI).
    """

    tool_call_id: str
    output: Any
    error: str | None
    block: dict[str, Any] | None


class OpaqueBlock(NamedTuple):
    """A content block kept verbatim for the history but never streamed (redacted thinking)."""

    block: dict[str, Any]


Delta = Union[TextDelta, RefusalDelta, ReasoningDelta, ToolChunk, ProviderToolResult, OpaqueBlock]
"""Any normalized delta."""
