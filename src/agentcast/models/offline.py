"""The embedded offline model: a real LangChain chat model that needs no key and no network.

It is a genuine `BaseChatModel` (so `bind_tools`, `astream`, `ainvoke`, `with_config` and
LangChain callbacks all work as with any provider), deterministic, and streams with configurable
pacing. It can also shape its chunks like other providers do, so the whole stack can be
exercised offline: `reasoning=True` streams thinking first (DeepSeek-style
`additional_kwargs["reasoning_content"]`, or Anthropic `thinking` blocks), and
`content_blocks=True` sends Anthropic/Bedrock-style lists of typed blocks instead of strings.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import msgspec
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from agentcast.models._planner import Plan, plan_turn

__all__ = ["DEFAULT_TOKEN_DELAY", "OfflineChatModel"]

DEFAULT_TOKEN_DELAY = 0.02
"""Seconds between tokens by default: about 50 tokens/s, like a hosted chat model."""

_TOKEN = re.compile(r"\s*\S+|\s+")


def _default_delay() -> float:
    raw = os.environ.get("AGENTCAST_OFFLINE_DELAY")
    if raw is None:
        return DEFAULT_TOKEN_DELAY
    try:
        return max(0.0, float(raw))
    except ValueError:
        return DEFAULT_TOKEN_DELAY


class OfflineChatModel(BaseChatModel):
    """agentcast's deterministic demo model (labelled as such wherever it is shown).

    Attributes:
        token_delay: seconds between streamed chunks (env `AGENTCAST_OFFLINE_DELAY`, default
            0.02; 0 in tests and benchmarks).
        reasoning: stream reasoning before answering.
        content_blocks: emit Anthropic/Bedrock-style content-block lists instead of strings.
        args_chunk_size: characters of tool-argument JSON per chunk.
    """

    model_name: str = "offline-demo"
    token_delay: float = Field(default_factory=_default_delay)
    reasoning: bool = False
    content_blocks: bool = False
    args_chunk_size: int = 4

    @property
    def _llm_type(self) -> str:
        return "agentcast-offline"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "reasoning": self.reasoning}

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools the way provider models do: as OpenAI tool schemas in `tools`."""
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    # -- generation -----------------------------------------------------------------------

    def _plan(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> Plan:
        names = {t["function"]["name"] for t in kwargs.get("tools") or () if "function" in t}
        return plan_turn(messages, names)

    def _chunks(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> list[AIMessageChunk]:
        plan = self._plan(messages, kwargs)
        base = len(messages)
        chunks: list[AIMessageChunk] = []
        blocks = self.content_blocks
        index = 0
        if self.reasoning and plan.reasoning:
            for piece in _TOKEN.findall(plan.reasoning):
                if blocks:
                    chunks.append(
                        AIMessageChunk(
                            content=[{"type": "thinking", "thinking": piece, "index": 0}]
                        )
                    )
                else:
                    chunks.append(
                        AIMessageChunk(content="", additional_kwargs={"reasoning_content": piece})
                    )
            if blocks:
                signature = f"offline-signature-{base}"
                chunks.append(
                    AIMessageChunk(
                        content=[{"type": "thinking", "signature": signature, "index": 0}]
                    )
                )
                index = 1
        for piece in _TOKEN.findall(plan.text):
            chunks.append(
                AIMessageChunk(content=[{"type": "text", "text": piece, "index": index}])
                if blocks
                else AIMessageChunk(content=piece)
            )
        if plan.text and blocks:
            index += 1
        for position, (name, args) in enumerate(plan.tool_calls):
            call_id = f"call_{base}_{position}"
            slot = index + position
            raw = msgspec.json.encode(args).decode()
            head = tool_call_chunk(name=name, args="", id=call_id, index=slot)
            start_content: Any = [
                {"type": "tool_use", "id": call_id, "name": name, "input": {}, "index": slot}
            ]
            chunks.append(
                AIMessageChunk(content=start_content if blocks else "", tool_call_chunks=[head])
            )
            size = max(1, self.args_chunk_size)
            for at in range(0, len(raw), size):
                piece = raw[at : at + size]
                part = tool_call_chunk(args=piece, index=slot)
                content: Any = [{"type": "input_json_delta", "partial_json": piece, "index": slot}]
                chunks.append(
                    AIMessageChunk(content=content if blocks else "", tool_call_chunks=[part])
                )
        output_tokens = len(chunks)
        input_tokens = sum(len(str(m.content).split()) for m in messages)
        finish = (
            ("tool_use" if plan.tool_calls else "end_turn")
            if blocks
            else ("tool_calls" if plan.tool_calls else "stop")
        )
        chunks.append(
            AIMessageChunk(
                content=[] if blocks else "",
                response_metadata={
                    "stop_reason" if blocks else "finish_reason": finish,
                    "model_name": self.model_name,
                },
                usage_metadata=UsageMetadata(
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                    total_tokens=input_tokens + output_tokens,
                ),
            )
        )
        return chunks

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        merged: AIMessageChunk | None = None
        for chunk in self._chunks(messages, kwargs):
            merged = chunk if merged is None else merged + chunk
        assert merged is not None
        message = AIMessage(
            content=merged.content,
            additional_kwargs=merged.additional_kwargs,
            tool_calls=merged.tool_calls,
            response_metadata=merged.response_metadata,
            usage_metadata=merged.usage_metadata,
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        delay = self.token_delay
        for i, chunk in enumerate(self._chunks(messages, kwargs)):
            if delay and i:
                time.sleep(delay)
            yield ChatGenerationChunk(message=chunk)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        delay = self.token_delay
        for i, chunk in enumerate(self._chunks(messages, kwargs)):
            if delay and i:
                await asyncio.sleep(delay)
            yield ChatGenerationChunk(message=chunk)
