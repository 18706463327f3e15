"""`Agent`: the native tool-calling loop over any LangChain chat model, as a `Runner`.

agent = Agent(model="offline", tools=demo_tools())
async for event in agent.astream("What is 25 * 4?", session_id="s1"):
...
result = agent.invoke("What's my name?", session_id="s1")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool

from agentcast.agents._runner import Runner
from agentcast.errors import InvalidInput
from agentcast.models import describe, resolve
from agentcast.runtime import EventHandler
from agentcast.sessions import MemoryStore, SessionStore, open_store
from agentcast.sources.native import NativeAgentSource
from agentcast.sources.retry import RetryPolicy

__all__ = ["Agent"]


class Agent(Runner):
    """A tool-calling agent over any LangChain chat model, streamed as agentcast events.

    Args:
        model: `"offline"`, a `"provider:model"` string, or a LangChain chat model.
        tools: LangChain tools (`@tool`), sync or async, and provider tool specs (dicts such as
            `{"type": "web_search_20250305", "name": "web_search"}`) that the provider runs.
        system_prompt: prepended to every model call.
        max_steps: model turns allowed per run before it fails with `max_steps_exceeded`.
        store: session store, or its URL (`memory://`, `sqlite:///file.db`); default in-memory.
        timeout: seconds before a run is stopped with outcome `timeout`.
        retry: retries of a model call that fails before its first token.
        callbacks: handlers called with every event of every run.
    """

    def __init__(
        self,
        model: str | BaseChatModel = "offline",
        tools: Sequence[BaseTool | dict[str, Any]] = (),
        *,
        system_prompt: str | None = None,
        max_steps: int = 10,
        store: SessionStore | str | None = None,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        callbacks: Sequence[EventHandler] = (),
    ) -> None:
        if max_steps < 1:
            raise InvalidInput(f"max_steps must be at least 1, got {max_steps}")
        self.model = resolve(model)
        self.tools = list(tools)
        source = NativeAgentSource(
            self.model, self.tools, system_prompt=system_prompt, max_steps=max_steps, retry=retry
        )
        super().__init__(
            source,
            store=open_store(store) if isinstance(store, str) else (store or MemoryStore()),
            timeout=timeout,
            callbacks=callbacks,
            label=describe(self.model),
        )
