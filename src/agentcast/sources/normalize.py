"""Turn any LangChain `AIMessageChunk` into typed deltas: the one place provider shapes are known.

A "token" in LangChain is a str for OpenAI, a list of content blocks for Anthropic, Bedrock and
Gemini, sometimes with reasoning in `additional_kwargs`, and tool-call fragments sit either in
`tool_call_chunks` or in `tool_use`/`input_json_delta` blocks. `normalize_chunk` maps all of them
to a few delta kinds, so no content block, argument byte or reasoning text ever reaches answer text:

- `TextDelta(text)`: answer text.
- `RefusalDelta(text)`: the model's refusal, which is the answer the user sees.
- `ReasoningDelta(text, signature)`: thinking text, and/or the provider's signature of the block.
- `ToolChunk(index, id, name, args, provider)`: a fragment of a tool call (any field may be
  missing); `provider` is set when the provider itself runs the tool (see `_provider_tools`).
- `ProviderToolResult(...)`: what a provider-executed tool returned.
- `OpaqueBlock(block)`: a block that must be kept verbatim for history (redacted thinking).
"""

from __future__ import annotations

from typing import Any

import msgspec
from langchain_core.messages import BaseMessage

from agentcast.sources._deltas import (
    Delta,
    OpaqueBlock,
    ProviderToolResult,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolChunk,
)
from agentcast.sources._provider_tools import provider_tool_block

__all__ = [
    "Delta",
    "OpaqueBlock",
    "ProviderToolResult",
    "ReasoningDelta",
    "RefusalDelta",
    "TextDelta",
    "ToolChunk",
    "finish_reason_of",
    "normalize_chunk",
    "usage_of",
]


_TOOL_BLOCK_TYPES = frozenset({"tool_use", "input_json_delta", "tool_call_chunk", "tool_call"})
_FINISH_KEYS = ("finish_reason", "stop_reason", "stopReason", "done_reason")


def normalize_chunk(message: BaseMessage) -> list[Delta]:
    """Return the deltas of one streamed message chunk (or of a whole, non-streamed message).

    Tool fragments come from `tool_call_chunks` when LangChain filled them (it does for every
    integration that streams tool calls); content blocks of tool types are then ignored, since
    they describe the same bytes. Without `tool_call_chunks` (a raw callback token, a whole
    message), tool calls come from the blocks or from `tool_calls`. Blocks of tools the provider
    runs are read in every case: LangChain makes no tool-call chunks for them.
    """
    deltas: list[Delta] = []
    extra = message.additional_kwargs
    if extra:
        reasoning = extra.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            deltas.append(ReasoningDelta(reasoning))
        elif isinstance(reasoning, dict):
            _reasoning_dict(reasoning, deltas)
        refusal = extra.get("refusal")
        if isinstance(refusal, str) and refusal:  # langchain-openai, Chat Completions
            deltas.append(RefusalDelta(refusal))
    tool_chunks = getattr(message, "tool_call_chunks", None)
    _content(message.content, deltas, blocks_carry_tools=not tool_chunks)
    if tool_chunks:
        for tc in tool_chunks:
            deltas.append(
                ToolChunk(tc.get("index"), tc.get("id"), tc.get("name"), tc.get("args") or "")
            )
    elif not any(type(d) is ToolChunk and d.provider is None for d in deltas):
        for i, tc in enumerate(getattr(message, "tool_calls", None) or ()):
            args = tc.get("args") or {}
            deltas.append(ToolChunk(i, tc.get("id"), tc.get("name"), _dumps(args) if args else ""))
    return deltas


def _content(content: Any, deltas: list[Delta], *, blocks_carry_tools: bool) -> None:
    if isinstance(content, str):
        if content:
            deltas.append(TextDelta(content))
        return
    if not isinstance(content, list):
        return
    for block in content:
        if isinstance(block, str):
            if block:
                deltas.append(TextDelta(block))
        elif isinstance(block, dict):
            _block(block, deltas, blocks_carry_tools)


def _block(block: dict[str, Any], deltas: list[Delta], blocks_carry_tools: bool) -> None:
    kind = block.get("type")
    if kind == "text" or (kind is None and "text" in block):
        text = block.get("text")
        if isinstance(text, str) and text:
            deltas.append(TextDelta(text))
    elif kind == "thinking":  # Anthropic
        text = block.get("thinking") or ""
        signature = block.get("signature") or None
        if text or signature:
            deltas.append(ReasoningDelta(text, signature, "thinking"))
    elif kind == "reasoning_content":  # Bedrock Converse through langchain-aws
        inner = block.get("reasoning_content")
        if isinstance(inner, dict):
            _reasoning_dict(inner, deltas, "reasoning_content")
    elif kind == "reasoning":  # LangChain v1 standard blocks; OpenAI Responses summaries
        text = block.get("reasoning")
        if isinstance(text, str) and text:
            deltas.append(ReasoningDelta(text, block.get("signature")))
        for part in block.get("summary") or ():
            if isinstance(part, dict) and part.get("text"):
                deltas.append(ReasoningDelta(part["text"]))
    elif kind == "redacted_thinking":
        deltas.append(OpaqueBlock(block))
    elif kind == "refusal":  # langchain-openai, Responses API
        text = block.get("refusal")
        if isinstance(text, str) and text:
            deltas.append(RefusalDelta(text))
    elif kind in _TOOL_BLOCK_TYPES:
        if blocks_carry_tools:
            _tool_block(kind, block, deltas)
    elif isinstance(kind, str):
        deltas.extend(provider_tool_block(kind, block))
    # Any other block type (images, citations) is not answer text.


def _reasoning_dict(inner: dict[str, Any], deltas: list[Delta], shape: str = "") -> None:
    text = inner.get("text") or ""
    signature = inner.get("signature") or None
    if text or signature:
        deltas.append(ReasoningDelta(text, signature, shape))


def _tool_block(kind: str, block: dict[str, Any], deltas: list[Delta]) -> None:
    index = block.get("index")
    if kind == "input_json_delta":
        deltas.append(ToolChunk(index, None, None, block.get("partial_json") or ""))
    elif kind == "tool_call_chunk":
        deltas.append(ToolChunk(index, block.get("id"), block.get("name"), block.get("args") or ""))
    else:  # tool_use / tool_call: a start block, or a whole call in a non-streamed message
        args = block.get("input", block.get("args"))
        raw = _dumps(args) if args else ""
        deltas.append(ToolChunk(index, block.get("id"), block.get("name"), raw))


def usage_of(message: BaseMessage) -> dict[str, int] | None:
    """Return the provider-reported token usage carried by a chunk, if any."""
    usage = getattr(message, "usage_metadata", None)
    if not usage:
        return None
    return {
        "input_tokens": int(usage.get("input_tokens") or 0),
        "output_tokens": int(usage.get("output_tokens") or 0),
        "total_tokens": int(usage.get("total_tokens") or 0),
    }


def finish_reason_of(message: BaseMessage) -> str | None:
    """Return the provider's finish reason carried by a chunk, under any provider's key."""
    meta = message.response_metadata
    if not meta:
        return None
    for key in _FINISH_KEYS:
        value = meta.get(key)
        if value:
            return str(value)
    return None


def _dumps(value: Any) -> str:
    return msgspec.json.encode(value).decode()
