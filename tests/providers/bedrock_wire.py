"""Bedrock ConverseStream wire format: `application/vnd.amazon.eventstream` binary messages.

Each message is a prelude (total length u32, headers length u32, CRC32 of those 8 bytes), the
headers (name length u8, name, type 7 = string, value length u16, value), the JSON payload and
a CRC32 of everything before it, big-endian, exactly as `botocore/eventstream.py` decodes it.
Events: messageStart, contentBlockStart (toolUse), contentBlockDelta (text, toolUse input,
reasoningContent text / signature), contentBlockStop, messageStop (stopReason), metadata
(usage, metrics); exceptions are `:message-type: exception` messages. HTTP errors carry
`x-amzn-ErrorType` and a JSON `message`, as Bedrock's rest-json protocol does."""

from __future__ import annotations

import json
import struct
from binascii import crc32
from typing import Any

from tests.providers.servers import Reply

MODEL = "anthropic.claude-3-7-sonnet-20250219-v1:0"
STREAM_HEADERS = {
    "Content-Type": "application/vnd.amazon.eventstream",
    "x-amzn-RequestId": "5f2c1d3e-0000-4000-8000-000000000000",
}


def _string_header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (
        struct.pack(">B", len(raw_name)) + raw_name + b"\x07" + struct.pack(">H", len(raw_value))
    ) + raw_value


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message, with both CRCs."""
    raw_headers = b"".join(_string_header(k, v) for k, v in headers.items())
    prelude = struct.pack(">II", 12 + len(raw_headers) + len(payload) + 4, len(raw_headers))
    message = prelude + struct.pack(">I", crc32(prelude) & 0xFFFFFFFF) + raw_headers + payload
    return message + struct.pack(">I", crc32(message) & 0xFFFFFFFF)


class EventStream:
    """Builds the binary body of one ConverseStream response."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def event(self, event_type: str, payload: dict[str, Any]) -> EventStream:
        body = {**payload, "p": "abcdefghijkl"}  # Bedrock pads events with a "p" field
        self.parts.append(
            encode_message(
                {
                    ":event-type": event_type,
                    ":content-type": "application/json",
                    ":message-type": "event",
                },
                json.dumps(body).encode(),
            )
        )
        return self

    def start(self) -> EventStream:
        return self.event("messageStart", {"role": "assistant"})

    def delta(self, index: int, delta: dict[str, Any]) -> EventStream:
        return self.event("contentBlockDelta", {"contentBlockIndex": index, "delta": delta})

    def block_stop(self, index: int) -> EventStream:
        return self.event("contentBlockStop", {"contentBlockIndex": index})

    def text_block(self, index: int, *tokens: str, stop: bool = True) -> EventStream:
        for token in tokens:  # text blocks have no contentBlockStart
            self.delta(index, {"text": token})
        return self.block_stop(index) if stop else self

    def reasoning_block(self, index: int, text: list[str], signature: str) -> EventStream:
        for token in text:
            self.delta(index, {"reasoningContent": {"text": token}})
        self.delta(index, {"reasoningContent": {"signature": signature}})
        return self.block_stop(index)

    def tool_start(self, index: int, id: str, name: str) -> EventStream:
        return self.event(
            "contentBlockStart",
            {"contentBlockIndex": index, "start": {"toolUse": {"toolUseId": id, "name": name}}},
        )

    def tool_args(self, index: int, fragment: str) -> EventStream:
        return self.delta(index, {"toolUse": {"input": fragment}})

    def tool_block(self, index: int, id: str, name: str, fragments: list[str]) -> EventStream:
        self.tool_start(index, id, name)
        for fragment in fragments:
            self.tool_args(index, fragment)
        return self.block_stop(index)

    def stop(self, reason: str) -> EventStream:
        return self.event("messageStop", {"stopReason": reason})

    def metadata(self, input_tokens: int, output_tokens: int) -> EventStream:
        return self.event(
            "metadata",
            {
                "usage": {
                    "inputTokens": input_tokens,
                    "outputTokens": output_tokens,
                    "totalTokens": input_tokens + output_tokens,
                },
                "metrics": {"latencyMs": 321},
            },
        )

    def exception(self, kind: str, message: str) -> EventStream:
        """An exception message inside the 200 stream (e.g. `throttlingException`)."""
        self.parts.append(
            encode_message(
                {
                    ":exception-type": kind,
                    ":content-type": "application/json",
                    ":message-type": "exception",
                },
                json.dumps({"message": message}).encode(),
            )
        )
        return self

    def reply(self, cut_after: int | None = None) -> Reply:
        return Reply(headers=STREAM_HEADERS, parts=list(self.parts), cut_after=cut_after)


def error(status: int, kind: str, message: str) -> Reply:
    """A Bedrock HTTP error (rest-json): the code in `x-amzn-ErrorType`, a JSON message."""
    return Reply.json(
        {"message": message},
        status=status,
        headers={
            "x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/",
            "x-amzn-RequestId": "5f2c1d3e-0000-4000-8000-00000000e000",
        },
    )


def converse(content: list[dict[str, Any]], stop_reason: str = "end_turn") -> Reply:
    """A whole, non-streamed Converse response."""
    return Reply.json(
        {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop_reason,
            "usage": {"inputTokens": 12, "outputTokens": 8, "totalTokens": 20},
            "metrics": {"latencyMs": 123},
        },
        headers={"x-amzn-RequestId": "5f2c1d3e-0000-4000-8000-0000000000aa"},
    )
