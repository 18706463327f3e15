"""The ambient scope of code running inside a tool, and `emit()` for user code.

A context variable, not an argument, carries the scope: tool authors call `agentcast.emit(...)`
(or an LLM) without passing anything by hand, and the value follows the code into asyncio tasks
and into the worker threads LangChain runs sync tools in (it copies the context).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from agentcast.events import Custom, json_safe

__all__ = ["ToolScope", "current_tool_scope", "emit"]


@dataclass(frozen=True)
class ToolScope:
    """Where events from code inside a tool go, and their provenance.

    Attributes:
        emit_threadsafe: pushes an event into the run, from any thread.
        tool_call_id: the tool execution the code runs in.
        depth: the depth of LLM calls made by that code (the tool's depth + 1).
    """

    emit_threadsafe: Callable[[Any], None]
    tool_call_id: str
    depth: int


current_tool_scope: ContextVar[ToolScope | None] = ContextVar("agentcast_tool_scope", default=None)


def emit(name: str, data: Any = None) -> bool:
    """Send a `custom` event from inside a tool into the run that called the tool.

    Args:
        name: the event's name, for consumers to dispatch on.
        data: any JSON-safe payload (anything else is converted to its string form).

    Returns:
        True if a run received the event; False when called outside any agentcast run, so
        tools stay usable on their own.
    """
    scope = current_tool_scope.get()
    if scope is None:
        return False
    scope.emit_threadsafe(Custom(name=name, data=json_safe(data), tool_call_id=scope.tool_call_id))
    return True
