"""The callback bridge: code that only takes callbacks streams the same events."""

from __future__ import annotations

import warnings

import pytest
from langchain_core.callbacks.manager import dispatch_custom_event
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool

from agentcast import stream_callbacks
from agentcast.models import OfflineChatModel
from agentcast.testing import check_invariants

pytestmark = pytest.mark.anyio


@tool
def where_cat_is_hiding() -> str:
    """Return where the cat is hiding (sync, for a sync executor)."""
    return "under the bed"


@tool
def get_items(place: str) -> str:
    """List the items in a place by asking an LLM (sync, nested)."""
    return str(
        OfflineChatModel(token_delay=0).invoke(f"List the items you would find {place}.").text
    )


def executor(tools=None, **model_options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langchain_classic.agents import AgentExecutor, create_tool_calling_agent

    prompt = ChatPromptTemplate.from_messages(
        [("human", "{input}"), ("placeholder", "{agent_scratchpad}")]
    )
    tools = tools if tools is not None else [where_cat_is_hiding, get_items]
    model = OfflineChatModel(token_delay=0, **model_options)
    return AgentExecutor(agent=create_tool_calling_agent(model, tools, prompt), tools=tools)


async def collect(run, **kwargs):
    events = [e async for e in stream_callbacks(run, **kwargs)]
    check_invariants(events)
    return events


def of(events, type_):
    return [e for e in events if e.type == type_]


async def test_bedrock_style_sync_agent_executor_through_the_bridge():
    """The Bedrock AgentExecutor pattern: sync invoke, tokens are lists of content blocks."""
    agent = executor(content_blocks=True, reasoning=True)
    question = "What items are located where the cat is hiding?"
    events = await collect(
        lambda callbacks: agent.invoke({"input": question}, config={"callbacks": callbacks})
    )
    tokens = of(events, "llm_token")
    assert tokens and all(isinstance(e.token, str) for e in tokens)
    assert not any("{" in e.token and '"type"' in e.token for e in tokens), "no content block leaks"
    assert any(e.kind == "reasoning" for e in tokens)
    starts = of(events, "tool_start")
    assert [s.name for s in starts] == ["where_cat_is_hiding", "get_items"]
    assert {s.tool_call_id for s in starts} <= {e.tool_call_id for e in of(events, "tool_call_end")}
    [nested] = [e for e in of(events, "llm_start") if e.depth == 1]
    assert nested.parent_id == starts[1].tool_call_id
    assert events[-1].outcome == "success" and "socks" in events[-1].output


async def test_async_code_and_custom_events():
    def announce(value):
        dispatch_custom_event("stage", {"at": "chain"})
        return value

    chain = RunnableLambda(announce) | OfflineChatModel(token_delay=0)
    events = await collect(
        lambda callbacks: chain.ainvoke("What is 25 * 4?", config={"callbacks": callbacks})
    )
    assert [(c.name, c.data) for c in of(events, "custom")] == [("stage", {"at": "chain"})]
    text = "".join(e.token for e in of(events, "llm_token"))
    assert "100" in text and events[-1].output == text


async def test_async_only_tools_under_a_sync_executor_fail_visibly():
    from agentcast.models.demo_tools import demo_tools

    agent = executor(tools=demo_tools())
    question = "What items are located where the cat is hiding?"
    events = await collect(
        lambda callbacks: agent.invoke({"input": question}, config={"callbacks": callbacks})
    )
    [end] = of(events, "tool_end")
    assert end.status == "error" and "does not support sync invocation" in end.error
    assert events[-1].outcome == "error"


async def test_a_failure_in_the_code_is_an_error_event():
    def broken(callbacks):
        raise RuntimeError("the chain blew up")

    events = await collect(broken)
    [error] = of(events, "error")
    assert "the chain blew up" in error.error
    assert events[-1].outcome == "error"
