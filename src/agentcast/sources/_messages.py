"""Provider-neutral history <-> LangChain messages."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from agentcast.events import Message

__all__ = ["to_langchain"]


def to_langchain(history: Sequence[Message]) -> list[BaseMessage]:
    """Return LangChain messages for a stored history.

    Reasoning blocks are not sent back: provider signatures are only valid for the provider
    that made them, and plain text plus tool calls are accepted by every chat model.
    """
    messages: list[BaseMessage] = []
    for message in history:
        role = message["role"]
        content = message.get("content") or ""
        if role == "user":
            messages.append(HumanMessage(content=content))
        elif role == "system":
            messages.append(SystemMessage(content=content))
        elif role == "assistant":
            calls = [
                {"id": c["id"], "name": c["name"], "args": c["args"], "type": "tool_call"}
                for c in message.get("tool_calls", ())
            ]
            messages.append(AIMessage(content=content, tool_calls=calls))
        elif role == "tool":
            status = "error" if message.get("status") in ("error", "cancelled") else "success"
            messages.append(
                ToolMessage(
                    content=content,
                    tool_call_id=message.get("tool_call_id", ""),
                    name=message.get("name"),
                    status=status,
                )
            )
    return messages
