"""A streamed call with usage but no text, tool or reasoning output (an OpenAI refusal) on every
path: its usage is counted once and the refusal reaches the stream as the call's answer.

The end handlers of the runnable (`wrap`), callback-bridge and nested-LLM paths used to feed the
final message again when nothing had been streamed, doubling its usage (158/22/180 for 79/11/90),
and no path showed the refusal at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk
from langchain_core.tools import tool

from agentcast import Agent, stream_callbacks, wrap
from agentcast.events import BaseEvent
from agentcast.sessions import MemoryStore
from agentcast.testing import ScriptedChatModel, check_invariants

pytestmark = pytest.mark.anyio

REFUSAL = "I'm sorry, I can't help with that."
USAGE = {"input_tokens": 79, "output_tokens": 11, "total_tokens": 90}


def refusal_turn() -> list[AIMessageChunk]:
    """What langchain-openai streams for a refused request: the refusal, then usage only."""
    return [
        AIMessageChunk(content="", additional_kwargs={"refusal": REFUSAL}),
        AIMessageChunk(content="", usage_metadata=dict(USAGE)),  # type: ignore[arg-type]
    ]


def usage_only_turn() -> list[AIMessageChunk]:
    """A call that says nothing at all but reports usage (an empty answer)."""
    return [AIMessageChunk(content=""), AIMessageChunk(content="", usage_metadata=dict(USAGE))]  # type: ignore[arg-type]


def refusal_blocks_turn() -> list[AIMessageChunk]:
    """langchain-openai's Responses API path: a `refusal` content block on `refusal.done`."""
    return [
        AIMessageChunk(content=[{"type": "refusal", "refusal": REFUSAL}]),
        AIMessageChunk(content=[], usage_metadata=dict(USAGE)),  # type: ignore[arg-type]
    ]


def of(events: list[BaseEvent], type_: str) -> list[Any]:
    return [e for e in events if e.type == type_]


async def native(turn: list[AIMessageChunk]) -> list[BaseEvent]:
    agent = Agent(ScriptedChatModel(turns=[turn]), store=MemoryStore())
    return [e async for e in agent.astream("help me", session_id="s1")]


async def wrapped(turn: list[AIMessageChunk]) -> list[BaseEvent]:
    model = ScriptedChatModel(turns=[turn])
    return [e async for e in wrap(model.bind()).astream("help me", session_id="s1")]


async def bridged(turn: list[AIMessageChunk]) -> list[BaseEvent]:
    model = ScriptedChatModel(turns=[turn])
    run = lambda callbacks: model.ainvoke("help me", config={"callbacks": callbacks})  # noqa: E731
    return [e async for e in stream_callbacks(run)]


async def nested(turn: list[AIMessageChunk]) -> list[BaseEvent]:
    inner = ScriptedChatModel(turns=[turn])

    @tool
    async def ask_expert(question: str) -> str:
        """Ask an expert LLM."""
        return str((await inner.ainvoke(question)).text)

    call = AIMessageChunk(
        content="",
        tool_call_chunks=[
            {"id": "call_1", "name": "ask_expert", "args": '{"question": "q"}', "index": 0}
        ],
    )
    outer = ScriptedChatModel(turns=[[call], [AIMessageChunk(content="Done.")]])
    agent = Agent(outer, [ask_expert], store=MemoryStore())
    return [e async for e in agent.astream("help me", session_id="s1")]


PATHS: dict[str, Callable[[list[AIMessageChunk]], Any]] = {
    "native": native,
    "wrap": wrapped,
    "bridge": bridged,
    "nested": nested,
}


def the_call(events: list[BaseEvent], path: str) -> str:
    """The call_id of the LLM call under test (the nested one on the nested path)."""
    depth = 1 if path == "nested" else 0
    [start] = [e for e in of(events, "llm_start") if e.depth == depth]
    return str(start.call_id)


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("turn", [refusal_turn, usage_only_turn, refusal_blocks_turn])
async def test_usage_of_a_call_without_streamed_output_is_counted_once(path, turn):
    events = await PATHS[path](turn())
    check_invariants(events)
    call_id = the_call(events, path)
    [end] = [e for e in of(events, "llm_end") if e.call_id == call_id]
    assert end.usage == {**USAGE, "source": "provider"}


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("turn", [refusal_turn, refusal_blocks_turn])
async def test_a_refusal_reaches_the_stream_as_the_answer_text(path, turn):
    events = await PATHS[path](turn())
    check_invariants(events)
    call_id = the_call(events, path)
    tokens = [e for e in of(events, "llm_token") if e.call_id == call_id]
    assert [(e.kind, e.token) for e in tokens] == [("text", REFUSAL)]
    [end] = [e for e in of(events, "llm_end") if e.call_id == call_id]
    assert end.finish_reason == "refusal"
    if path != "nested":  # a tool's output is what its author returns
        assert (events[-1].outcome, events[-1].output) == ("success", REFUSAL)
