"""The `useChat` request's `messages: UIMessage[]` as agentcast's prompt and history (pure).

The client holds the conversation and sends all of it with each request; the run answers
from it (`Runner.start(history=...)`). An assistant message is split at its `step-start`
parts, one model turn per step: the step's text, its tool calls (`tool-<name>` and
`dynamic-tool` parts) and their results. A tool part without a result (the user stopped the
run before it ran) gets a cancelled result, so the history is valid input for the next model
call. Parts the model has no use for (reasoning, data parts such as agentcast's own nested
LLM parts, files, sources) are accepted and left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from agentcast.errors import InvalidInput
from agentcast.events import Message, ToolCallRecord

__all__ = ["ChatTurn", "chat_turn"]

TRIGGERS = ("submit-message", "regenerate-message")
_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ChatTurn:
    """What one `useChat` request asks for.

    Attributes:
        prompt: the text of the last user message.
        history: the conversation before it, in agentcast's message shape.
    """

    prompt: str
    history: list[Message]


def chat_turn(messages: Sequence[Any], trigger: str = "submit-message") -> ChatTurn:
    """Return the prompt and history of a `useChat` request's `messages`.

    `regenerate-message` answers the last user message again: a trailing assistant message
    (the answer being regenerated) is dropped first. `AbstractChat.regenerate()` drops it
    itself; a client that sends it anyway gets the same answer.

    Raises:
        InvalidInput: a message or part is malformed, the trigger is unknown, or the last
            message is not a user message with text.
    """
    if trigger not in TRIGGERS:
        raise InvalidInput(f"trigger must be one of {', '.join(TRIGGERS)}, got {trigger!r}")
    if not isinstance(messages, Sequence) or isinstance(messages, str) or not messages:
        raise InvalidInput("messages must be a non-empty list of UI messages")
    checked = [_check_message(m, i) for i, m in enumerate(messages)]
    if trigger == "regenerate-message":
        while checked and checked[-1]["role"] == "assistant":
            checked.pop()
    if not checked or checked[-1]["role"] != "user":
        last = checked[-1]["role"] if checked else "none"
        raise InvalidInput(f"the last message must be the user's (role 'user'), got {last!r}")
    prompt = _text_of(checked[-1])
    if not prompt.strip():
        raise InvalidInput("the last user message has no text")
    history: list[Message] = []
    for message in checked[:-1]:
        history.extend(_convert(message))
    return ChatTurn(prompt=prompt, history=history)


def _check_message(message: Any, index: int) -> Mapping[str, Any]:
    where = f"messages[{index}]"
    if not isinstance(message, Mapping):
        raise InvalidInput(f"{where} must be an object, got {type(message).__name__}")
    role = message.get("role")
    if role not in _ROLES:
        raise InvalidInput(f"{where}.role must be one of {', '.join(_ROLES)}, got {role!r}")
    parts = message.get("parts")
    if not isinstance(parts, list):
        raise InvalidInput(f"{where}.parts must be a list")
    for number, part in enumerate(parts):
        if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
            raise InvalidInput(f"{where}.parts[{number}] must be an object with a string 'type'")
        if part["type"] in ("text", "reasoning") and not isinstance(part.get("text"), str):
            raise InvalidInput(f"{where}.parts[{number}] ({part['type']}) needs a string 'text'")
        if _is_tool(part) and not isinstance(part.get("toolCallId"), str):
            raise InvalidInput(f"{where}.parts[{number}] ({part['type']}) needs a 'toolCallId'")
    return message


def _text_of(message: Mapping[str, Any]) -> str:
    return "".join(p["text"] for p in message["parts"] if p["type"] == "text")


def _is_tool(part: Mapping[str, Any]) -> bool:
    kind: str = part["type"]
    return kind == "dynamic-tool" or kind.startswith("tool-")


def _tool_name(part: Mapping[str, Any]) -> str:
    if part["type"] == "dynamic-tool":
        name = part.get("toolName")
        return name if isinstance(name, str) else "tool"
    return str(part["type"])[len("tool-") :]


def _convert(message: Mapping[str, Any]) -> list[Message]:
    role = message["role"]
    if role != "assistant":
        return [{"role": role, "content": _text_of(message)}]
    converted: list[Message] = []
    step: list[Mapping[str, Any]] = []
    for part in [*message["parts"], {"type": "step-start"}]:
        if part["type"] == "step-start":
            converted.extend(_step(step))
            step = []
        else:
            step.append(part)
    return converted


def _step(parts: list[Mapping[str, Any]]) -> list[Message]:
    """One model turn: its text and tool calls, then one result per tool call."""
    text = "".join(p["text"] for p in parts if p["type"] == "text")
    tools = [p for p in parts if _is_tool(p)]
    if not tools:
        return [{"role": "assistant", "content": text}] if text else []
    calls: list[ToolCallRecord] = []
    results: list[Message] = []
    for part in tools:
        name, args = _tool_name(part), part.get("input")
        calls.append({"id": part["toolCallId"], "name": name, "args": _args(args)})
        result: Message = {
            "role": "tool",
            "content": "the tool did not finish (cancelled)",
            "tool_call_id": part["toolCallId"],
            "name": name,
        }
        state = part.get("state")
        if state == "output-available":
            result["content"] = _as_text(part.get("output"))
        elif state == "output-error":
            result["content"] = f"Error: {part.get('errorText') or 'the tool failed'}"
            result["status"] = "error"
        else:  # never ran: the run was stopped, or the output was denied
            result["status"] = "cancelled"
        results.append(result)
    return [{"role": "assistant", "content": text, "tool_calls": calls}, *results]


def _args(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _as_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    return msgspec.json.encode(output, enc_hook=repr).decode()
