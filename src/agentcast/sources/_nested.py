"""Tokens of LLMs called inside a tool, captured with nothing passed by hand (invariant 7).

LangChain lets a library register a context variable whose value (a callback handler) is added
to every callback manager configured while the variable is set. The native agent sets it in each
tool's task, so any chat model the tool calls, directly or deep inside a chain, reports to
`NestedLLMHandler`, whatever config the tool author passed or forgot. The manager adds the handler
once per call (it checks identity), so nested tokens appear exactly once. The variable follows
the code into asyncio tasks, and LangChain copies the context into the worker thread of a sync
tool, where the handler hands events to the loop's thread with `emit_threadsafe`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.tracers.context import register_configure_hook

from agentcast.events import BaseEvent
from agentcast.sources._calls import LLMCallbacks

__all__ = ["NestedLLMHandler", "nested_handler_var"]

nested_handler_var: ContextVar[BaseCallbackHandler | None] = ContextVar(
    "agentcast_nested_llm_handler", default=None
)
register_configure_hook(nested_handler_var, inheritable=True)


class NestedLLMHandler(LLMCallbacks):
    """Turns the callbacks of LLM calls made inside one tool into agentcast events.

    Args:
        emit_threadsafe: pushes an event into the run from any thread.
        parent_id: the `tool_call_id` of the tool the LLMs are called in.
        depth: the depth of those LLM calls (the tool's depth + 1).
    """

    def __init__(
        self, emit_threadsafe: Callable[[BaseEvent], None], *, parent_id: str, depth: int
    ) -> None:
        super().__init__(emit_threadsafe)
        self._parent_id = parent_id
        self._depth = depth

    def provenance(self, run_id: UUID, parent_run_id: UUID | None) -> tuple[str | None, int]:
        """Every LLM call inside the tool hangs off the tool."""
        return self._parent_id, self._depth
