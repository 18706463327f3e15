"""The chat view model: what a chat shows, reduced from events with no I/O.

`ChatView.apply(event)` (or `reduce(view, event)`) folds one event into the view. It mutates the
view in place: a reducer that copied the view on every token would make a long answer O(n^2).
Text is kept as lists of the received pieces and joined only when asked for, for the same reason.

Shape: `ChatView.items` is the timeline a chat shows, in arrival order: answer and reasoning text
(`TextBlock`), tool calls (`ToolCallView`), custom events (`CustomView`) and errors
(`ErrorView`). A tool call holds its own timeline (`ToolCallView.items`) with the tokens of LLMs
called inside it, the custom events it emitted, and the tool calls of agents running inside it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from agentcast.console._footer import Footer
from agentcast.events import (
    AgentEnd,
    AgentStart,
    BaseEvent,
    Custom,
    Error,
    LLMEnd,
    LLMStart,
    LLMToken,
    TokenKind,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolEnd,
    ToolStart,
)

ToolState = Literal["streaming", "called", "running", "ok", "error", "cancelled"]
"""Where a tool call is: its arguments `streaming`, `called` (arguments complete), `running`,
or ended `ok` / `error` / `cancelled`."""


@dataclass(eq=False)
class TextBlock:
    """A run of consecutive tokens of one kind from one LLM call.

    Attributes:
        call_id: the LLM call that produced the tokens.
        kind: `text` (answer) or `reasoning`.
        depth: 0 for the agent's own LLM, >= 1 for an LLM called inside a tool.
        parts: the tokens as received; `text` joins them.
        closed: no more tokens will be added (the call ended or something else followed).
    """

    call_id: str
    kind: TokenKind = "text"
    depth: int = 0
    parts: list[str] = field(default_factory=list)
    closed: bool = False

    @property
    def text(self) -> str:
        """The block's text (joins `parts`; O(length) per call)."""
        return "".join(self.parts)


@dataclass(eq=False)
class CustomView:
    """A custom event emitted by user code through `agentcast.emit(name, data)`.

    Attributes:
        name: the name the user gave it.
        data: its JSON-safe payload.
        tool_call_id: the tool it came from, None at top level.
    """

    name: str
    data: Any = None
    tool_call_id: str | None = None


@dataclass(eq=False)
class ErrorView:
    """An `error` event.

    Attributes:
        message: the message fit to show a person.
        error_type: the error's class name.
        code: the stable machine-readable code.
        retryable: whether the same request may succeed again (e.g. a retry is under way).
        partial: whether answer output had already streamed.
    """

    message: str
    error_type: str = "Error"
    code: str = "error"
    retryable: bool = False
    partial: bool = False


@dataclass(eq=False)
class ToolCallView:
    """One tool call, from the model writing it to the tool's result.

    Attributes:
        tool_call_id: the provider's id of the call.
        name: the tool's name.
        index: position of the call in the model's turn.
        call_id: the LLM call that asked for it.
        parent_id: the enclosing tool call when an agent inside a tool made it, else None.
        depth: the depth of the LLM call that asked for it (0 at top level).
        state: see `ToolState`.
        arg_parts: the raw argument JSON fragments as streamed; `raw_args` joins them.
        args: the parsed arguments, once the call is complete and they were valid JSON.
        args_error: why the arguments could not be parsed.
        output: the tool's result when it succeeded.
        error: the tool's error message when it failed.
        duration_ms: how long the tool ran.
        items: what happened inside the tool: nested LLM text, custom events, nested tool calls.
        finished: nothing more will happen to this call (it ended, or will never run).
    """

    tool_call_id: str
    name: str
    index: int = 0
    call_id: str | None = None
    parent_id: str | None = None
    depth: int = 0
    state: ToolState = "streaming"
    arg_parts: list[str] = field(default_factory=list)
    args: dict[str, Any] | None = None
    args_error: str | None = None
    output: Any = None
    error: str | None = None
    duration_ms: float | None = None
    items: list[Item] = field(default_factory=list)
    finished: bool = False

    @property
    def raw_args(self) -> str:
        """The raw argument JSON streamed so far."""
        return "".join(self.arg_parts)

    @property
    def nested_text(self) -> str:
        """The answer text of the LLMs called directly inside this tool."""
        return "".join(
            block.text
            for block in self.items
            if isinstance(block, TextBlock) and block.kind == "text"
        )


Item = Union[TextBlock, ToolCallView, CustomView, ErrorView]
"""One entry of a timeline (`ChatView.items` or `ToolCallView.items`)."""


@dataclass(eq=False)
class ChatView:
    """Everything a chat shows about one run; update it with `apply(event)`.

    Attributes:
        run_id: the run, once `agent_start` arrived.
        input: the user's prompt.
        items: the top-level timeline (answer/reasoning text, tool calls, custom events, errors).
        tools: every tool call of the run, at any depth, by `tool_call_id`.
        errors: every error event, in order (they are in `items` too).
        started: the first token or tool event arrived (the model stopped "thinking").
        ended: `agent_end` arrived.
        outcome: how the run ended.
        output: the run's final output from `agent_end`.
        footer: the summary from `agent_end`.
    """

    run_id: str | None = None
    input: Any = None
    items: list[Item] = field(default_factory=list)
    tools: dict[str, ToolCallView] = field(default_factory=dict)
    errors: list[ErrorView] = field(default_factory=list)
    started: bool = False
    ended: bool = False
    outcome: str | None = None
    output: Any = None
    footer: Footer | None = None
    _llm_parent: dict[str, str | None] = field(default_factory=dict, repr=False)
    _llm_depth: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def thinking(self) -> bool:
        """True until the first token or tool event of the run (and while it has not ended)."""
        return not self.started and not self.ended

    @property
    def answer(self) -> str:
        """All answer text of the agent's own (depth 0) LLM calls, in order."""
        return self._text("text")

    @property
    def reasoning(self) -> str:
        """All reasoning text of the agent's own LLM calls, in order."""
        return self._text("reasoning")

    def _text(self, kind: str) -> str:
        return "".join(
            block.text
            for block in self.items
            if isinstance(block, TextBlock) and block.kind == kind and block.depth == 0
        )

    def tool_for_call(self, call_id: str) -> ToolCallView | None:
        """The tool call an LLM call runs inside, or None for a top-level (or unknown) call."""
        parent = self._llm_parent.get(call_id)
        return self.tools.get(parent) if parent is not None else None

    def apply(self, event: BaseEvent) -> None:
        """Fold one event into the view. Unknown event types are ignored."""
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    # -- handlers (one per event type) ---------------------------------------------------

    def _on_agent_start(self, event: AgentStart) -> None:
        self.run_id = event.run_id or None
        self.input = event.input

    def _on_llm_start(self, event: LLMStart) -> None:
        self._llm_parent[event.call_id] = event.parent_id
        self._llm_depth[event.call_id] = event.depth
        # A new model turn at this level means the previous turn's tool calls that never started
        # never will (e.g. a chain that only asks for tools); let them settle so they can be shown.
        for tool in self.tools.values():
            if tool.state == "called" and tool.parent_id == event.parent_id:
                tool.finished = True

    def _on_token(self, event: LLMToken) -> None:
        self.started = True
        owner = self.tool_for_call(event.call_id)
        items = owner.items if owner is not None else self.items
        last = items[-1] if items else None
        if (
            isinstance(last, TextBlock)
            and not last.closed
            and last.call_id == event.call_id
            and last.kind == event.kind
        ):
            last.parts.append(event.token)
        else:
            _append(items, TextBlock(event.call_id, event.kind, event.depth, [event.token]))

    def _on_llm_end(self, event: LLMEnd) -> None:
        owner = self.tool_for_call(event.call_id)
        items = owner.items if owner is not None else self.items
        if items and isinstance(items[-1], TextBlock) and items[-1].call_id == event.call_id:
            items[-1].closed = True

    def _tool(self, tool_call_id: str, name: str, call_id: str | None) -> ToolCallView:
        tool = self.tools.get(tool_call_id)
        if tool is None:
            parent = self._llm_parent.get(call_id) if call_id is not None else None
            owner = self.tools.get(parent) if parent is not None else None
            depth = self._llm_depth.get(call_id, 0) if call_id is not None else 0
            tool = ToolCallView(tool_call_id, name, call_id=call_id, parent_id=parent, depth=depth)
            self.tools[tool_call_id] = tool
            _append(owner.items if owner is not None else self.items, tool)
        return tool

    def _on_tool_call_start(self, event: ToolCallStart) -> None:
        self.started = True
        self._tool(event.tool_call_id, event.name, event.call_id).index = event.index

    def _on_tool_call_delta(self, event: ToolCallDelta) -> None:
        self._tool(event.tool_call_id, "", None).arg_parts.append(event.delta)

    def _on_tool_call_end(self, event: ToolCallEnd) -> None:
        tool = self._tool(event.tool_call_id, event.name, None)
        tool.name = event.name or tool.name
        tool.args, tool.args_error = event.args, event.error
        if event.raw is not None and not tool.arg_parts:
            tool.arg_parts.append(event.raw)
        if tool.state == "streaming":
            tool.state = "called"

    def _on_tool_start(self, event: ToolStart) -> None:
        self.started = True
        tool = self._tool(event.tool_call_id, event.name, event.call_id)
        tool.state = "running"
        # Sources without tool_call_* events (callback bridges) only tell the input here.
        if tool.args is None and tool.args_error is None and isinstance(event.input, dict):
            tool.args = event.input

    def _on_tool_end(self, event: ToolEnd) -> None:
        tool = self._tool(event.tool_call_id, event.name, None)
        tool.state = event.status
        tool.output, tool.error = event.output, event.error
        tool.duration_ms = event.duration_ms
        tool.finished = True
        for block in tool.items:
            if isinstance(block, TextBlock):
                block.closed = True

    def _on_custom(self, event: Custom) -> None:
        owner = self.tools.get(event.tool_call_id) if event.tool_call_id is not None else None
        item = CustomView(event.name, event.data, event.tool_call_id)
        _append(owner.items if owner is not None else self.items, item)

    def _on_error(self, event: Error) -> None:
        error = ErrorView(event.error, event.error_type, event.code, event.retryable, event.partial)
        self.errors.append(error)
        _append(self.items, error)

    def _on_agent_end(self, event: AgentEnd) -> None:
        self.ended = True
        self.outcome = event.outcome
        self.output = event.output
        self.footer = Footer.from_event(event)
        _settle(self.items)


def _append(items: list[Item], item: Item) -> None:
    # Whatever follows a text block ends it: later tokens of the same call start a new block, so
    # the timeline keeps the order in which things were shown.
    if items and isinstance(items[-1], TextBlock):
        items[-1].closed = True
    items.append(item)


def _settle(items: list[Item]) -> None:
    for item in items:
        if isinstance(item, TextBlock):
            item.closed = True
        elif isinstance(item, ToolCallView):
            item.finished = True
            _settle(item.items)


def reduce(view: ChatView, event: BaseEvent) -> ChatView:
    """Fold `event` into `view` (in place, O(1) per token) and return the view."""
    view.apply(event)
    return view


_HANDLERS: dict[type[BaseEvent], Callable[[ChatView, Any], None]] = {
    AgentStart: ChatView._on_agent_start,
    LLMStart: ChatView._on_llm_start,
    LLMToken: ChatView._on_token,
    LLMEnd: ChatView._on_llm_end,
    ToolCallStart: ChatView._on_tool_call_start,
    ToolCallDelta: ChatView._on_tool_call_delta,
    ToolCallEnd: ChatView._on_tool_call_end,
    ToolStart: ChatView._on_tool_start,
    ToolEnd: ChatView._on_tool_end,
    Custom: ChatView._on_custom,
    Error: ChatView._on_error,
    AgentEnd: ChatView._on_agent_end,
}
