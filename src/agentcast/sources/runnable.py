"""Stream any LangChain `Runnable`: an LCEL chain, a classic `AgentExecutor`, a tool-calling chain.

LangChain's `astream_events(version="v2")` is the only stream that reaches inside an arbitrary
runnable, so this source maps it: chat model start/stream/end go through `LLMCallStream` (the
same normalization as every other source), tools become `tool_start`/`tool_end` with their
nesting from `parent_ids`, `adispatch_custom_event` becomes `custom`. It costs what
`astream_events` costs; graphs and the native agent have faster paths.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.runnables import Runnable

from agentcast.events import Custom, Message, ToolEnd, ToolStart, json_safe
from agentcast.sources._base import RunRequest, RunSink
from agentcast.sources._messages import to_langchain
from agentcast.sources.llm_call import LLMCallStream
from agentcast.sources.normalize import RefusalDelta, TextDelta, normalize_chunk

__all__ = ["RunnableSource", "default_input", "output_of"]


def default_input(runnable: Runnable[Any, Any]) -> Callable[[str, Sequence[Message]], Any]:
    """Guess how to feed a prompt (and history) to a runnable from its input schema."""
    try:
        schema = runnable.get_input_jsonschema()
    except Exception:  # noqa: BLE001 - some runnables cannot describe their input
        schema = {}
    fields = set((schema.get("properties") or {}).keys())
    keys = getattr(runnable, "input_keys", None)
    if isinstance(keys, list):  # a classic Chain (AgentExecutor): its schema may be empty
        fields |= set(keys) or {"input"}
    if "input" in fields:

        def as_dict(prompt: str, history: Sequence[Message]) -> Any:
            value: dict[str, Any] = {"input": prompt}
            if "chat_history" in fields:
                value["chat_history"] = to_langchain(history)
            return value

        return as_dict
    if "messages" in fields:
        return lambda prompt, history: {
            "messages": [*to_langchain(history), HumanMessage(content=prompt)]
        }
    if schema.get("type") == "string":
        return lambda prompt, history: prompt
    return lambda prompt, history: [*to_langchain(history), HumanMessage(content=prompt)]


class RunnableSource:
    """Runs a LangChain runnable for one run.

    Args:
        runnable: the runnable.
        make_input: `(prompt, history) -> input` (default: guessed from the input schema).
    """

    def __init__(
        self,
        runnable: Runnable[Any, Any],
        *,
        make_input: Callable[[str, Sequence[Message]], Any] | None = None,
    ) -> None:
        self.runnable = runnable
        self.make_input = make_input or default_input(runnable)

    async def stream(self, request: RunRequest, sink: RunSink) -> AsyncIterator[None]:
        """Map `astream_events(v2)` to agentcast events."""
        mapper = _EventMapper(sink)
        events = self.runnable.astream_events(
            self.make_input(request.input, request.history), version="v2"
        )
        async for event in events:
            mapper.on_event(dict(event))
            yield
        mapper.close()
        output = mapper.output
        sink.message({"role": "assistant", "content": output if isinstance(output, str) else ""})
        sink.set_output(output)


class _EventMapper:
    def __init__(self, sink: RunSink) -> None:
        self.sink = sink
        self.calls: dict[str, LLMCallStream] = {}
        self.tools: dict[str, tuple[str, str, int, float]] = {}  # run -> id, name, depth, t0
        self.pending_calls: list[tuple[str, str, Any]] = []  # (tool_call_id, name, args)
        self.output: Any = None
        self.root: str | None = None

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        run_id = event["run_id"]
        if self.root is None:
            self.root = run_id
        data = event.get("data") or {}
        if kind == "on_chat_model_start" or kind == "on_llm_start":
            tool = self._tool_ancestor(event.get("parent_ids") or ())
            call = self.calls[run_id] = LLMCallStream(
                self.sink.emit,
                call_id=f"llm_{run_id.replace('-', '')}",
                depth=tool[2] + 1 if tool else 0,
                parent_id=tool[0] if tool else None,
                model=(event.get("metadata") or {}).get("ls_model_name"),
                name=event.get("name"),
                tags=tuple(event.get("tags") or ()),
            )
            call.start()
        elif kind in ("on_chat_model_stream", "on_llm_stream"):
            streaming = self.calls.get(run_id)
            chunk = data.get("chunk")
            if streaming is not None and chunk is not None:
                streaming.feed(_as_message(chunk))
        elif kind in ("on_chat_model_end", "on_llm_end"):
            ending = self.calls.pop(run_id, None)
            if ending is not None:
                output = data.get("output")
                result = ending.finish(final=_as_message(output) if output is not None else None)
                self.pending_calls.extend((c.id, c.name, c.args) for c in result.tool_calls)
        elif kind == "on_tool_start":
            self._tool_start(event, data)
        elif kind in ("on_tool_end", "on_tool_error"):
            self._tool_end(kind, event, data)
        elif kind == "on_custom_event":
            self.sink.emit(Custom(name=event.get("name") or "custom", data=json_safe(data)))
        if run_id == self.root and kind.endswith("_end"):
            # The root's end, whatever it is (a chain, or a bare chat model: `wrap(model.bind())`).
            self.output = output_of(data.get("output"))

    def _tool_ancestor(self, parents: Sequence[str]) -> tuple[str, str, int, float] | None:
        for parent in reversed(parents):
            tool = self.tools.get(parent)
            if tool is not None:
                return tool
        return None

    def _tool_start(self, event: dict[str, Any], data: dict[str, Any]) -> None:
        name = event.get("name") or ""
        arguments = data.get("input")
        outer = self._tool_ancestor(event.get("parent_ids") or ())
        # Classic agents run tools without the model's tool_call_id: match it by name.
        tool_call_id = f"tool_{event['run_id'].replace('-', '')}"
        for i, (pending_id, pending_name, _) in enumerate(self.pending_calls):
            if pending_name == name:
                tool_call_id = pending_id
                del self.pending_calls[i]
                break
        depth = outer[2] + 1 if outer else 0
        self.tools[event["run_id"]] = (tool_call_id, name, depth, time.perf_counter())
        self.sink.emit(
            ToolStart(
                tool_call_id=tool_call_id,
                name=name,
                input=json_safe(arguments),
                parent_id=outer[0] if outer else None,
                depth=depth,
            )
        )

    def _tool_end(self, kind: str, event: dict[str, Any], data: dict[str, Any]) -> None:
        tool = self.tools.pop(event["run_id"], None)
        if tool is None:
            return
        failed = kind == "on_tool_error"
        output = data.get("output")
        content = getattr(output, "content", output)
        self.sink.emit(
            ToolEnd(
                tool_call_id=tool[0],
                name=tool[1],
                status="error" if failed else "ok",
                output=None if failed else json_safe(content),
                error=f"{data.get('error')}" if failed else None,
                duration_ms=round((time.perf_counter() - tool[3]) * 1000, 3),
            )
        )

    def close(self) -> None:
        for key in list(self.calls):
            self.calls.pop(key).finish()


def _as_message(value: Any) -> BaseMessage:
    if isinstance(value, BaseMessage):
        return value
    text = getattr(value, "text", value)
    return AIMessageChunk(content=text if isinstance(text, str) else str(text))


def output_of(value: Any) -> Any:
    """Reduce a runnable's final output to the run's answer (text when it is a message)."""
    if isinstance(value, dict) and "output" in value:
        value = value["output"]
    if isinstance(value, dict) and isinstance(value.get("messages"), list) and value["messages"]:
        value = value["messages"][-1]
    if isinstance(value, AIMessage):
        # The answer is what the stream showed: its text, or its refusal.
        return _answer_text(value)
    if isinstance(value, BaseMessage):
        return str(value.text)
    if isinstance(value, list) and value and all(isinstance(v, (str, dict)) for v in value):
        # Content blocks (Bedrock, Anthropic): the answer is their text, never the list.
        return _answer_text(AIMessage(content=value))
    return json_safe(value)


def _answer_text(message: AIMessage) -> str:
    deltas = normalize_chunk(message)
    return "".join(d.text for d in deltas if isinstance(d, (TextDelta, RefusalDelta)))
