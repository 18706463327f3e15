"""`ScriptedChatModel`: a LangChain chat model that streams scripted chunks.

`ScriptedChatModel` is a real LangChain chat model whose every call streams chunks you script,
so any chunk shape, failure point or tool call can be reproduced without a provider.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from pydantic import Field

__all__ = ("Fail", "ScriptedChatModel")


class Fail:
    """A script step that raises `error` when the stream reaches it."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


Step = AIMessageChunk | Fail
"""One scripted item: a chunk to stream, or a failure to raise."""


class ScriptedChatModel(BaseChatModel):
    """A chat model that streams scripted turns: call N streams `turns[N]`.

    Attributes:
        turns: one list of steps per model call; the last turn repeats when calls run out.
        calls: the messages each call received (for assertions).
        before_chunk: an optional hook called before each chunk (e.g. to wait on an event).
    """

    turns: list[list[Any]]
    calls: list[list[BaseMessage]] = Field(default_factory=list)
    before_chunk: Callable[[int, int], Any] | None = None

    @property
    def _llm_type(self) -> str:
        return "agentcast-scripted"

    def bind_tools(
        self, tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool], **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Accept tools and ignore them: the script decides."""
        return self

    def _steps(self, messages: list[BaseMessage]) -> tuple[int, list[Any]]:
        self.calls.append(list(messages))
        number = len(self.calls) - 1
        return number, self.turns[min(number, len(self.turns) - 1)]

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        merged: AIMessageChunk | None = None
        for step in self._steps(messages)[1]:
            if isinstance(step, Fail):
                raise step.error
            merged = step if merged is None else merged + step
        assert merged is not None
        return ChatResult(
            generations=[
                ChatGeneration(
                    message=AIMessage(
                        **merged.model_dump(exclude={"type", "tool_call_chunks", "chunk_position"})
                    )
                )
            ]
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        number, steps = self._steps(messages)
        for i, step in enumerate(steps):
            if self.before_chunk is not None:
                self.before_chunk(number, i)
            if isinstance(step, Fail):
                raise step.error
            yield ChatGenerationChunk(message=step.model_copy(deep=True))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        number, steps = self._steps(messages)
        for i, step in enumerate(steps):
            if self.before_chunk is not None:
                result = self.before_chunk(number, i)
                if hasattr(result, "__await__"):
                    await result
            if isinstance(step, Fail):
                raise step.error
            yield ChatGenerationChunk(message=step.model_copy(deep=True))
