"""Nothing per token stays alive for the garbage collector while a native run streams.

LangChain's `BaseChatModel.astream` keeps every chunk of a call until it ends; agentcast drives
the model's own stream when no callback handler or tracer would see the call
(`agentcast.sources._direct`), and its own per-token state (events, the log, text pieces) is
not tracked by the collector. These tests count tracked objects; they time nothing.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult, LLMResult

from agentcast import Agent

pytestmark = pytest.mark.anyio

TOKENS = 1_500
FIRST_MARK, SECOND_MARK = 300, 1_300


class CountingModel(BaseChatModel):
    """Streams fresh chunks and counts the collector's tracked objects at two tokens."""

    counts: dict[int, int] = {}

    @property
    def _llm_type(self) -> str:
        return "counting"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, **kw: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="x"))])

    async def _astream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        for i in range(TOKENS):
            if i in (FIRST_MARK, SECOND_MARK):
                gc.collect()
                self.counts[i] = len(gc.get_objects())
            yield ChatGenerationChunk(message=AIMessageChunk(content=" tok"))


async def tracked_per_token(model: CountingModel) -> float:
    model.counts.clear()
    tokens = 0
    async for event in Agent(model).astream("go"):
        tokens += event.type == "llm_token"
    assert tokens == TOKENS
    grown = model.counts[SECOND_MARK] - model.counts[FIRST_MARK]
    return grown / (SECOND_MARK - FIRST_MARK)


async def test_a_native_run_leaves_no_tracked_object_per_token():
    assert await tracked_per_token(CountingModel()) < 0.05


class Watching(AsyncCallbackHandler):
    def __init__(self) -> None:
        self.tokens = 0
        self.ended: list[LLMResult] = []

    async def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens += 1

    async def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        self.ended.append(response)


async def test_a_callback_handler_still_sees_every_token_and_the_merged_answer():
    # Somebody needs LangChain's retained chunks here: the call goes through `astream`.
    handler = Watching()
    per_token = await tracked_per_token(CountingModel(callbacks=[handler]))
    assert handler.tokens >= TOKENS
    [result] = handler.ended
    assert result.generations[0][0].text == " tok" * TOKENS
    assert per_token > 1, "astream retains its chunks: the count must see them (or it is blind)"


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"reasoning": True},
        {"content_blocks": True},
        {"reasoning": True, "content_blocks": True},
    ],
)
async def test_the_direct_path_yields_what_astream_yields(options):
    from langchain_core.messages import HumanMessage

    from agentcast.models import OfflineChatModel
    from agentcast.models.demo_tools import demo_tools
    from agentcast.sources._direct import _direct_target, feed_model, stream_model

    model = OfflineChatModel(token_delay=0, **options).bind_tools(demo_tools())
    assert _direct_target(model) is not None
    messages = [HumanMessage(content="What is 2+3 and 4*5?")]

    def shape(chunk: AIMessageChunk) -> tuple[Any, ...]:
        return (
            chunk.content,
            chunk.additional_kwargs,
            chunk.response_metadata,
            chunk.tool_call_chunks,
            chunk.usage_metadata,
        )

    direct = [shape(c) async for c in stream_model(model, messages)]
    fed: list[AIMessageChunk] = []
    await feed_model(model, messages, fed.append)  # what the native agent drives
    standard = [shape(c) async for c in model.astream(messages)]
    # astream appends one empty closing chunk (chunk_position="last"); nothing reads it
    assert standard[-1][0] in ("", []) and not standard[-1][3]
    assert direct == standard[:-1]
    assert [shape(c) for c in fed] == direct
