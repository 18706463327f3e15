"""The body of `POST /agui`: AG-UI's `RunAgentInput`, and what a run is made of from it.

The AG-UI client holds the conversation and sends all of it with every run (`messages`), so
the run answers from those messages (`RunManager.start(history=...)`), not from the stored
session; the turn is still saved under the `threadId`. (A LangGraph graph keeps its own
conversation, its checkpoint under the `threadId`, and reads no history from the caller.)

What comes back from the client is what the encoder sent it, so the conversion accepts every
shape the encoder produces: assistant messages with `content: ""` and `toolCalls`,
`reasoning` messages (dropped: agentcast does not send reasoning back to a model), the
messages of subagents (dropped: they are a tool's own work, already summed up in its result)
and `activity` messages (dropped: display state). Checked against `@ag-ui/core` 1.0's schemas
(`RunAgentInputSchema`, `MessageSchema`).
"""

from __future__ import annotations

import json
from typing import Any, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentcast.errors import InvalidInput
from agentcast.events import Message, MessageStatus, ToolCallRecord

__all__ = ["AguiMessage", "AguiRunInput", "custom_data_of", "turn_of"]

_OPEN = ConfigDict(extra="ignore", populate_by_name=True)
"""AG-UI objects are open (`looseObject`): fields this server does not use are ignored."""


class AguiFunctionCall(BaseModel):
    """The name and raw JSON arguments of a tool call."""

    model_config = _OPEN
    name: str
    arguments: str


class AguiToolCall(BaseModel):
    """A tool call an assistant message made."""

    model_config = _OPEN
    id: str
    type: Literal["function"] = "function"
    function: AguiFunctionCall


class AguiMessage(BaseModel):
    """One message of the conversation the client holds (any AG-UI role)."""

    model_config = _OPEN
    id: str
    role: Literal["developer", "system", "assistant", "user", "tool", "activity", "reasoning"]
    content: str | list[dict[str, Any]] | dict[str, Any] | None = None
    tool_calls: list[AguiToolCall] | None = Field(default=None, alias="toolCalls")
    tool_call_id: str | None = Field(default=None, alias="toolCallId")
    error: str | None = None
    subagent_run_id: str | None = Field(default=None, alias="subagentRunId")
    metadata: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _content_fits_role(self) -> AguiMessage:
        content, role = self.content, self.role
        if role in ("developer", "system", "reasoning") and not isinstance(content, str):
            raise ValueError(f"a {role} message's content must be a string")
        if role in ("user", "tool") and not isinstance(content, (str, list)):
            raise ValueError(f"a {role} message's content must be a string or a list of parts")
        if role == "assistant" and content is not None and not isinstance(content, str):
            raise ValueError("an assistant message's content must be a string")
        if role == "activity" and not isinstance(content, dict):
            raise ValueError("an activity message's content must be an object")
        if role == "tool" and self.tool_call_id is None:
            raise ValueError("a tool message needs toolCallId")
        return self


class AguiContext(BaseModel):
    """A named piece of ambient information for the run."""

    model_config = _OPEN
    description: str
    value: str


class AguiResumeEntry(BaseModel):
    """The answer to one interrupt of the previous run."""

    model_config = _OPEN
    interrupt_id: str = Field(alias="interruptId")
    status: Literal["resolved", "cancelled"]
    payload: Any = None


class AguiRunInput(BaseModel):
    """AG-UI's `RunAgentInput`, as `@ag-ui/client`'s `HttpAgent` posts it."""

    model_config = _OPEN
    thread_id: str = Field(alias="threadId", description="The conversation: the session id.")
    run_id: str = Field(alias="runId", description="This run's id (echoed in every run event).")
    protocol_version: str | None = Field(default=None, alias="protocolVersion")
    parent_run_id: str | None = Field(default=None, alias="parentRunId")
    state: Any = None
    messages: list[AguiMessage] = Field(
        description="The whole conversation, the new user message last."
    )
    tools: list[dict[str, Any]] = Field(
        default_factory=list, description="Frontend tools: accepted, not offered to the model."
    )
    context: list[AguiContext] = Field(default_factory=list)
    forwarded_props: Any = Field(default=None, alias="forwardedProps")
    resume: list[AguiResumeEntry] | None = Field(
        default=None, description="Answers to the previous run's interrupt (one)."
    )


def turn_of(body: AguiRunInput) -> tuple[str, list[Message]]:
    """Return the prompt of the run and the history it answers from.

    The prompt is the last message, the user's; with `resume`, it is the answer to the
    interrupt the previous run ended on (a LangGraph graph resumes with it).

    Raises:
        InvalidInput: no user message to answer, a part that is not text, a resume that
            cannot be answered.
    """
    kept = [
        (index, m)
        for index, m in enumerate(body.messages)
        if m.subagent_run_id is None and m.role not in ("activity", "reasoning")
    ]
    if body.resume:
        return _resume_prompt(body.resume), _history(kept)
    if not kept or kept[-1][1].role != "user":
        raise InvalidInput(
            "messages must end with the user's message: it is what the run answers (to answer"
            " an interrupt, send resume)"
        )
    index, last = kept[-1]
    return _text(last, index), _history(kept[:-1])


def custom_data_of(body: AguiRunInput) -> dict[str, Any] | None:
    """Return what of the input the agent does not consume, attached to the run as-is."""
    extra = {
        "context": [c.model_dump() for c in body.context],
        "state": body.state,
        "forwardedProps": body.forwarded_props,
        "tools": body.tools,
    }
    kept = {key: value for key, value in extra.items() if value not in (None, [], {})}
    return {"agui": kept} if kept else None


def _resume_prompt(entries: list[AguiResumeEntry]) -> str:
    if len(entries) != 1:
        raise InvalidInput(f"resume answers one interrupt at a time, got {len(entries)}")
    entry = entries[0]
    if entry.status != "resolved" or entry.payload is None:
        raise InvalidInput(
            "an interrupt is resumed with its answer: send status 'resolved' and a payload"
            " (agentcast cannot cancel an interrupt)"
        )
    payload = entry.payload
    return payload if isinstance(payload, str) else msgspec.json.encode(payload).decode()


def _text(message: AguiMessage, index: int) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise InvalidInput(
                    f"messages[{index}]: only text parts are supported, got a"
                    f" {str(part.get('type'))[:20]!r} part"
                )
            texts.append(part["text"])
        return "\n".join(texts)
    return ""


def _arguments(raw: str) -> dict[str, Any]:
    # A run that was cut short leaves a client with partial arguments: they were never run,
    # so an empty object stands for them rather than failing every later turn.
    try:
        value = json.loads(raw) if raw.strip() else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _history(messages: list[tuple[int, AguiMessage]]) -> list[Message]:
    """Convert the client's messages, repaired as a model requires them.

    Every tool call gets a result right after its assistant message (one the client lacks is
    synthesized, marked cancelled); a tool result that answers no call is left out.
    """
    history: list[Message] = []
    pending: dict[str, ToolCallRecord] = {}

    def answer_pending() -> None:
        for call in pending.values():
            history.append(
                {
                    "role": "tool",
                    "content": "the tool did not finish (cancelled)",
                    "tool_call_id": call["id"],
                    "name": call["name"],
                    "status": "cancelled",
                }
            )
        pending.clear()

    for index, message in messages:
        if message.role == "tool":
            call = pending.pop(message.tool_call_id or "", None)
            if call is not None:
                history.append(_tool_result(message, index, call["name"]))
            continue
        answer_pending()
        if message.role == "assistant":
            record: Message = {"role": "assistant", "content": _text(message, index)}
            if message.tool_calls:
                calls: list[ToolCallRecord] = [
                    {"id": c.id, "name": c.function.name, "args": _arguments(c.function.arguments)}
                    for c in message.tool_calls
                ]
                record["tool_calls"] = calls
                pending = {c["id"]: c for c in calls}
            history.append(record)
        else:
            role: Literal["user", "system"] = "user" if message.role == "user" else "system"
            history.append({"role": role, "content": _text(message, index)})
    answer_pending()
    return history


def _tool_result(message: AguiMessage, index: int, name: str) -> Message:
    record: Message = {
        "role": "tool",
        "content": _text(message, index),
        "tool_call_id": message.tool_call_id or "",
        "name": name,
    }
    status = (message.metadata or {}).get("status")
    if message.error is not None or status in ("error", "cancelled"):
        failed: MessageStatus = "cancelled" if status == "cancelled" else "error"
        record["status"] = failed
    return record
