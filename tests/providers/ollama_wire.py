"""Ollama `/api/chat` wire format: NDJSON lines with `message.content`, `message.thinking`,
`message.tool_calls` (arguments as a JSON object, every call at `function.index` 0 in the
streams this reproduces), and a final `done: true` line with `done_reason`, `prompt_eval_count`
and `eval_count`; errors are `{"error": "..."}`."""

from __future__ import annotations

import json
from typing import Any

from tests.providers.servers import Reply

MODEL = "llama3.1"
NDJSON_HEADERS = {"Content-Type": "application/x-ndjson"}


class LineStream:
    """Builds the NDJSON body of one streamed `/api/chat` response."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def line(self, message: dict[str, Any], **fields: Any) -> LineStream:
        body = {
            "model": MODEL,
            "created_at": "2025-01-01T00:00:00.000000Z",
            "message": {"role": "assistant", "content": "", **message},
            "done": False,
            **fields,
        }
        self.parts.append(json.dumps(body).encode() + b"\n")
        return self

    def text(self, *tokens: str) -> LineStream:
        for token in tokens:
            self.line({"content": token})
        return self

    def thinking(self, *tokens: str) -> LineStream:
        for token in tokens:
            self.line({"thinking": token})
        return self

    def tool_calls(self, *calls: tuple[str, dict[str, Any]]) -> LineStream:
        """One line carrying whole calls; Ollama numbers each of them index 0."""
        return self.line(
            {
                "tool_calls": [
                    {"function": {"index": 0, "name": name, "arguments": args}}
                    for name, args in calls
                ]
            }
        )

    def done(self, reason: str = "stop", usage: tuple[int, int] | None = (26, 9)) -> LineStream:
        fields: dict[str, Any] = {
            "done": True,
            "done_reason": reason,
            "total_duration": 4_883_583_458,
            "load_duration": 1_334_875,
        }
        if usage is not None:
            fields.update(
                prompt_eval_count=usage[0],
                prompt_eval_duration=342_546_000,
                eval_count=usage[1],
                eval_duration=4_535_599_000,
            )
        return self.line({}, **fields)

    def error(self, message: str) -> LineStream:
        self.parts.append(json.dumps({"error": message}).encode() + b"\n")
        return self

    def reply(self, cut_after: int | None = None) -> Reply:
        return Reply(headers=NDJSON_HEADERS, parts=list(self.parts), cut_after=cut_after)


def error(status: int, message: str) -> Reply:
    """An Ollama error response."""
    return Reply.json({"error": message}, status=status)
