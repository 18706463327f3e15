"""OpenAI chat-completions wire format: SSE `chat.completion.chunk` frames, `[DONE]`,
the usage-only final chunk of `stream_options.include_usage`, whole `chat.completion` bodies
and error bodies, as the `openai` SDK's types describe them."""

from __future__ import annotations

import json
from typing import Any

from tests.providers.servers import Reply

MODEL = "gpt-4o-mini"
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


class ChunkStream:
    """Builds the SSE body of one streamed chat completion."""

    def __init__(self, *, usage_field: bool = True, id: str = "chatcmpl-test") -> None:
        self.id = id
        self.usage_field = usage_field  # with include_usage every chunk carries "usage": null
        self.parts: list[bytes] = []

    def chunk(self, delta: dict[str, Any] | None, finish_reason: str | None = None) -> ChunkStream:
        body: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": MODEL,
            "system_fingerprint": "fp_test",
            "choices": [
                {"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if self.usage_field:
            body["usage"] = None
        return self.frame(body)

    def frame(self, body: dict[str, Any]) -> ChunkStream:
        self.parts.append(b"data: " + json.dumps(body).encode() + b"\n\n")
        return self

    def role(self) -> ChunkStream:
        return self.chunk({"role": "assistant", "content": "", "refusal": None})

    def text(self, *tokens: str) -> ChunkStream:
        for token in tokens:
            self.chunk({"content": token})
        return self

    def reasoning(self, *tokens: str) -> ChunkStream:
        """DeepSeek / vLLM / OpenRouter style `delta.reasoning_content` (not an OpenAI field)."""
        for token in tokens:
            self.chunk({"role": "assistant", "content": None, "reasoning_content": token})
        return self

    def tool_start(self, index: int, id: str, name: str) -> ChunkStream:
        return self.chunk(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": id,
                        "type": "function",
                        "function": {"name": name, "arguments": ""},
                    }
                ]
            }
        )

    def tool_args(self, index: int, fragment: str) -> ChunkStream:
        return self.chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})

    def finish(self, reason: str) -> ChunkStream:
        return self.chunk({}, finish_reason=reason)

    def usage(self, prompt: int, completion: int) -> ChunkStream:
        """The usage-only final chunk: no choices."""
        return self.frame(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": MODEL,
                "system_fingerprint": "fp_test",
                "choices": [],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                    "completion_tokens_details": {
                        "reasoning_tokens": 0,
                        "audio_tokens": 0,
                        "accepted_prediction_tokens": 0,
                        "rejected_prediction_tokens": 0,
                    },
                },
            }
        )

    def done(self) -> ChunkStream:
        self.parts.append(b"data: [DONE]\n\n")
        return self

    def reply(self, cut_after: int | None = None) -> Reply:
        return Reply(headers=SSE_HEADERS, parts=list(self.parts), cut_after=cut_after)


def completion(content: str | None, tool_calls: list[dict[str, Any]] | None = None) -> Reply:
    """A whole, non-streamed `chat.completion` body."""
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return Reply.json(
        {
            "id": "chatcmpl-whole",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": MODEL,
            "system_fingerprint": "fp_test",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if tool_calls else "stop",
                }
            ],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        }
    )


def error(status: int, message: str, type_: str, code: str | None = None) -> Reply:
    """An OpenAI error body."""
    return Reply.json(
        {"error": {"message": message, "type": type_, "param": None, "code": code}},
        status=status,
        headers={"x-request-id": f"req_{status}"},
    )
