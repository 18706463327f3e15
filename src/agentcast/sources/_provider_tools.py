"""Content blocks of tools the provider executes itself (web search, code execution, MCP...).

LangChain reports no tool call for these: they are content blocks, and the provider has already
run them when their result arrives. They must never reach the agent's own tool loop, yet the
user should see them (a tool the provider ran, with its input and result), and the next request
must carry them back exactly as the provider sent them. The shapes, as the integrations stream
them:

- langchain-anthropic: a `server_tool_use` (or `mcp_tool_use`) block `{id, name, input: {}}`,
  then `input_json_delta` blocks at the same index with no tool-call chunk, then a result block
  whose type ends in `_tool_result` (`web_search_tool_result`, `code_execution_tool_result`,
  `web_fetch_tool_result`, `mcp_tool_result`...) `{tool_use_id, content}`. Aggregated into a
  whole message, the start block keeps `input: {}` and gains the joined `partial_json`.
- langchain-openai, Responses API: one whole output item per built-in tool call
  (`web_search_call`, `file_search_call`, `code_interpreter_call`, `image_generation_call`,
  `mcp_call`), input and result together, on `response.output_item.done`.
- LangChain v1 standard blocks: `server_tool_call` / `server_tool_call_chunk` and
  `server_tool_result`.

Client-executed built-ins (OpenAI `computer_call`, `apply_patch_call`) are not handled here.
"""

from __future__ import annotations

from typing import Any

import msgspec

from agentcast.sources._deltas import Delta, ProviderToolResult, ToolChunk

__all__ = ["history_block", "provider_tool_block"]

_ANTHROPIC_USE = frozenset({"server_tool_use", "mcp_tool_use"})
_CLIENT_RESULT = "tool_result"  # the agent's own tool results, never a provider's
# OpenAI Responses built-in tool items: the tool's name and the keys that are its input.
_OPENAI_ITEMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "web_search_call": ("web_search", ("action",)),
    "file_search_call": ("file_search", ("queries",)),
    "code_interpreter_call": ("code_interpreter", ("code", "container_id")),
    "image_generation_call": ("image_generation", ()),
    "mcp_call": ("", ("server_label", "arguments")),
}
_ITEM_BOOKKEEPING = frozenset({"type", "id", "index"})


def provider_tool_block(kind: str, block: dict[str, Any]) -> list[Delta]:
    """Return the deltas of a provider-executed tool block, or [] for any other block."""
    if kind in _ANTHROPIC_USE:
        return [_anthropic_use(block)]
    if kind in _OPENAI_ITEMS:
        return _openai_item(kind, block)
    if kind in ("server_tool_call", "server_tool_call_chunk"):
        args = block.get("args")
        raw = args if isinstance(args, str) else (_dumps(args) if args else "")
        index, name = block.get("index"), block.get("name")
        return [ToolChunk(index, block.get("id"), name, raw, _clean(block))]
    if kind.endswith("_tool_result") and kind not in (_CLIENT_RESULT, "server_tool_result"):
        return [_anthropic_result(block)]
    if kind == "server_tool_result":
        error = "error" if block.get("status") == "error" else None
        return [
            ProviderToolResult(
                str(block.get("tool_call_id") or ""), block.get("output"), error, _clean(block)
            )
        ]
    return []


def history_block(provider: dict[str, Any], args: dict[str, Any] | None) -> dict[str, Any]:
    """The provider's start block as the next request must carry it, with the final input."""
    if provider.get("type") in _ANTHROPIC_USE:
        return {**provider, "input": args if args is not None else {}}
    if provider.get("type") == "server_tool_call":
        return {**provider, "args": args if args is not None else {}}
    return provider


def _anthropic_use(block: dict[str, Any]) -> ToolChunk:
    value = block.get("input")
    # In a whole, aggregated message the streamed input sits in `partial_json`.
    raw = _dumps(value) if value else block.get("partial_json") or ""
    clean = {k: v for k, v in block.items() if k not in ("index", "partial_json")}
    return ToolChunk(block.get("index"), block.get("id"), block.get("name"), raw, clean)


def _anthropic_result(block: dict[str, Any]) -> ProviderToolResult:
    content = block.get("content")
    error: str | None = None
    if isinstance(content, dict) and str(content.get("type", "")).endswith("_error"):
        error = str(content.get("error_code") or content["type"])
    elif block.get("is_error"):  # mcp_tool_result
        error = "the provider's tool reported an error"
    return ProviderToolResult(str(block.get("tool_use_id") or ""), content, error, _clean(block))


def _openai_item(kind: str, block: dict[str, Any]) -> list[Delta]:
    name, input_keys = _OPENAI_ITEMS[kind]
    if kind == "mcp_call":
        name = str(block.get("name") or "mcp")
        arguments = block.get("arguments")
        try:
            value = msgspec.json.decode(arguments) if isinstance(arguments, str) else arguments
        except msgspec.DecodeError:
            value = {"arguments": arguments}
        tool_input = value if isinstance(value, dict) else {"arguments": arguments}
    else:
        tool_input = {key: block[key] for key in input_keys if key in block}
    output = {k: v for k, v in block.items() if k not in _ITEM_BOOKKEEPING and k not in input_keys}
    error: str | None = None
    if block.get("error"):
        error = str(block["error"])
    elif block.get("status") in ("failed", "incomplete"):
        error = f"the provider's {name} call {block['status']}"
    call_id = str(block.get("id") or "")
    return [
        ToolChunk(block.get("index"), call_id, name, _dumps(tool_input), _clean(block)),
        ProviderToolResult(call_id, output or None, error, None),
    ]


def _clean(block: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k != "index"}


def _dumps(value: Any) -> str:
    return msgspec.json.encode(value).decode()
