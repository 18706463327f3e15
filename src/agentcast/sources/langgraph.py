"""Stream any compiled LangGraph graph (`create_agent`, `create_react_agent`, your own StateGraph).

Tokens come from LangGraph's typed stream, `astream(stream_mode=["messages", "updates",
"custom"], subgraphs=True)`, not from `astream_events`. Two things that stream does not carry
are supplied by `_GraphTracker`, a callback handler attached to the run:

- provenance: it records the run tree and, when an LLM call starts, writes the call's
  `parent_id` (the enclosing tool call) and `depth` into that call's metadata, which LangGraph
  hands back with every chunk of the call;
- tool executions: `tool_start`/`tool_end` markers are written into LangGraph's own custom
  stream, so they arrive in order with the chunks (an event emitted straight from a callback
  would overtake chunks still queued inside LangGraph).

The graph's checkpointer is the session memory (`thread_id` = the session's key: its id, or
`owner/id` when the server has API keys, so two keys' threads never meet); a graph compiled
without one gets an `AsyncSqliteSaver` on `$AGENTCAST_HOME/graphs.db`. An `interrupt()` ends the
run with outcome `interrupted` carrying its payload; the next prompt on that session resumes it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextvars import Token
from pathlib import Path
from typing import Any
from uuid import UUID

import anyio
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)

from agentcast.errors import ConfigError, MissingDependency
from agentcast.events import Custom, Message, ToolEnd, ToolStart, json_safe
from agentcast.events._scope import ToolScope, current_tool_scope
from agentcast.sources._base import RunRequest, RunSink
from agentcast.sources._calls import CallRegistry
from agentcast.sources._tracking import RunTreeTracker, TrackedTool
from agentcast.sources.llm_call import LLMCallStream

__all__ = ["LangGraphSource", "message_record"]

_MARK = "__agentcast__"
_META = "agentcast_provenance"


class LangGraphSource:
    """Runs a compiled LangGraph graph for one run.

    Args:
        graph: the compiled graph (a `Pregel`).
        checkpoint_path: SQLite file for the checkpointer added when the graph has none
            (required then; `wrap` passes `agentcast_home() / "graphs.db"` by default).
        make_input: builds the graph input from the prompt (default: a `messages` state).
    """

    def __init__(
        self,
        graph: Any,
        *,
        checkpoint_path: str | Path | None = None,
        make_input: Callable[[str], Any] | None = None,
    ) -> None:
        self.graph = graph
        self.checkpoint_path = checkpoint_path
        self.make_input = make_input or (
            lambda prompt: {"messages": [HumanMessage(content=prompt)]}
        )

    async def stream(self, request: RunRequest, sink: RunSink) -> AsyncIterator[None]:
        """Stream the graph for one prompt (or resume it, when it is waiting on an interrupt)."""
        async with self._with_checkpointer() as graph:
            config: dict[str, Any] = {
                "configurable": {"thread_id": request.session_key or request.run_id},
                "callbacks": [_GraphTracker(sink)],
            }
            graph_input = await self._input(graph, config, request.input)
            state = _StreamState(sink)
            stream = graph.astream(
                graph_input, config, stream_mode=["messages", "updates", "custom"], subgraphs=True
            )
            on_message = state.on_message
            async with contextlib.aclosing(stream):
                async for namespace, mode, payload in stream:
                    if mode == "messages":
                        on_message(namespace, payload)
                    elif mode == "custom":
                        state.on_custom(payload)
                    elif mode == "updates":
                        state.on_update(namespace, payload)
                        # Once a step, not once an item: readers follow the run's log, and a
                        # yield per token would cost one more generator resume per token.
                        yield
            state.close_calls()
            if state.interrupt is not None:
                sink.interrupt(state.interrupt)
            elif state.output is not None:
                sink.set_output(state.output)

    async def _input(self, graph: Any, config: dict[str, Any], prompt: str) -> Any:
        if graph.checkpointer is not None:
            snapshot = await graph.aget_state(config)
            if getattr(snapshot, "interrupts", ()):
                from langgraph.types import Command

                return Command(resume=prompt)
        return self.make_input(prompt)

    @contextlib.asynccontextmanager
    async def _with_checkpointer(self) -> AsyncIterator[Any]:
        if self.graph.checkpointer is not None:
            yield self.graph
            return
        try:
            from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
        except ImportError:
            raise MissingDependency(
                "a graph without a checkpointer needs langgraph-checkpoint-sqlite for session"
                " memory: pip install 'agentcast[langgraph]' (or compile it with a checkpointer)"
            ) from None
        path = self.checkpoint_path
        if path is None:
            # The default file (under agentcast's home) is chosen by `wrap`, in the agents layer:
            # sources sit below sessions and do not know where agentcast keeps its data.
            raise ConfigError(
                "a graph without a checkpointer needs checkpoint_path= (wrap() passes one under"
                " agentcast's home folder), or compile the graph with a checkpointer"
            )
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        opened = AsyncSqliteSaver.from_conn_string(str(path))
        saver = await opened.__aenter__()
        try:
            yield self.graph.copy(update={"checkpointer": saver})
        finally:
            # Shielded: closing under the cancelled run's scope would cancel aiosqlite's close
            # and leave its worker thread calling back into a loop that may be closed by then.
            with anyio.CancelScope(shield=True):
                await opened.__aexit__(None, None, None)


class _StreamState:
    """Turns the graph's stream items into events, one LLM call per message id."""

    def __init__(self, sink: RunSink) -> None:
        self.sink = sink
        self.calls = CallRegistry(sink.emit, sink.track_text, sink.emit_token)
        self._get = self.calls.get
        self.output: str | None = None
        self.interrupt: Any = None
        self.steps_seen: set[str] = set()

    def on_message(
        self, namespace: tuple[str, ...], item: tuple[BaseMessage, dict[str, Any]]
    ) -> None:
        message, meta = item
        if message.__class__ is AIMessageChunk:
            # The per-token case, first and with the fields read from the chunk's `__dict__`
            # (a pydantic attribute read costs several dict subscripts).
            fields = message.__dict__
            key = fields["id"] or ""
            call = self._get(key)
            if call is None:
                call = self._open(key, namespace, meta)
            call.feed(message)
            if fields.get("chunk_position") == "last":
                self.calls.finish(key)
            return
        if not isinstance(message, (AIMessage, AIMessageChunk)):
            return  # tool results are reported by tool_end; human input by agent_start
        key = message.id or ""
        call = self._get(key) or self._open(key, namespace, meta)
        call.feed(message)
        if not isinstance(message, AIMessageChunk) or message.chunk_position == "last":
            self.calls.finish(key)

    def _open(self, key: str, namespace: tuple[str, ...], meta: dict[str, Any]) -> LLMCallStream:
        provenance = meta.get(_META) or {}
        return self.calls.open(
            key,
            call_id=provenance.get("call_id") or key,
            parent_id=provenance.get("parent_id") or ("|".join(namespace) or None),
            depth=provenance.get("depth", 0) + len(namespace),
            model=meta.get("ls_model_name"),
            name=provenance.get("name"),
            tags=tuple(meta.get("tags") or ()),
            node=meta.get("langgraph_node"),
        )

    def on_custom(self, payload: Any) -> None:
        if isinstance(payload, dict) and _MARK in payload:
            kind = payload[_MARK]
            if kind == "event":
                self.sink.emit(payload["event"])
                return
            # A tool never starts before its call's tool_call_end: close the LLM call first.
            if not self.calls.made(payload["tool_call_id"]):
                self.calls.finish_open(with_output_only=True)
            self.sink.emit(payload["event"])
            return
        self.sink.emit(Custom(name="custom", data=json_safe(payload)))

    def on_update(self, namespace: tuple[str, ...], update: Any) -> None:
        if not isinstance(update, dict):
            return
        if "__interrupt__" in update:
            if not namespace:
                interrupts = update["__interrupt__"]
                self.interrupt = json_safe([getattr(i, "value", i) for i in interrupts])
            return
        if namespace:
            return  # subgraph steps are provenance, not turns of this conversation
        for node, values in update.items():
            messages = values.get("messages") if isinstance(values, dict) else None
            for message in messages or ():
                if not isinstance(message, BaseMessage) or isinstance(message, HumanMessage):
                    continue
                if message.id and message.id in self.steps_seen:
                    continue
                if message.id:
                    self.steps_seen.add(message.id)
                record = message_record(message)
                if record is not None:
                    self.sink.message(record, node=node)
                    if record["role"] == "assistant" and not record.get("tool_calls"):
                        self.output = record["content"]

    def close_calls(self) -> None:
        self.calls.finish_open()


def message_record(message: BaseMessage) -> Message | None:
    """Return the provider-neutral record of a LangChain message (None for other kinds)."""
    if isinstance(message, AIMessage):
        record: Message = {"role": "assistant", "content": str(message.text)}
        if message.tool_calls:
            record["tool_calls"] = [
                {"id": c["id"] or "", "name": c["name"], "args": c["args"]}
                for c in message.tool_calls
            ]
        return record
    if isinstance(message, ToolMessage):
        tool: Message = {
            "role": "tool",
            "content": str(message.text),
            "tool_call_id": message.tool_call_id,
            "name": message.name or "",
        }
        if message.status == "error":
            tool["status"] = "error"
        return tool
    return None


class _GraphTracker(RunTreeTracker):
    """Records the run tree and reports tool executions through the graph's custom stream."""

    # Tokens come from the messages stream: being told of each one again would cost a
    # callback dispatch per token. `on_chat_model_start` is gated by `ignore_chat_model`.
    ignore_llm = True

    def __init__(self, sink: RunSink) -> None:
        super().__init__()
        self._sink = sink
        self._scopes: dict[UUID, Token[ToolScope | None]] = {}

    def on_chat_model_start(
        self,
        serialized: Any,
        messages: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Write the call's provenance into its metadata, which comes back with each chunk."""
        self.tools.parents[run_id] = parent_run_id
        tool = self.tool_ancestor(parent_run_id)
        if metadata is not None:
            metadata[_META] = {
                "call_id": f"llm_{run_id.hex}",
                "parent_id": tool.tool_call_id if tool else None,
                "depth": tool.depth + 1 if tool else 0,
                "name": (serialized or {}).get("name") or kwargs.get("name"),
            }

    def tool_started(self, event: ToolStart, tool: TrackedTool, run_id: UUID) -> None:
        """Report the tool's start in order with the stream, and scope `agentcast.emit`."""
        writer = _writer()
        self._write(writer, event)
        if writer is not None:
            scope = ToolScope(
                lambda e: writer({_MARK: "event", "event": e}), tool.tool_call_id, tool.depth + 1
            )
            self._scopes[run_id] = current_tool_scope.set(scope)

    def tool_ended(self, event: ToolEnd | None, run_id: UUID) -> None:
        """Leave the tool's `agentcast.emit` scope and report its end."""
        token = self._scopes.pop(run_id, None)
        if token is not None:
            with contextlib.suppress(ValueError):  # reset from another context: nothing to undo
                current_tool_scope.reset(token)
        if event is not None:
            self._write(_writer(), event)

    def _write(self, writer: Callable[[Any], None] | None, event: ToolStart | ToolEnd) -> None:
        if writer is not None:
            writer({_MARK: "tool", "tool_call_id": event.tool_call_id, "event": event})
        else:  # outside a graph node (no stream writer): deliver directly
            self._sink.emit_threadsafe(event)


def _writer() -> Callable[[Any], None] | None:
    try:
        from langgraph.config import get_stream_writer

        return get_stream_writer()
    except Exception:  # noqa: BLE001 - not inside a graph node
        return None
