"""Stream any LangChain `Runnable`: an LCEL chain, a classic `AgentExecutor`, a tool-calling chain.

LangChain's `astream_events(version="v2")` is the only stream that reaches inside an arbitrary
runnable, so this source maps it onto the registries every LangChain-facing source shares:
chat model start/stream/end onto `_calls.CallRegistry` (the same normalization and tool-id
matching as every other source), tools onto `_tracking.ToolRuns` with their nesting from
`parent_ids`; `adispatch_custom_event` becomes `custom`. It costs what
`astream_events` costs; graphs and the native agent have faster paths.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.runnables import Runnable

from agentcast.events import Custom, Message, json_safe
from agentcast.sources._base import RunRequest, RunSink
from agentcast.sources._calls import CallRegistry
from agentcast.sources._messages import to_langchain
from agentcast.sources._tracking import ToolRuns
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
        on_event = mapper.on_event
        async for event in events:
            on_event(dict(event))
            if event["event"] == "on_tool_end":
                # Once a tool, not once an event: readers follow the run's log, and a yield
                # per token would cost one more generator resume per token.
                yield
        mapper.close()
        output = mapper.output
        sink.message({"role": "assistant", "content": output if isinstance(output, str) else ""})
        sink.set_output(output)


class _EventMapper:
    """`astream_events(v2)` events -> the call registry and the tool runs."""

    def __init__(self, sink: RunSink) -> None:
        self.sink = sink
        self.calls = CallRegistry(sink.emit, sink.track_text, sink.emit_token)
        self.tools = ToolRuns(self.calls.claim_tool_call_id)
        self.output: Any = None
        self.root: str | None = None

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        run_id = event["run_id"]
        if self.root is None:
            self.root = run_id
        data = event.get("data") or {}
        if kind in ("on_chat_model_stream", "on_llm_stream"):  # first: one per token
            streaming = self.calls.get(run_id)
            chunk = data.get("chunk")
            if streaming is not None and chunk is not None:
                streaming.feed(_as_message(chunk))
        elif kind in ("on_chat_model_start", "on_llm_start"):
            tool = self.tools.ancestor(self._place(run_id, event))
            self.calls.open(
                run_id,
                call_id=f"llm_{run_id.replace('-', '')}",
                parent_id=tool.tool_call_id if tool else None,
                depth=tool.depth + 1 if tool else 0,
                model=(event.get("metadata") or {}).get("ls_model_name"),
                name=event.get("name"),
                tags=tuple(event.get("tags") or ()),
            )
        elif kind in ("on_chat_model_end", "on_llm_end"):
            output = data.get("output")
            self.calls.finish(run_id, final=_as_message(output) if output is not None else None)
        elif kind == "on_tool_start":
            start, _ = self.tools.open(
                run_id,
                parent_run_id=self._place(run_id, event),
                name=event.get("name") or "",
                tool_input=data.get("input"),
                tool_call_id=None,  # astream_events does not carry it: matched by name
            )
            self.sink.emit(start)
        elif kind in ("on_tool_end", "on_tool_error"):
            end = self.tools.close(run_id, output=data.get("output"), error=data.get("error"))
            if end is not None:
                self.sink.emit(end)
        elif kind == "on_custom_event":
            self.sink.emit(Custom(name=event.get("name") or "custom", data=json_safe(data)))
        elif kind.endswith("_start"):
            self._place(run_id, event)  # a chain: only its place in the tree matters
        if run_id == self.root and kind.endswith("_end"):
            # The root's end, whatever it is (a chain, or a bare chat model: `wrap(model.bind())`).
            self.output = output_of(data.get("output"))

    def _place(self, run_id: str, event: dict[str, Any]) -> str | None:
        """Record the run's ancestry (`parent_ids`, root first); return its parent."""
        chain = (*(event.get("parent_ids") or ()), run_id)
        self.tools.parents.update(zip(chain[1:], chain, strict=False))
        return chain[-2] if len(chain) > 1 else None

    def close(self) -> None:
        self.calls.finish_open()


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
