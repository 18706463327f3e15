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

import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextvars import ContextVar
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, GenerationChunk, LLMResult
from langchain_core.tracers.context import register_configure_hook

from agentcast.events import BaseEvent
from agentcast.sources.llm_call import LLMCallStream, final_message

__all__ = ["NestedLLMHandler", "nested_handler_var"]

nested_handler_var: ContextVar[BaseCallbackHandler | None] = ContextVar(
    "agentcast_nested_llm_handler", default=None
)
register_configure_hook(nested_handler_var, inheritable=True)


class NestedLLMHandler(BaseCallbackHandler):
    """Turns the callbacks of LLM calls made inside one tool into agentcast events.

    Args:
        emit_threadsafe: pushes an event into the run from any thread.
        parent_id: the `tool_call_id` of the tool the LLMs are called in.
        depth: the depth of those LLM calls (the tool's depth + 1).
    """

    # Called inline, in order, on whichever thread reports: events must not be reordered.
    run_inline = True
    raise_error = False

    def __init__(
        self, emit_threadsafe: Callable[[BaseEvent], None], *, parent_id: str, depth: int
    ) -> None:
        self._emit = emit_threadsafe
        self._parent_id = parent_id
        self._depth = depth
        self._calls: dict[UUID, LLMCallStream] = {}
        self._lock = threading.Lock()

    # `_StreamingCallbackHandler` marker: with it attached, `ainvoke`/`invoke` on a chat model
    # stream internally, so the tool author's `model.invoke(...)` still yields live tokens.
    def tap_output_aiter(self, run_id: UUID, output: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """Pass the output through unchanged."""
        return output

    def tap_output_iter(self, run_id: UUID, output: Iterator[Any]) -> Iterator[Any]:
        """Pass the output through unchanged."""
        return output

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Emit `llm_start` for an LLM call inside the tool."""
        meta = metadata or {}
        call = LLMCallStream(
            self._emit,
            call_id=f"llm_{run_id.hex}",  # LangChain run ids are UUID7: a prefix is a timestamp
            depth=self._depth,
            parent_id=self._parent_id,
            model=meta.get("ls_model_name"),
            name=(serialized or {}).get("name") or kwargs.get("name"),
            tags=tuple(tags or ()),
        )
        with self._lock:
            self._calls[run_id] = call
        call.start()

    def on_llm_new_token(
        self,
        token: str | list[str | dict[str, Any]],
        *,
        chunk: GenerationChunk | ChatGenerationChunk | None = None,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Feed a streamed chunk (its message, never the raw `token`, which may be a list)."""
        call = self._calls.get(run_id)
        if call is None:
            return
        if isinstance(chunk, ChatGenerationChunk):
            call.feed(chunk.message)
        elif isinstance(token, str) and token:
            call.feed(AIMessage(content=token))

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        """Emit the closers; a model that did not stream reports its whole output here."""
        with self._lock:
            call = self._calls.pop(run_id, None)
        if call is not None:
            call.finish(final=final_message(response))

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the call as failed."""
        with self._lock:
            call = self._calls.pop(run_id, None)
        if call is not None:
            call.fail("error")
