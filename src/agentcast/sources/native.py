"""The native agent: a tool-calling loop over any LangChain chat model, with no middle layer.

Tokens go from the model's chunks (`_direct.feed_model`: its own stream when no callback
handler would see the call, else `astream`) through `LLMCallStream` straight into the run's
sink: no callback manager, no `astream_events`, no queue. Parallel tool calls run concurrently, each
in a task of its own that carries the scope that routes `agentcast.emit(...)` and the tokens of
LLMs the tool calls back into the run (see `_nested`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import msgspec
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool

from agentcast.errors import MaxStepsExceeded
from agentcast.events import Error, Message, ToolEnd, ToolStart, json_safe
from agentcast.events._scope import ToolScope, current_tool_scope
from agentcast.sources._base import RunRequest, RunSink
from agentcast.sources._direct import feed_model
from agentcast.sources._messages import to_langchain
from agentcast.sources._nested import NestedLLMHandler, nested_handler_var
from agentcast.sources.llm_call import LLMCallResult, LLMCallStream, ParsedToolCall
from agentcast.sources.retry import RetryPolicy, classify_provider_error

__all__ = ["NativeAgentSource"]


class NativeAgentSource:
    """Runs the tool-calling loop for `agentcast.Agent`.

    Args:
        model: the chat model (tools are bound here when given).
        tools: LangChain tools, sync or async, and provider tool specs (dicts such as
            `{"type": "web_search_20250305", "name": "web_search"}`): those are bound for the
            provider to run and never run here.
        system_prompt: prepended to every model call.
        max_steps: model turns allowed per run.
        retry: what to retry when the provider fails before the first token.
    """

    def __init__(
        self,
        model: BaseChatModel,
        tools: Sequence[BaseTool | dict[str, Any]] = (),
        *,
        system_prompt: str | None = None,
        max_steps: int = 10,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.model = model
        self.tools = {tool.name: tool for tool in tools if isinstance(tool, BaseTool)}
        self.system_prompt = system_prompt
        self.max_steps = max_steps
        self.retry = retry or RetryPolicy()
        self._bound: Runnable[Any, Any] = model.bind_tools(list(tools)) if tools else model
        self._model_name = _model_name(model)
        self._class_name = type(model).__name__

    async def stream(self, request: RunRequest, sink: RunSink) -> AsyncIterator[None]:
        """Loop: stream a model turn, run the tools it asked for, until it answers."""
        messages: list[BaseMessage] = []
        if self.system_prompt:
            messages.append(SystemMessage(content=self.system_prompt))
        messages.extend(to_langchain(request.history))
        messages.append(HumanMessage(content=request.input))
        for step in range(1, self.max_steps + 1):
            result = await self._call_model(messages, sink, f"{sink.run_id}-llm-{step}")
            record: Message = {"role": "assistant", "content": result.text}
            if result.tool_calls:
                record["tool_calls"] = [
                    {"id": c.id, "name": c.name, "args": c.args if c.args is not None else {}}
                    for c in result.tool_calls
                ]
            if result.reasoning:
                record["reasoning"] = result.reasoning
            sink.message(record)
            messages.append(
                AIMessage(
                    content=_content_for_provider(result),
                    tool_calls=[
                        {"id": c.id, "name": c.name, "args": c.args or {}, "type": "tool_call"}
                        for c in result.tool_calls
                    ],
                )
            )
            if not result.tool_calls:
                return
            yield  # once a step: what makes this the async generator a `Source` is
            await self._run_tools(result, sink, messages)
        raise MaxStepsExceeded(
            f"the agent made {self.max_steps} model calls without a final answer "
            "(raise max_steps if the task needs more)"
        )

    # -- the model ------------------------------------------------------------------------

    async def _call_model(
        self, messages: list[BaseMessage], sink: RunSink, call_id: str
    ) -> LLMCallResult:
        """Stream one model call into the sink (retrying a failure before its first token).

        A coroutine, not a generator: readers follow the run's log, so nothing here yields,
        and the run's task steps through one frame less on every chunk.
        """
        attempt = 0
        while True:
            stream = LLMCallStream(
                sink.emit,
                track_text=sink.track_text,
                emit_token=sink.emit_token,
                call_id=call_id if attempt == 0 else f"{call_id}-retry{attempt}",
                model=self._model_name,
                name=self._class_name,
            )
            stream.start()
            try:
                # The model's stream is closed in there, not left to the collector: a
                # cancelled run must stop the model call before it repairs and saves the turn.
                await feed_model(self._bound, messages, stream.feed)
            except Exception as exc:
                stream.fail("error")
                error = classify_provider_error(exc)
                if stream.has_output or not error.retryable or attempt >= self.retry.retries:
                    raise error from exc
                attempt += 1
                sink.emit(
                    Error(
                        error=f"{error.message} (retrying, attempt {attempt + 1})",
                        error_type=type(exc).__name__,
                        code="retrying",
                        retryable=True,
                    )
                )
                await anyio.sleep(self.retry.delay(attempt))
                continue
            return stream.finish()

    # -- tools ----------------------------------------------------------------------------

    async def _run_tools(
        self, result: LLMCallResult, sink: RunSink, messages: list[BaseMessage]
    ) -> None:
        """Run the turn's tool calls concurrently, until every one has ended.

        Readers see the tools' events live from the run's log: nothing here needs to yield.
        """
        outputs: dict[str, ToolMessage] = {}
        # Plain tasks rather than a task group: a group re-cancels its members at every turn of
        # the loop, which (through the task LangChain runs a coroutine tool in) also pierces a
        # tool's own shielded cleanup. `_settle` cancels each once and waits for it.
        tasks = [
            asyncio.create_task(self._run_tool(call, result.call_id, sink, outputs))
            for call in result.tool_calls
        ]
        try:
            await asyncio.wait(tasks)
        finally:
            await _settle(tasks)
        for task in tasks:
            task.result()  # a bug in _run_tool surfaces here rather than vanishing
        # Keep the model's order, whatever order the tools finished in.
        messages.extend(outputs[call.id] for call in result.tool_calls)

    async def _run_tool(
        self,
        call: ParsedToolCall,
        llm_call_id: str,
        sink: RunSink,
        outputs: dict[str, ToolMessage],
    ) -> None:
        sink.emit(
            ToolStart(tool_call_id=call.id, name=call.name, input=call.args, call_id=llm_call_id)
        )
        started = time.perf_counter()
        tool = self.tools.get(call.name)
        status, output, error = "ok", None, None
        if call.args is None:
            status = "error"
            error = f"invalid arguments for tool {call.name!r}: {call.error}"
        elif tool is None:
            status = "error"
            known = ", ".join(sorted(self.tools)) or "none"
            error = f"unknown tool {call.name!r} (available tools: {known})"
            sink.emit(Error(error=error, error_type="ToolNotFound", code="tool_not_found"))
        else:
            scope_token = current_tool_scope.set(ToolScope(sink.emit_threadsafe, call.id, 1))
            handler_token = nested_handler_var.set(
                NestedLLMHandler(sink.emit_threadsafe, parent_id=call.id, depth=1)
            )
            try:
                output = await tool.ainvoke(call.args)
            except Exception as exc:  # noqa: BLE001 - a failing tool is reported to the model
                status, error = "error", f"{type(exc).__name__}: {exc}"
            finally:
                nested_handler_var.reset(handler_token)
                current_tool_scope.reset(scope_token)
        safe = json_safe(output) if status == "ok" else None
        sink.emit(
            ToolEnd(
                tool_call_id=call.id,
                name=call.name,
                status=status,  # type: ignore[arg-type]
                output=safe,
                error=error,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
            )
        )
        content = _as_text(safe) if status == "ok" else f"Error: {error}"
        record: Message = {
            "role": "tool",
            "content": content,
            "tool_call_id": call.id,
            "name": call.name,
        }
        if status != "ok":
            record["status"] = "error"
        sink.message(record)
        outputs[call.id] = ToolMessage(
            content=content,
            tool_call_id=call.id,
            name=call.name,
            status="success" if status == "ok" else "error",
        )


async def _settle(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the tool tasks still running, once, and wait until every one has ended.

    Waits even while this task is being cancelled (shielded from the run's scope, and through
    `asyncio.run`'s cancel round at exit): a tool that ends after the run repaired and saved the
    turn would add a second result for its call. Such a cancellation is re-raised afterwards.
    """
    for task in tasks:
        task.cancel()
    interrupted = False
    while not all(task.done() for task in tasks):
        try:
            with anyio.CancelScope(shield=True):
                await asyncio.wait(tasks)
        except asyncio.CancelledError:
            interrupted = True
    if interrupted:
        raise asyncio.CancelledError


def _content_for_provider(result: LLMCallResult) -> str | list[str | dict[str, Any]]:
    """The assistant turn's content for the next call of this run.

    Signed reasoning goes back in the provider's own block shape, before the text: Anthropic
    and Bedrock reject a tool-use continuation whose thinking blocks are missing. When the
    provider ran tools, its blocks go back verbatim and in their order, between the text runs
    they came between (`LLMCallResult.content`).
    """
    blocks: list[str | dict[str, Any]] = []
    for block in result.reasoning:
        shape = block.get("shape")
        if block.get("type") == "redacted_thinking":
            blocks.append({k: v for k, v in block.items() if k != "index"})
        elif shape == "thinking" and block.get("signature"):
            blocks.append(
                {"type": "thinking", "thinking": block["text"], "signature": block["signature"]}
            )
        elif shape == "reasoning_content" and block.get("signature"):
            inner = {"text": block["text"], "signature": block["signature"]}
            blocks.append({"type": "reasoning_content", "reasoning_content": inner})
    if result.content:
        blocks.extend(result.content)
        return blocks
    if not blocks:
        return result.text
    if result.text:
        blocks.append({"type": "text", "text": result.text})
    return blocks


def _as_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    return msgspec.json.encode(output).decode()


def _model_name(model: BaseChatModel) -> str | None:
    for attr in ("model_name", "model", "model_id"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    try:
        return model._llm_type  # noqa: SLF001 - the only name some models have
    except Exception:  # noqa: BLE001
        return None
