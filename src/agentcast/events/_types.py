"""Every event of protocol v1, as immutable msgspec structs.

Why msgspec structs and not frozen dataclasses: an event is created for every token, and a frozen
slotted dataclass costs ~1.2 us to construct against ~0.09 us for a frozen struct (measured on the
project's machine); `gc=False` keeps the per-token objects out of the cyclic garbage collector,
whose full collections are what limits plain streaming servers (see DESIGN.md, budgets). Events
hold no references back to themselves, so they can never be part of a cycle.

Each event carries the envelope fields (`run_id`, `seq`, `ts`, `session_id`). Sources create
events without them; the runtime stamps them (see `agentcast.runtime.Run.emit`), which is the one
place `seq` is assigned. Wire names are permanent: add optional fields, never rename.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Union

import msgspec

PROTOCOL_VERSION = 1
"""Version of the wire protocol, written as `v` in every encoded envelope."""

ENVELOPE_FIELDS = ("run_id", "seq", "ts", "session_id")
"""Fields every event carries besides its own payload."""

TokenKind = Literal["text", "reasoning"]
"""`text` is answer text; `reasoning` is the model's thinking, never mixed into text."""

LLMRole = Literal["answer", "tool_use", "internal"]
"""What an LLM call turned out to be: the final answer, a tool-calling turn, or a nested call."""

ToolStatus = Literal["ok", "error", "cancelled"]
"""How a tool execution ended."""

ToolExecutor = Literal["local", "provider"]
"""Who runs a tool: `local` (the agent, in this process) or `provider` (the model provider,
e.g. Anthropic web search or OpenAI's built-in tools: never run here, shown as it happened)."""

Outcome = Literal["success", "error", "cancelled", "timeout", "interrupted"]
"""How a run ended."""

StepType = Literal["human", "ai", "tool"]
"""The author of a completed message in `agent_step`."""


class BaseEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Fields shared by every event: the envelope.

    Attributes:
        run_id: the run this event belongs to.
        seq: position in the run, strictly increasing from 0; the resume cursor.
        ts: wall-clock time the runtime stamped the event, epoch milliseconds.
        session_id: the conversation the run belongs to, if any.
    """

    type: ClassVar[str]
    run_id: str = ""
    seq: int = -1
    ts: int = 0
    session_id: str | None = None

    @property
    def data(self) -> dict[str, Any]:
        """The payload as a dict, the same as `to_dict(event)["data"]`: `event.data["token"]`.

        Built on each access and never stored, so an event costs nothing more to make. On a
        `custom` event `data` is that event's own payload field (what was given to `emit()`);
        its payload dict is `to_dict(event)["data"]` there.
        """
        return payload_dict(self)


def payload_dict(event: BaseEvent) -> dict[str, Any]:
    """Return an event's payload fields as JSON-safe builtins, under their wire names."""
    payload: dict[str, Any] = msgspec.to_builtins(event)
    for name in ENVELOPE_FIELDS:
        del payload[name]
    for key, value in payload.items():
        if type(value) is tuple:  # the dict must equal the parsed JSON, where tuples are lists
            payload[key] = list(value)
    return payload


class AgentStart(BaseEvent, frozen=True, kw_only=True, gc=False):
    """The run started. Always the first event (`seq` 0).

    Attributes:
        input: the user's prompt.
        actor_id: who asked, when known.
        custom_data: opaque data the caller attached to the run.
    """

    type: ClassVar[str] = "agent_start"
    input: Any = None
    actor_id: str | None = None
    custom_data: Any = None


class LLMStart(BaseEvent, frozen=True, kw_only=True, gc=False):
    """An LLM call started.

    Attributes:
        call_id: id of this LLM call; tokens and tool calls refer to it.
        parent_id: the enclosing call (a tool execution's `tool_call_id`), None at top level.
        depth: 0 for the agent's own LLM, 1 for an LLM called inside a tool, and so on.
        model: the model name, as the provider knows it.
        name: the LangChain class or runnable name of the model.
        tags: tags of the call.
        node: the graph node that made the call, when the source is a graph.
    """

    type: ClassVar[str] = "llm_start"
    call_id: str
    parent_id: str | None = None
    depth: int = 0
    model: str | None = None
    name: str | None = None
    tags: tuple[str, ...] = ()
    node: str | None = None


class LLMToken(BaseEvent, frozen=True, kw_only=True, gc=False):
    """A piece of model output. `token` is always a non-empty str.

    Attributes:
        call_id: the LLM call that produced it.
        token: the text; never a content block, never tool-argument bytes.
        kind: `text` (answer) or `reasoning` (thinking).
        depth: copied from the call's `llm_start` so consumers can filter without state.
    """

    type: ClassVar[str] = "llm_token"
    call_id: str
    token: str
    kind: TokenKind = "text"
    depth: int = 0


class ToolCallStart(BaseEvent, frozen=True, kw_only=True, gc=False):
    """The model started writing a tool call.

    Attributes:
        call_id: the LLM call writing it.
        tool_call_id: the provider's id of the tool call (synthesized when it gives none).
        name: the tool's name.
        index: position of the call in the model's turn.
        executor: `provider` when the provider runs the tool itself, else `local`.
    """

    type: ClassVar[str] = "tool_call_start"
    call_id: str
    tool_call_id: str
    name: str
    index: int = 0
    executor: ToolExecutor = "local"


class ToolCallDelta(BaseEvent, frozen=True, kw_only=True, gc=False):
    """A fragment of a tool call's argument JSON, as the model wrote it.

    Attributes:
        tool_call_id: the tool call this fragment belongs to.
        delta: raw JSON text; the fragments concatenated are the raw arguments.
    """

    type: ClassVar[str] = "tool_call_delta"
    tool_call_id: str
    delta: str


class ToolCallEnd(BaseEvent, frozen=True, kw_only=True, gc=False):
    """The model finished a tool call; its arguments are parsed exactly once, here.

    Attributes:
        tool_call_id: the tool call.
        name: the tool's name.
        args: the parsed arguments (an object), or None when they were not valid JSON.
        error: why the arguments could not be parsed, or why the call was cut short.
        raw: the raw argument text, set when `error` is.
        executor: `provider` when the provider runs the tool itself, else `local`.
    """

    type: ClassVar[str] = "tool_call_end"
    tool_call_id: str
    name: str
    args: dict[str, Any] | None = None
    error: str | None = None
    raw: str | None = None
    executor: ToolExecutor = "local"


class LLMEnd(BaseEvent, frozen=True, kw_only=True, gc=False):
    """An LLM call ended.

    Attributes:
        call_id: the LLM call.
        finish_reason: the provider's reason (`stop`, `tool_calls`, ...), `cancelled`, `error`.
        usage: `{input_tokens, output_tokens, total_tokens, source}`, or None when the
            provider reported none (never a made-up zero).
        ttft_ms: milliseconds from the call's start to its first token, if any came.
        duration_ms: milliseconds the call took.
        role: `answer`, `tool_use` or `internal`.
    """

    type: ClassVar[str] = "llm_end"
    call_id: str
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    ttft_ms: float | None = None
    duration_ms: float = 0.0
    role: LLMRole = "answer"


class ToolStart(BaseEvent, frozen=True, kw_only=True, gc=False):
    """A tool started executing (always after its `tool_call_end`).

    Attributes:
        tool_call_id: the tool call being executed.
        name: the tool's name.
        input: the arguments it was given.
        call_id: the LLM call that asked for it.
        parent_id: the call enclosing that LLM call, None at top level.
        depth: the depth of the LLM call that asked for it.
        executor: `provider` when the provider ran the tool (reported inside its LLM call,
            once its result arrived), else `local`.
    """

    type: ClassVar[str] = "tool_start"
    tool_call_id: str
    name: str
    input: Any = None
    call_id: str | None = None
    parent_id: str | None = None
    depth: int = 0
    executor: ToolExecutor = "local"


class ToolEnd(BaseEvent, frozen=True, kw_only=True, gc=False):
    """A tool finished.

    Attributes:
        tool_call_id: the tool call that was executed.
        name: the tool's name.
        status: `ok`, `error` or `cancelled`.
        output: the result, JSON-safe, when `status` is `ok`.
        error: the error message, otherwise.
        duration_ms: how long the tool ran (for a provider's tool: from the end of its input
            to the arrival of its result).
        executor: `provider` when the provider ran the tool, else `local`.
    """

    type: ClassVar[str] = "tool_end"
    tool_call_id: str
    name: str
    status: ToolStatus = "ok"
    output: Any = None
    error: str | None = None
    duration_ms: float = 0.0
    executor: ToolExecutor = "local"


class Custom(BaseEvent, frozen=True, kw_only=True, gc=False):
    """An event user code sent with `agentcast.emit(name, data)`.

    Attributes:
        name: the name the user gave it.
        data: its JSON-safe payload.
        tool_call_id: the tool execution it came from, when it came from a tool.
    """

    type: ClassVar[str] = "custom"
    name: str
    data: Any = None
    tool_call_id: str | None = None


class AgentStep(BaseEvent, frozen=True, kw_only=True, gc=False):
    """A message was completed: the user's input, an AI turn, or a tool result.

    Attributes:
        step: 1-based number of the message in this run.
        node: the graph node that produced it, when the source is a graph.
        message_type: `human`, `ai` or `tool` (on the wire: `type`).
        content: the message's text (for a tool: its output).
    """

    type: ClassVar[str] = "agent_step"
    step: int
    node: str | None = None
    message_type: StepType = msgspec.field(default="ai", name="type")
    content: Any = None


class AgentEnd(BaseEvent, frozen=True, kw_only=True, gc=False):
    """The run ended. Always the last event, exactly once.

    Attributes:
        outcome: `success`, `error`, `cancelled`, `timeout` or `interrupted`.
        output: the final answer (partial when the run did not succeed).
        steps: how many messages the run completed.
        metrics: tokens, tool_calls, errors, ttft_ms, duration_ms, tokens_per_s, llm_calls, usage.
    """

    type: ClassVar[str] = "agent_end"
    outcome: Outcome = "success"
    output: Any = None
    steps: int = 0
    metrics: dict[str, Any] = msgspec.field(default_factory=dict)


class Error(BaseEvent, frozen=True, kw_only=True, gc=False):
    """Something failed. An `agent_end` follows when the run cannot go on.

    Attributes:
        error: a message fit to show a person.
        error_type: the error's class name (on the wire: `type`).
        code: a stable machine-readable code.
        retryable: whether sending the same request again may succeed.
        partial: whether answer output had already streamed when it failed.
    """

    type: ClassVar[str] = "error"
    error: str
    error_type: str = msgspec.field(default="Error", name="type")
    code: str = "error"
    retryable: bool = False
    partial: bool = False


Event = Union[
    AgentStart,
    LLMStart,
    LLMToken,
    ToolCallStart,
    ToolCallDelta,
    ToolCallEnd,
    LLMEnd,
    ToolStart,
    ToolEnd,
    Custom,
    AgentStep,
    AgentEnd,
    Error,
]
"""Any event of protocol v1."""

EVENT_TYPES: dict[str, type[BaseEvent]] = {
    cls.type: cls
    for cls in (
        AgentStart,
        LLMStart,
        LLMToken,
        ToolCallStart,
        ToolCallDelta,
        ToolCallEnd,
        LLMEnd,
        ToolStart,
        ToolEnd,
        Custom,
        AgentStep,
        AgentEnd,
        Error,
    )
}
"""Wire name -> event class."""
