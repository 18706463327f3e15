"""Anthropic Messages streaming wire format: named SSE events `message_start`,
`content_block_start` / `content_block_delta` (`text_delta`, `input_json_delta`,
`thinking_delta`, `signature_delta`) / `content_block_stop`, `message_delta` with usage,
`message_stop`, `ping` and `error`, as the `anthropic` SDK's raw stream event types describe."""

from __future__ import annotations

import json
from typing import Any

from tests.providers.servers import Reply

MODEL = "claude-sonnet-4-6"
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "request-id": "req_test"}


class EventStream:
    """Builds the SSE body of one streamed message."""

    def __init__(self, *, input_tokens: int = 25, id: str = "msg_test") -> None:
        self.parts: list[bytes] = []
        self.input_tokens = input_tokens
        self.id = id

    def event(self, name: str, data: dict[str, Any]) -> EventStream:
        self.parts.append(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        return self

    def start(self) -> EventStream:
        return self.event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": self.id,
                    "type": "message",
                    "role": "assistant",
                    "model": MODEL,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": self.input_tokens,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                        "output_tokens": 1,
                    },
                },
            },
        )

    def ping(self) -> EventStream:
        return self.event("ping", {"type": "ping"})

    def block_start(self, index: int, block: dict[str, Any]) -> EventStream:
        return self.event(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": block},
        )

    def delta(self, index: int, delta: dict[str, Any]) -> EventStream:
        return self.event(
            "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        )

    def block_stop(self, index: int) -> EventStream:
        return self.event("content_block_stop", {"type": "content_block_stop", "index": index})

    def text_block(self, index: int, *tokens: str, stop: bool = True) -> EventStream:
        self.block_start(index, {"type": "text", "text": ""})
        for token in tokens:
            self.delta(index, {"type": "text_delta", "text": token})
        return self.block_stop(index) if stop else self

    def thinking_block(self, index: int, thinking: list[str], signature: list[str]) -> EventStream:
        self.block_start(index, {"type": "thinking", "thinking": "", "signature": ""})
        for token in thinking:
            self.delta(index, {"type": "thinking_delta", "thinking": token})
        for piece in signature:
            self.delta(index, {"type": "signature_delta", "signature": piece})
        return self.block_stop(index)

    def tool_start(self, index: int, id: str, name: str) -> EventStream:
        return self.block_start(index, {"type": "tool_use", "id": id, "name": name, "input": {}})

    def tool_args(self, index: int, fragment: str) -> EventStream:
        return self.delta(index, {"type": "input_json_delta", "partial_json": fragment})

    def tool_block(self, index: int, id: str, name: str, fragments: list[str]) -> EventStream:
        self.tool_start(index, id, name)
        for fragment in fragments:
            self.tool_args(index, fragment)
        return self.block_stop(index)

    def server_tool_block(
        self, index: int, id: str, name: str, fragments: list[str]
    ) -> EventStream:
        """A tool the API runs itself (`web_search`, `code_execution`): its input streams as
        `input_json_delta` like a client tool's."""
        self.block_start(index, {"type": "server_tool_use", "id": id, "name": name, "input": {}})
        for fragment in fragments:
            self.tool_args(index, fragment)
        return self.block_stop(index)

    def server_result_block(
        self, index: int, type_: str, tool_use_id: str, content: Any
    ) -> EventStream:
        """The API's result of its own tool (`web_search_tool_result`...), in one block."""
        block = {"type": type_, "tool_use_id": tool_use_id, "content": content}
        return self.block_start(index, block).block_stop(index)

    def finish(
        self,
        stop_reason: str,
        output_tokens: int,
        *,
        delta_input_tokens: bool = True,
        server_tool_use: dict[str, int] | None = None,
    ) -> EventStream:
        """`message_delta` + `message_stop`. With `delta_input_tokens=False` the delta's usage
        carries only `output_tokens`, as in the API reference's streaming example: the input
        count is then only in `message_start`."""
        usage: dict[str, Any] = {"output_tokens": output_tokens}
        if delta_input_tokens:
            usage = {
                "input_tokens": self.input_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                **usage,
            }
        if server_tool_use is not None:
            usage["server_tool_use"] = server_tool_use
        self.event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": usage,
            },
        )
        return self.event("message_stop", {"type": "message_stop"})

    def error(self, type_: str, message: str) -> EventStream:
        """An error event inside a 200 stream (e.g. `overloaded_error`)."""
        return self.event("error", {"type": "error", "error": {"type": type_, "message": message}})

    def reply(self, cut_after: int | None = None) -> Reply:
        return Reply(headers=SSE_HEADERS, parts=list(self.parts), cut_after=cut_after)


def message(content: list[dict[str, Any]], stop_reason: str = "end_turn") -> Reply:
    """A whole, non-streamed Messages response."""
    return Reply.json(
        {
            "id": "msg_whole",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 8},
        },
        headers={"request-id": "req_whole"},
    )


def error(status: int, type_: str, message: str) -> Reply:
    """An Anthropic error body."""
    return Reply.json(
        {"type": "error", "error": {"type": type_, "message": message}, "request_id": "req_e"},
        status=status,
        headers={"request-id": "req_e"},
    )
