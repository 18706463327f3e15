"""The callback bridge: agentcast events from code that can only pass `config={"callbacks": [...]}`.

Some code cannot be handed to `wrap()`: a legacy `AgentExecutor` invoked deep inside an app, a
function that builds its chain per request. If it accepts callbacks, `stream_callbacks` runs it
with a `CallbackBridge` and streams what the callbacks report as agentcast events, with the same
normalization and invariants as every other source. The token LangChain passes to
`on_llm_new_token` is sometimes a list of content blocks (Bedrock, Anthropic with tools): the
bridge never uses it as text, it normalizes the chunk's message instead.

    async for event in stream_callbacks(
        lambda callbacks: executor.ainvoke({"input": q}, config={"callbacks": callbacks})
    ):
        ...
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk, LLMResult

from agentcast.events import BaseEvent, Custom, ToolEnd, ToolStart, json_safe
from agentcast.sources._base import RunRequest, RunSink
from agentcast.sources._tracking import RunTreeTracker, TrackedTool
from agentcast.sources.llm_call import LLMCallStream, final_message

__all__ = ["BridgeSource", "CallbackBridge", "RunWithCallbacks"]

RunWithCallbacks = Callable[[list[BaseCallbackHandler]], Any]
"""Runs the user's code with the given callbacks; may be sync or return an awaitable."""


class CallbackBridge(RunTreeTracker):
    """A LangChain callback handler that pushes agentcast events into a run.

    Args:
        emit_threadsafe: where events go (any thread).
    """

    def __init__(self, emit_threadsafe: Callable[[BaseEvent], None]) -> None:
        super().__init__()
        self._emit = emit_threadsafe
        self._calls: dict[UUID, LLMCallStream] = {}
        self._pending: list[tuple[str, str]] = []  # tool calls the models made: (id, name)

    # A `_StreamingCallbackHandler`: with it attached, `invoke` on a chat model streams.
    def tap_output_aiter(self, run_id: UUID, output: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """Pass the output through unchanged."""
        return output

    def tap_output_iter(self, run_id: UUID, output: Any) -> Any:
        """Pass the output through unchanged."""
        return output

    def on_chat_model_start(
        self,
        serialized: Any,
        messages: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Emit `llm_start`."""
        self._parents[run_id] = parent_run_id
        tool = self.tool_ancestor(parent_run_id)
        call = LLMCallStream(
            self._emit,
            call_id=f"llm_{run_id.hex}",
            depth=tool.depth + 1 if tool else 0,
            parent_id=tool.tool_call_id if tool else None,
            model=(metadata or {}).get("ls_model_name"),
            name=(serialized or {}).get("name") or kwargs.get("name"),
            tags=tuple(tags or ()),
        )
        with self._lock:
            self._calls[run_id] = call
        call.start()

    def on_llm_start(
        self,
        serialized: Any,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """A completion (non-chat) model: same as a chat model."""
        self.on_chat_model_start(
            serialized, prompts, run_id=run_id, parent_run_id=parent_run_id, **kwargs
        )

    def on_llm_new_token(
        self,
        token: str | list[str | dict[str, Any]],
        *,
        chunk: Any = None,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        """Feed the chunk's message; the raw `token` may be a list of content blocks."""
        call = self._calls.get(run_id)
        if call is None:
            return
        if isinstance(chunk, ChatGenerationChunk):
            call.feed(chunk.message)
        elif chunk is not None and isinstance(getattr(chunk, "text", None), str):
            call.feed(AIMessageChunk(content=chunk.text))
        else:
            call.feed(AIMessageChunk(content=token))

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the call; a model that did not stream reports its whole output here."""
        with self._lock:
            call = self._calls.pop(run_id, None)
        if call is None:
            return
        result = call.finish(final=final_message(response))
        with self._lock:
            self._pending.extend((c.id, c.name) for c in result.tool_calls)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the call as failed."""
        with self._lock:
            call = self._calls.pop(run_id, None)
        if call is not None:
            call.fail("error")

    def match_tool_call_id(self, name: str, run_id: UUID) -> str | None:
        """Classic agents run tools without the model's id: take the next call by that name."""
        for i, (pending_id, pending_name) in enumerate(self._pending):
            if pending_name == name:
                del self._pending[i]
                return pending_id
        return None

    def tool_started(self, event: ToolStart, tool: TrackedTool, run_id: UUID) -> None:
        """Emit `tool_start`."""
        self._emit(event)

    def tool_ended(self, event: ToolEnd | None, run_id: UUID) -> None:
        """Emit `tool_end`."""
        if event is not None:
            self._emit(event)

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """`dispatch_custom_event` -> `custom`."""
        self._emit(Custom(name=name, data=json_safe(data)))


class BridgeSource:
    """Runs user code with a `CallbackBridge` attached, as a source.

    Args:
        run: called with the callbacks list; sync (run in a worker thread) or async.
    """

    def __init__(self, run: RunWithCallbacks) -> None:
        self.run = run

    async def stream(self, request: RunRequest, sink: RunSink) -> AsyncIterator[None]:
        """Run the code; yield whenever its callbacks pushed events."""
        bridge = CallbackBridge(sink.emit_threadsafe)
        task = asyncio.ensure_future(self._call(bridge))
        try:
            while not task.done():
                await sink.wait_for_events([task])
                yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        output = task.result()
        from agentcast.sources.runnable import output_of

        value = output_of(output)
        sink.message({"role": "assistant", "content": value if isinstance(value, str) else ""})
        sink.set_output(value)

    async def _call(self, bridge: CallbackBridge) -> Any:
        if inspect.iscoroutinefunction(self.run):
            return await self.run([bridge])
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        call = functools.partial(context.run, self.run, [bridge])
        result = await loop.run_in_executor(None, call)
        if inspect.isawaitable(result):
            return await result
        return result
