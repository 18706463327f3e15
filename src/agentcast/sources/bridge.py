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

from agentcast.events import BaseEvent, Custom, ToolEnd, ToolStart, json_safe
from agentcast.sources._base import RunRequest, RunSink
from agentcast.sources._calls import LLMCallbacks
from agentcast.sources._tracking import RunTreeTracker, TrackedTool

__all__ = ["BridgeSource", "CallbackBridge", "RunWithCallbacks"]

RunWithCallbacks = Callable[[list[BaseCallbackHandler]], Any]
"""Runs the user's code with the given callbacks; may be sync or return an awaitable."""


class CallbackBridge(RunTreeTracker, LLMCallbacks):
    """A LangChain callback handler that pushes agentcast events into a run.

    Args:
        emit_threadsafe: where events go (any thread).
        track_text: `RunSink.track_text`, for the answer calls' text.
    """

    def __init__(
        self,
        emit_threadsafe: Callable[[BaseEvent], None],
        track_text: Callable[[str, Callable[[], str]], Any] | None = None,
    ) -> None:
        RunTreeTracker.__init__(self)
        LLMCallbacks.__init__(self, emit_threadsafe, track_text)
        self._emit = emit_threadsafe

    def provenance(self, run_id: UUID, parent_run_id: UUID | None) -> tuple[str | None, int]:
        """An LLM call inside a tool hangs off that tool; any other is the agent's own."""
        self.tools.parents[run_id] = parent_run_id
        tool = self.tool_ancestor(parent_run_id)
        return (tool.tool_call_id, tool.depth + 1) if tool else (None, 0)

    def match_tool_call_id(self, name: str) -> str | None:
        """Classic agents run tools without the model's id: take the next call by that name."""
        return self.calls.claim_tool_call_id(name)

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
        bridge = CallbackBridge(sink.emit_threadsafe, sink.track_text)
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
