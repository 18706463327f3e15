"""The rules an AG-UI event stream must follow, as a Python checker (for the encoder's tests).

Written from @ag-ui/core 1.0's zod schemas (`EventSchema`: fields, types, no `null`, and no
unknown field, since the client strips those with a warning) and @ag-ui/client 1.0's
`verifyEvents` (order: RUN_STARTED first, CONTENT/ARGS/END only for an open id, nothing open
at RUN_FINISHED, nothing after the terminal event, subagent attribution consistent with each
opener), plus what the client's reducer needs: message ids never reused for another message.
The same streams also go through the real `verifyEvents` (tests/js/agui/verify.mjs).
"""

from __future__ import annotations

from typing import Any

_STR, _ANY, _OBJ, _LIST = str, object, dict, list

_COMMON = {"type": _STR, "timestamp": int, "rawEvent": _ANY, "metadata": _OBJ}
_ATTRIBUTED = {**_COMMON, "subagentRunId": _STR}

# type -> (required fields, optional fields), as @ag-ui/core/schemas defines them.
_FIELDS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "RUN_STARTED": (
        {"threadId": _STR, "runId": _STR},
        {**_COMMON, "protocolVersion": _STR, "parentRunId": _STR, "input": _OBJ},
    ),
    "RUN_FINISHED": (
        {"threadId": _STR, "runId": _STR},
        {**_COMMON, "result": _ANY, "outcome": _OBJ, "usage": _LIST},
    ),
    "RUN_ERROR": ({"message": _STR}, {**_COMMON, "code": _STR, "usage": _LIST}),
    "TEXT_MESSAGE_START": ({"messageId": _STR}, {**_ATTRIBUTED, "role": _STR, "name": _STR}),
    "TEXT_MESSAGE_CONTENT": ({"messageId": _STR, "delta": _STR}, _ATTRIBUTED),
    "TEXT_MESSAGE_END": ({"messageId": _STR}, _ATTRIBUTED),
    "TOOL_CALL_START": (
        {"toolCallId": _STR, "toolCallName": _STR},
        {**_ATTRIBUTED, "parentMessageId": _STR},
    ),
    "TOOL_CALL_ARGS": ({"toolCallId": _STR, "delta": _STR}, _ATTRIBUTED),
    "TOOL_CALL_END": ({"toolCallId": _STR}, _ATTRIBUTED),
    "TOOL_CALL_RESULT": (
        {"messageId": _STR, "toolCallId": _STR, "content": (str, list)},
        {**_ATTRIBUTED, "role": _STR},
    ),
    "CUSTOM": ({"name": _STR, "value": _ANY}, _ATTRIBUTED),
    "REASONING_START": ({"messageId": _STR}, _ATTRIBUTED),
    "REASONING_MESSAGE_START": ({"messageId": _STR, "role": _STR}, _ATTRIBUTED),
    "REASONING_MESSAGE_CONTENT": ({"messageId": _STR, "delta": _STR}, _ATTRIBUTED),
    "REASONING_MESSAGE_END": ({"messageId": _STR}, _ATTRIBUTED),
    "REASONING_END": ({"messageId": _STR}, _ATTRIBUTED),
    "SUBAGENT_STARTED": (
        {"subagentRunId": _STR, "name": _STR},
        {
            **_COMMON,
            "description": _STR,
            "parentSubagentRunId": _STR,
            "parentToolCallId": _STR,
            "parentMessageId": _STR,
        },
    ),
    "SUBAGENT_FINISHED": ({"subagentRunId": _STR}, {**_COMMON, "result": _ANY, "outcome": _OBJ}),
    "SUBAGENT_ERROR": ({"subagentRunId": _STR, "message": _STR}, {**_COMMON, "code": _STR}),
}
_USAGE_KEYS = {
    "inputTokens",
    "outputTokens",
    "totalTokens",
    "reasoningTokens",
    "cachedInputTokens",
    "cacheWriteInputTokens",
}
_INTERRUPT_KEYS = {
    "id",
    "reason",
    "message",
    "toolCallId",
    "responseSchema",
    "expiresAt",
    "metadata",
    "subagentRunId",
}
_SAFE_INT = 2**53 - 1


class RuleViolation(AssertionError):
    """The stream breaks an AG-UI rule."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise RuleViolation(message)


def check_event_shape(event: dict[str, Any]) -> None:
    """Check one event against its schema: fields, types, no null, nothing unknown."""
    kind = event.get("type")
    _require(kind in _FIELDS, f"unknown event type {kind!r}")
    required, optional = _FIELDS[kind]
    allowed = {**required, **optional, "type": _STR}
    for name in required:
        _require(name in event, f"{kind} lacks {name}")
    for name, value in event.items():
        _require(name in allowed, f"{kind} has the unknown field {name!r}")
        if name == "value" and kind == "CUSTOM":
            continue  # any JSON value, null included: it is the payload
        _require(value is not None, f"{kind}.{name} is null (absent fields are omitted)")
        expected = allowed[name]
        if expected is int:
            _require(type(value) is int and abs(value) <= _SAFE_INT, f"{kind}.{name} is not an int")
        elif expected is not _ANY:
            _require(isinstance(value, expected), f"{kind}.{name} has the wrong type")
    if kind == "TEXT_MESSAGE_START" and "role" in event:
        _require(event["role"] in ("developer", "system", "assistant", "user"), "bad role")
    if kind == "REASONING_MESSAGE_START":
        _require(event["role"] == "reasoning", "a reasoning message's role is 'reasoning'")
    if kind == "TOOL_CALL_RESULT" and "role" in event:
        _require(event["role"] == "tool", "a tool result's role is 'tool'")
    if kind == "RUN_FINISHED":
        _check_outcome(event.get("outcome"))
    for usage in event.get("usage", ()):
        _require(isinstance(usage, dict), "usage entries are objects")
        for key, count in usage.items():
            if key in ("provider", "model"):
                _require(isinstance(count, str), f"usage.{key} is a string")
                continue
            _require(key in _USAGE_KEYS, f"unknown usage field {key!r}")
            _require(type(count) is int and count >= 0, f"usage.{key} is a count")


def _check_outcome(outcome: Any) -> None:
    if outcome is None:
        return
    kind = outcome.get("type")
    keys = {
        "success": {"type", "pendingToolCallIds"},
        "cancelled": {"type"},
        "interrupt": {"type", "interrupts"},
    }
    _require(kind in keys, f"unknown outcome {kind!r}")
    _require(set(outcome) <= keys[kind], f"unknown fields in outcome {sorted(outcome)}")
    if kind == "interrupt":
        interrupts = outcome["interrupts"]
        _require(isinstance(interrupts, list) and len(interrupts) >= 1, "no interrupts")
        for interrupt in interrupts:
            _require(set(interrupt) <= _INTERRUPT_KEYS, f"unknown interrupt fields {interrupt}")
            _require(isinstance(interrupt.get("id"), str), "an interrupt needs an id")
            _require(isinstance(interrupt.get("reason"), str), "an interrupt needs a reason")
            _require(None not in interrupt.values(), "a null in an interrupt")
            if "metadata" in interrupt:
                _require(isinstance(interrupt["metadata"], dict), "interrupt metadata")


def check_stream(
    events: list[dict[str, Any]], *, thread_id: str | None = None, run_id: str | None = None
) -> None:
    """Check one run's whole stream; raise `RuleViolation` naming the first broken rule."""
    _require(bool(events), "an empty stream")
    _require(events[0]["type"] == "RUN_STARTED", f"the first event is {events[0]['type']}")
    _require(
        events[-1]["type"] in ("RUN_FINISHED", "RUN_ERROR"), f"the last is {events[-1]['type']}"
    )
    text: dict[str, str | None] = {}  # open text messages -> owner
    reasoning_spans: dict[str, str | None] = {}
    reasoning_messages: dict[str, str | None] = {}
    tool_calls: dict[str, str | None] = {}  # open tool calls -> owner
    ended_tool_calls: set[str] = set()
    owners: dict[str, str | None] = {}  # every message id seen -> owner
    minted: set[str] = set()  # ids of messages the client creates
    subagents: set[str] = set()
    subagents_seen: set[str] = set()

    def same_owner(kind: str, event: dict[str, Any], owner: str | None) -> None:
        tag = event.get("subagentRunId")
        _require(tag is None or tag == owner, f"{kind} tagged {tag!r}, its opener {owner!r}")

    for position, event in enumerate(events):
        check_event_shape(event)
        kind = event["type"]
        where = f"event {position} ({kind})"
        if kind in ("RUN_FINISHED", "RUN_ERROR"):
            _require(position == len(events) - 1, f"{where}: something follows the run's end")
        if kind == "RUN_STARTED":
            _require(position == 0, f"{where}: a second RUN_STARTED")
        if kind in ("RUN_STARTED", "RUN_FINISHED"):
            if thread_id is not None:
                _require(event["threadId"] == thread_id, f"{where}: threadId not echoed")
            if run_id is not None:
                _require(event["runId"] == run_id, f"{where}: runId not echoed")
        tag = event.get("subagentRunId")
        if kind == "TEXT_MESSAGE_START":
            message_id = event["messageId"]
            _require(message_id not in text, f"{where}: {message_id} is already open")
            _require(message_id not in minted, f"{where}: message id {message_id} reused")
            minted.add(message_id)
            text[message_id] = owners[message_id] = tag
        elif kind in ("TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_END"):
            message_id = event["messageId"]
            _require(message_id in text, f"{where}: {message_id} is not open")
            same_owner(kind, event, text[message_id])
            if kind == "TEXT_MESSAGE_END":
                del text[message_id]
        elif kind in ("REASONING_START", "REASONING_MESSAGE_START"):
            message_id = event["messageId"]
            table = reasoning_spans if kind == "REASONING_START" else reasoning_messages
            _require(message_id not in table, f"{where}: {message_id} is already open")
            if kind == "REASONING_MESSAGE_START":
                _require(message_id not in minted, f"{where}: message id {message_id} reused")
                minted.add(message_id)
            table[message_id] = tag
        elif kind in ("REASONING_MESSAGE_CONTENT", "REASONING_MESSAGE_END", "REASONING_END"):
            message_id = event["messageId"]
            table = reasoning_spans if kind == "REASONING_END" else reasoning_messages
            _require(message_id in table, f"{where}: {message_id} is not open")
            same_owner(kind, event, table[message_id])
            if kind != "REASONING_MESSAGE_CONTENT":
                del table[message_id]
        elif kind == "TOOL_CALL_START":
            call_id = event["toolCallId"]
            _require(call_id not in tool_calls, f"{where}: {call_id} is already open")
            _require(call_id not in ended_tool_calls, f"{where}: {call_id} started twice")
            parent = event.get("parentMessageId")
            if parent is not None:
                _require(parent in owners, f"{where}: parent message {parent} was never opened")
                same_owner(kind, event, owners[parent])
                owner = owners[parent]
            else:
                owner = tag
            tool_calls[call_id] = owner
        elif kind in ("TOOL_CALL_ARGS", "TOOL_CALL_END"):
            call_id = event["toolCallId"]
            _require(call_id in tool_calls, f"{where}: tool call {call_id} is not open")
            same_owner(kind, event, tool_calls[call_id])
            if kind == "TOOL_CALL_END":
                del tool_calls[call_id]
                ended_tool_calls.add(call_id)
        elif kind == "TOOL_CALL_RESULT":
            call_id = event["toolCallId"]
            _require(call_id in ended_tool_calls, f"{where}: a result before TOOL_CALL_END")
            message_id = event["messageId"]
            _require(message_id not in minted, f"{where}: message id {message_id} reused")
            minted.add(message_id)
        elif kind == "SUBAGENT_STARTED":
            sub = event["subagentRunId"]
            _require(sub not in subagents_seen, f"{where}: subagent {sub} started twice")
            parent_sub = event.get("parentSubagentRunId")
            _require(parent_sub is None or parent_sub in subagents_seen, f"{where}: parent")
            parent_call = event.get("parentToolCallId")
            _require(
                parent_call is None or parent_call in ended_tool_calls,
                f"{where}: its tool call {parent_call} was not announced",
            )
            subagents.add(sub)
            subagents_seen.add(sub)
        elif kind in ("SUBAGENT_FINISHED", "SUBAGENT_ERROR"):
            sub = event["subagentRunId"]
            _require(sub in subagents, f"{where}: subagent {sub} is not active")
            subagents.discard(sub)
        if tag is not None and not kind.startswith("SUBAGENT_"):
            _require(tag in subagents_seen, f"{where}: tagged with unknown subagent {tag}")
    open_things = {
        "text messages": text,
        "reasoning spans": reasoning_spans,
        "reasoning messages": reasoning_messages,
        "tool calls": tool_calls,
        "subagents": subagents,
    }
    for what, still in open_things.items():
        _require(not still, f"{what} still open at the end: {sorted(still)}")
