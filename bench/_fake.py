"""The fake chat model every contestant of `bench_tokens.py` streams from.

A real LangChain `BaseChatModel` (so `astream`, `ainvoke`, `astream_events`, callbacks, LangGraph's
message streaming and `bind_tools` all take their normal code paths) that yields pre-built
chunks with zero delay. What it says depends only on the conversation:

- the last message is a `ToolMessage`          -> the final answer, `final_tokens` text chunks;
- tools are bound and `tool_calls > 0`          -> one turn with `tool_calls` parallel calls of
  `lookup`, whose argument JSON arrives in `arg_chunks` chunks each (`layout`: interleaved
  round-robin across calls, or one call after the other);
- otherwise                                    -> the plain answer, `answer_tokens` text chunks.

Every text chunk is the same short string (`TOKEN`), so all contestants do identical model work.
The chunks are built once per model instance and turn kind and reused on every call: LangChain
sets `message.id` and rewrites `message.response_metadata` on the chunks it streams, so both are
reset at the start of every call (two plain dict writes a chunk, identical for every contestant).
`rebuild=True` builds fresh chunk objects on every call instead (includes their construction cost).

`hop=True` awaits `asyncio.sleep(0)` before every chunk: one event-loop iteration per token, as a
network-backed model has, so consumers in other tasks are woken once per token.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool, tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import PrivateAttr

__all__ = ["TOKEN", "FakeStreamModel", "lookup", "tool_args"]

TOKEN = " tok"
"""The text of every answer chunk."""

TurnKind = Literal["answer", "tools", "final"]


@tool
def lookup(q: str) -> str:
    """Look something up (a trivially cheap benchmark tool)."""
    return "found " + q[:8]


def tool_args(position: int, arg_chunks: int) -> list[str]:
    """Return the argument JSON of tool call `position`, in `arg_chunks` non-empty pieces."""
    value = f"item-{position}-"
    padding = max(0, 4 * arg_chunks - len(json.dumps({"q": value})))  # ~4 characters a chunk
    raw = json.dumps({"q": value + "x" * padding})
    size = len(raw)
    return [raw[k * size // arg_chunks : (k + 1) * size // arg_chunks] for k in range(arg_chunks)]


class FakeStreamModel(BaseChatModel):
    """A zero-latency streaming chat model with a fixed, deterministic script (see module doc)."""

    answer_tokens: int = 2000
    final_tokens: int = 500
    tool_calls: int = 3
    arg_chunks: int = 20
    layout: Literal["interleaved", "sequential"] = "interleaved"
    hop: bool = False
    rebuild: bool = False

    _cache: dict[str, list[ChatGenerationChunk]] = PrivateAttr(default_factory=dict)

    @property
    def _llm_type(self) -> str:
        return "bench-fake"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": "bench-fake"}

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools as OpenAI tool schemas, as provider models do."""
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    # -- the script -----------------------------------------------------------------------

    def turn_kind(self, messages: Sequence[BaseMessage], kwargs: dict[str, Any]) -> TurnKind:
        """Decide the turn from the conversation (and whether tools are bound)."""
        if messages and isinstance(messages[-1], ToolMessage):
            return "final"
        if kwargs.get("tools") and self.tool_calls > 0:
            return "tools"
        return "answer"

    def token_count(self, kind: TurnKind) -> int:
        """How many token chunks (text chunks + tool-argument chunks) a turn yields."""
        if kind == "tools":
            return self.tool_calls * self.arg_chunks
        return self.final_tokens if kind == "final" else self.answer_tokens

    def build(self, kind: TurnKind) -> list[ChatGenerationChunk]:
        """Build the chunks of one turn."""
        if kind != "tools":
            count = self.token_count(kind)
            return [
                ChatGenerationChunk(message=AIMessageChunk(content=TOKEN)) for _ in range(count)
            ]
        pieces = [tool_args(i, self.arg_chunks) for i in range(self.tool_calls)]
        order: list[tuple[int, int]]
        if self.layout == "interleaved":
            order = [(i, j) for j in range(self.arg_chunks) for i in range(self.tool_calls)]
        else:
            order = [(i, j) for i in range(self.tool_calls) for j in range(self.arg_chunks)]
        chunks = []
        for i, j in order:
            part = tool_call_chunk(
                name="lookup" if j == 0 else None,
                id=f"call_{i}" if j == 0 else None,
                args=pieces[i][j],
                index=i,
            )
            chunks.append(
                ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[part]))
            )
        return chunks

    def _chunks(
        self, messages: list[BaseMessage], kwargs: dict[str, Any]
    ) -> list[ChatGenerationChunk]:
        kind = self.turn_kind(messages, kwargs)
        if self.rebuild:
            return self.build(kind)
        chunks = self._cache.get(kind)
        if chunks is None:
            chunks = self._cache[kind] = self.build(kind)
        for chunk in chunks:  # undo what LangChain wrote on the previous call
            fields = chunk.message.__dict__  # plain writes: no pydantic __setattr__ per chunk
            fields["id"] = None
            fields["response_metadata"] = {}
        return chunks

    # -- BaseChatModel --------------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(iter(self.build(self.turn_kind(messages, kwargs))))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        chunks = self._chunks(messages, kwargs)
        if self.hop:
            for chunk in chunks:
                await asyncio.sleep(0)
                yield chunk
        else:
            for chunk in chunks:
                yield chunk
