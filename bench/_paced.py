"""The server benchmark's fake model: a LangChain chat model paced like a network-backed one.

It runs in the server processes (`_servers.py`); the load client (`_load.py`) reads the due
time each token carries.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

_PROMPT = re.compile(r"(\d+) tokens at ([0-9.]+) tok/s")


def prompt_for(tokens: int, rate: float) -> str:
    """The prompt that makes `PacedModel` stream `tokens` tokens at `rate` tokens/s."""
    return f"stream {tokens} tokens at {rate:g} tok/s"


class PacedModel(BaseChatModel):
    """Streams N tokens at a fixed rate; each token is `"<due time, ns since epoch> "`.

    Token i (from 1) is due at start + i / rate, on the wall clock. The model sleeps until then
    (or not at all when the loop is already late, as data waiting on a socket) and yields a fresh
    chunk, as a provider client does. The stamp is the due time, not the time the loop got
    round to it, so loop stalls count as delivery latency. The prompt (`prompt_for`) sets N and
    the rate.
    """

    default_tokens: int = 100
    default_rate: float = 20.0

    @property
    def _llm_type(self) -> str:
        return "bench-paced"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": "bench-paced"}

    def _plan(self, messages: Sequence[BaseMessage]) -> tuple[int, float]:
        text = messages[-1].content if messages else ""
        return plan_of(str(text), self.default_tokens, self.default_rate)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        count, _ = self._plan(messages)
        now = time.time_ns()
        text = "".join(f"{now} " for _ in range(count))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        count, rate = self._plan(messages)
        interval = int(1e9 / rate)
        due = time.time_ns()
        for _ in range(count):
            due += interval
            delay = (due - time.time_ns()) / 1e9
            await asyncio.sleep(delay if delay > 0 else 0)
            yield ChatGenerationChunk(message=AIMessageChunk(content=f"{due} "))


def plan_of(prompt: str, tokens: int = 100, rate: float = 20.0) -> tuple[int, float]:
    """(tokens, rate) that a prompt made by `prompt_for` asks for; the defaults otherwise."""
    found = _PROMPT.search(prompt)
    return (int(found.group(1)), float(found.group(2))) if found else (tokens, rate)
