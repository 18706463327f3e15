"""One registry of LLM calls and tool runs behind every LangChain-facing source.

Nested-LLM capture, the callback bridge, the runnable source and the LangGraph source each
translate their input (callbacks, `astream_events`, the `messages` stream) onto the same
`CallRegistry` and `ToolRuns`, so what they report about the same thing is the same.
"""

from __future__ import annotations

import warnings

import pytest
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import ToolException, tool

from agentcast import Agent, stream_callbacks, wrap
from agentcast.models import OfflineChatModel
from agentcast.models.demo_tools import demo_tools
from agentcast.testing import check_invariants

pytestmark = pytest.mark.anyio

QUESTION = "What items are located where the cat is hiding?"


def _executor():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langchain_classic.agents import AgentExecutor, create_tool_calling_agent

    prompt = ChatPromptTemplate.from_messages(
        [("human", "{input}"), ("placeholder", "{agent_scratchpad}")]
    )
    tools = demo_tools()
    model = OfflineChatModel(token_delay=0)
    return AgentExecutor(agent=create_tool_calling_agent(model, tools, prompt), tools=tools)


async def _native():
    agent = Agent(OfflineChatModel(token_delay=0), tools=demo_tools())
    return [e async for e in agent.astream(QUESTION)]


async def _graph():
    from langchain.agents import create_agent

    graph = create_agent(OfflineChatModel(token_delay=0), demo_tools())
    return [e async for e in wrap(graph).astream(QUESTION)]


async def _runnable():
    return [e async for e in wrap(_executor()).astream(QUESTION)]


async def _bridge():
    executor = _executor()
    return [
        e
        async for e in stream_callbacks(
            lambda callbacks: executor.ainvoke({"input": QUESTION}, config={"callbacks": callbacks})
        )
    ]


@pytest.mark.parametrize(
    ("run", "opened_by_registry"),
    [
        (_native, "nested"),  # the native agent's own calls stream straight from the model
        (_graph, "all"),
        (_runnable, "all"),
        (_bridge, "all"),
    ],
    ids=["nested", "langgraph", "runnable", "bridge"],
)
async def test_every_langchain_adapter_opens_and_closes_llm_calls_through_the_one_registry(
    monkeypatch, run, opened_by_registry
):
    from agentcast.sources._calls import CallRegistry

    opened: list[str] = []
    closed: list[str] = []
    real_open, real_finish = CallRegistry.open, CallRegistry.finish

    def spy_open(self, key, **kwargs):
        opened.append(kwargs["call_id"])
        return real_open(self, key, **kwargs)

    def spy_finish(self, key, **kwargs):
        result = real_finish(self, key, **kwargs)
        if result is not None:
            closed.append(result.call_id)
        return result

    monkeypatch.setattr(CallRegistry, "open", spy_open)
    monkeypatch.setattr(CallRegistry, "finish", spy_finish)
    events = await run()
    check_invariants(events)
    starts = [e for e in events if e.type == "llm_start"]
    expected = [e.call_id for e in starts if opened_by_registry == "all" or e.depth > 0]
    assert expected, "the run made LLM calls of the kind under test"
    assert opened == expected
    assert sorted(closed) == sorted(expected)


@tool
def lookup(place: str) -> str:
    """Look a place up (and fail, reporting it to the model)."""
    raise ToolException(f"no map of {place}")


lookup.handle_tool_error = True


@tool
def explode(place: str) -> str:
    """Look a place up (and crash)."""
    raise ValueError(f"no such place: {place}")


async def _call_tool(name: str) -> str:
    chosen = lookup if name == "lookup" else explode
    try:
        message = await chosen.ainvoke(
            {"type": "tool_call", "id": "call_1", "name": chosen.name, "args": {"place": "attic"}}
        )
    except ValueError:
        return "it crashed"
    return str(message.content)


async def _tool_ends(source: str, tool_name: str):
    chain = RunnableLambda(lambda _: tool_name) | RunnableLambda(_call_tool)
    if source == "runnable":
        events = [e async for e in wrap(chain).astream("go")]
    else:
        events = [
            e
            async for e in stream_callbacks(
                lambda callbacks: chain.ainvoke("go", config={"callbacks": callbacks})
            )
        ]
    check_invariants(events)
    return [e for e in events if e.type == "tool_end"]


@pytest.mark.parametrize("source", ["runnable", "bridge"])
async def test_a_tool_that_reports_its_failure_to_the_model_ends_in_error_on_every_source(source):
    [end] = await _tool_ends(source, "lookup")
    assert end.status == "error"
    assert end.output is None and end.error == "no map of attic"


@pytest.mark.parametrize("source", ["runnable", "bridge"])
async def test_a_tool_that_raises_ends_with_the_error_class_and_message_on_every_source(source):
    [end] = await _tool_ends(source, "explode")
    assert end.status == "error"
    assert end.error == "ValueError: no such place: attic"
