"""OpenAI Responses API streaming wire format: SSE `event:`/`data:` frames of the typed stream
events (`response.created`, `response.output_item.added` / `.done`,
`response.output_text.delta`, `response.function_call_arguments.delta`,
`response.web_search_call.*`, `response.completed`), as the `openai` SDK's
`ResponseStreamEvent` types describe them."""

from __future__ import annotations

import json
from typing import Any

from tests.providers.servers import Reply

MODEL = "gpt-4.1-mini"
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8"}


class ResponseStream:
    """Builds the SSE body of one streamed response; `output` collects the finished items."""

    def __init__(self, id: str = "resp_test") -> None:
        self.id = id
        self.parts: list[bytes] = []
        self.output: list[dict[str, Any]] = []
        self.sequence = 0

    def event(self, type_: str, **data: Any) -> ResponseStream:
        body = {"type": type_, "sequence_number": self.sequence, **data}
        self.sequence += 1
        self.parts.append(f"event: {type_}\ndata: {json.dumps(body)}\n\n".encode())
        return self

    def response(self, status: str, usage: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "response",
            "created_at": 1_700_000_000,
            "status": status,
            "model": MODEL,
            "output": list(self.output) if status == "completed" else [],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "error": None,
            "incomplete_details": None,
            "instructions": None,
            "metadata": {},
            "temperature": 1.0,
            "top_p": 1.0,
            "text": {"format": {"type": "text"}},
            "usage": usage,
        }

    def start(self) -> ResponseStream:
        self.event("response.created", response=self.response("in_progress"))
        return self.event("response.in_progress", response=self.response("in_progress"))

    def web_search(self, id: str, query: str) -> ResponseStream:
        index = len(self.output)
        self.event(
            "response.output_item.added",
            output_index=index,
            item={"type": "web_search_call", "id": id, "status": "in_progress"},
        )
        for stage in ("in_progress", "searching", "completed"):
            self.event(f"response.web_search_call.{stage}", output_index=index, item_id=id)
        item = {
            "type": "web_search_call",
            "id": id,
            "status": "completed",
            "action": {"type": "search", "query": query},
        }
        self.output.append(item)
        return self.event("response.output_item.done", output_index=index, item=item)

    def message(self, id: str, *tokens: str) -> ResponseStream:
        index = len(self.output)
        self.event(
            "response.output_item.added",
            output_index=index,
            item={
                "type": "message",
                "id": id,
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            },
        )
        part = {"type": "output_text", "text": "", "annotations": []}
        self.event(
            "response.content_part.added",
            output_index=index,
            item_id=id,
            content_index=0,
            part=part,
        )
        for token in tokens:
            self.event(
                "response.output_text.delta",
                output_index=index,
                item_id=id,
                content_index=0,
                delta=token,
                logprobs=[],
            )
        text = "".join(tokens)
        self.event(
            "response.output_text.done",
            output_index=index,
            item_id=id,
            content_index=0,
            text=text,
            logprobs=[],
        )
        done_part = {"type": "output_text", "text": text, "annotations": []}
        self.event(
            "response.content_part.done",
            output_index=index,
            item_id=id,
            content_index=0,
            part=done_part,
        )
        item = {
            "type": "message",
            "id": id,
            "status": "completed",
            "role": "assistant",
            "content": [done_part],
        }
        self.output.append(item)
        return self.event("response.output_item.done", output_index=index, item=item)

    def function_call(
        self, id: str, call_id: str, name: str, fragments: list[str]
    ) -> ResponseStream:
        index = len(self.output)
        item = {
            "type": "function_call",
            "id": id,
            "call_id": call_id,
            "name": name,
            "arguments": "",
            "status": "in_progress",
        }
        self.event("response.output_item.added", output_index=index, item=item)
        for fragment in fragments:
            self.event(
                "response.function_call_arguments.delta",
                output_index=index,
                item_id=id,
                delta=fragment,
            )
        arguments = "".join(fragments)
        self.event(
            "response.function_call_arguments.done",
            output_index=index,
            item_id=id,
            arguments=arguments,
        )
        done = {**item, "arguments": arguments, "status": "completed"}
        self.output.append(done)
        return self.event("response.output_item.done", output_index=index, item=done)

    def completed(self, input_tokens: int, output_tokens: int) -> ResponseStream:
        usage = {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        }
        return self.event("response.completed", response=self.response("completed", usage))

    def reply(self) -> Reply:
        return Reply(headers=SSE_HEADERS, parts=list(self.parts))
