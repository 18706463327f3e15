"""What a UI needs to redraw a finished turn as it looked live, saved with the turn's history.

Live, a page draws a turn from its events: the footer (outcome, ttft, tok/s, tool calls) from
`agent_end`, and the text of an LLM called inside a tool, with the tool's `custom` events, inside
that tool's card. The history keeps only what the next model call needs, so the run records these
few things on the side and saves them as the messages' optional `metadata`, which is never sent to
a model. Only tokens of LLMs called inside tools pass through here, never the agent's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentcast.events import Custom, Error, LLMStart, LLMToken, Message

__all__ = ["TurnRecorder"]


class TurnRecorder:
    """Collects a turn's nested-LLM text and tool `custom` events (per tool call) and errors."""

    __slots__ = ("_blocks", "_errors", "_owner")

    def __init__(self) -> None:
        self._errors: list[dict[str, Any]] = []
        self._owner: dict[str, str] = {}  # nested LLM call_id -> the tool_call_id it runs in
        self._blocks: dict[str, list[dict[str, Any]]] = {}  # tool_call_id -> blocks, in order

    def llm_start(self, event: LLMStart) -> None:
        """Note which tool an LLM called inside a tool belongs to."""
        if event.depth and event.parent_id is not None:
            self._owner[event.call_id] = event.parent_id

    def token(self, event: LLMToken) -> None:
        """Add a nested LLM's token to its tool's current text block."""
        tool = self._owner.get(event.call_id)
        if tool is None:
            return
        blocks = self._blocks.setdefault(tool, [])
        last = blocks[-1] if blocks else None
        if last is not None and last.get("call_id") == event.call_id and last["kind"] == event.kind:
            last["parts"].append(event.token)
        else:
            block = {"type": "text", "call_id": event.call_id, "kind": event.kind}
            blocks.append(block | {"parts": [event.token]})

    def custom(self, event: Custom) -> None:
        """Keep a `custom` event a tool emitted."""
        if event.tool_call_id is not None:
            blocks = self._blocks.setdefault(event.tool_call_id, [])
            blocks.append({"type": "custom", "name": event.name, "data": event.data})

    def error(self, event: Error) -> None:
        """Keep an `error` event, in its wire shape, for the page's error box."""
        self._errors.append(
            {
                "error": event.error,
                "type": event.error_type,
                "code": event.code,
                "retryable": event.retryable,
                "partial": event.partial,
            }
        )

    def annotate(
        self, messages: Sequence[Message], *, run_id: str, outcome: str, metrics: dict[str, Any]
    ) -> None:
        """Attach the display metadata: nested blocks to tool results, the footer to the end."""
        for message in messages:
            if message["role"] != "tool":
                continue
            blocks = self._blocks.get(message.get("tool_call_id", ""))
            if blocks:
                message.setdefault("metadata", {})["nested"] = [_saved(b) for b in blocks]
        if messages:
            last = messages[-1].setdefault("metadata", {})
            last["run_id"], last["outcome"], last["metrics"] = run_id, outcome, metrics
            if self._errors:
                last["errors"] = list(self._errors)


def _saved(block: dict[str, Any]) -> dict[str, Any]:
    if block["type"] == "text":
        return {"type": "text", "kind": block["kind"], "text": "".join(block["parts"])}
    return block
