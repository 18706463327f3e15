"""wrap(): LangGraph graphs and LangChain runnables stream the same events as the native agent."""

from __future__ import annotations

import warnings
from typing import Annotated, TypedDict

import pytest
from langchain_core.callbacks.manager import adispatch_custom_event
from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import interrupt

from agentcast import Agent, Runner, wrap
from agentcast.errors import ConfigError
from agentcast.models import OfflineChatModel
from agentcast.models.demo_tools import demo_tools
from agentcast.testing import check_invariants

pytestmark = pytest.mark.anyio


def offline() -> OfflineChatModel:
    return OfflineChatModel(token_delay=0)


def react_agent(model=None, tools=None, **kwargs):
    from langchain.agents import create_agent

    return create_agent(model or offline(), tools if tools is not None else demo_tools(), **kwargs)


async def collect(runner: Runner, prompt: str, **kwargs):
    events = [e async for e in runner.astream(prompt, **kwargs)]
    check_invariants(events)
    return events


def of(events, type_):
    return [e for e in events if e.type == type_]


def shape(events):
    """What a consumer sees, without ids and timings."""
    return [
        (e.type, getattr(e, "token", None), getattr(e, "name", None), getattr(e, "depth", None))
        for e in events
        if e.type
        in ("llm_token", "tool_call_start", "tool_call_end", "tool_start", "tool_end", "custom")
    ]


def test_wrap_accepts_every_agent_kind_and_refuses_the_rest():
    agent = Agent(offline())
    assert wrap(agent) is agent
    assert isinstance(wrap(offline()), Agent)
    assert isinstance(wrap(react_agent()), Runner)
    assert isinstance(wrap(RunnableLambda(lambda x: x)), Runner)
    with pytest.raises(ConfigError, match="cannot stream a int"):
        wrap(42)


async def test_create_agent_streams_the_cat_demo_like_the_native_agent():
    graph_events = await collect(
        wrap(react_agent()), "What items are located where the cat is hiding?"
    )
    native_events = await collect(
        Agent(offline(), demo_tools()), "What items are located where the cat is hiding?"
    )
    assert shape(graph_events) == shape(native_events)
    [items] = [e for e in of(graph_events, "tool_start") if e.name == "get_items"]
    [nested] = [e for e in of(graph_events, "llm_start") if e.depth == 1]
    assert nested.parent_id == items.tool_call_id
    assert {e.node for e in of(graph_events, "llm_start") if e.depth == 0} == {"model"}
    assert [e.node for e in of(graph_events, "agent_step")][1:] == [
        "model",
        "tools",
        "model",
        "tools",
        "model",
    ]
    assert graph_events[-1].output == native_events[-1].output


async def test_graph_session_memory_is_the_checkpointer(tmp_path):
    runner = wrap(react_agent(), checkpoint_path=tmp_path / "graphs.db")
    await collect(runner, "My name is Alice", session_id="t1")
    again = wrap(react_agent(), checkpoint_path=tmp_path / "graphs.db")  # a new process, same file
    events = await collect(again, "What's my name?", session_id="t1")
    assert "Alice" in events[-1].output
    other = await collect(again, "What's my name?", session_id="t2")
    assert "Alice" not in other[-1].output


async def test_graph_without_checkpointer_defaults_to_sqlite_under_agentcast_home(tmp_path):
    await collect(wrap(react_agent()), "My name is Bob", session_id="home")
    assert (tmp_path / "home" / "graphs.db").is_file()


async def test_graph_with_its_own_checkpointer_keeps_it():
    graph = react_agent(checkpointer=InMemorySaver())
    runner = wrap(graph)
    await collect(runner, "My name is Carol", session_id="own")
    events = await collect(runner, "What's my name?", session_id="own")
    assert "Carol" in events[-1].output


async def test_stream_writer_output_and_agentcast_emit_become_custom_events():
    @tool
    def progress() -> str:
        """Report progress two ways."""
        get_stream_writer()({"pct": 50})
        import agentcast

        agentcast.emit("stage", "half")
        return "done"

    model = _scripted_tool_then_text("progress")
    events = await collect(wrap(react_agent(model, [progress])), "go")
    customs = of(events, "custom")
    assert [(c.name, c.data) for c in customs] == [("custom", {"pct": 50}), ("stage", "half")]
    [start] = of(events, "tool_start")
    [end] = of(events, "tool_end")
    assert all(start.seq < c.seq < end.seq for c in customs)


async def test_interrupt_ends_the_run_interrupted_and_the_next_prompt_resumes_it(tmp_path):
    class State(TypedDict):
        messages: Annotated[list[AnyMessage], add_messages]

    def ask(state: State):
        answer = interrupt({"question": "Which city?"})
        return {"messages": [AIMessage(content=f"Booked a trip to {answer}.")]}

    builder = StateGraph(State)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", END)
    runner = wrap(builder.compile(), checkpoint_path=tmp_path / "g.db")
    first = await collect(runner, "Book me a trip", session_id="hitl")
    assert first[-1].outcome == "interrupted"
    assert first[-1].output == [{"question": "Which city?"}]
    resumed = await collect(runner, "Lisbon", session_id="hitl")
    assert (resumed[-1].outcome, resumed[-1].output) == ("success", "Booked a trip to Lisbon.")


async def test_subgraph_tokens_carry_their_namespace():
    inner = StateGraph(MessagesState)
    inner.add_node("think", lambda s: {"messages": [offline().invoke(s["messages"])]})
    inner.add_edge(START, "think")
    outer = StateGraph(MessagesState)
    outer.add_node("sub", inner.compile())
    outer.add_edge(START, "sub")
    events = await collect(wrap(outer.compile(checkpointer=InMemorySaver())), "What is 2+3?")
    [start] = of(events, "llm_start")
    assert start.depth == 1 and start.parent_id.startswith("sub:") and start.node == "think"
    assert "5" in "".join(e.token for e in of(events, "llm_token"))


# -- LangChain runnables ---------------------------------------------------------------------


async def test_an_lcel_chain_streams_tokens_and_custom_events():
    async def announce(value):
        await adispatch_custom_event("stage", {"at": "prompt"})
        return value

    prompt = ChatPromptTemplate.from_messages([("human", "{input}")])
    chain = prompt | RunnableLambda(announce) | offline()
    events = await collect(wrap(chain), "What is 25 * 4?")
    assert [(c.name, c.data) for c in of(events, "custom")] == [("stage", {"at": "prompt"})]
    text = "".join(e.token for e in of(events, "llm_token"))
    assert "100" in text and events[-1].output == text


async def test_a_runnable_remembers_the_session_through_the_store():
    prompt = ChatPromptTemplate.from_messages(
        [("placeholder", "{chat_history}"), ("human", "{input}")]
    )
    runner = wrap(prompt | offline())
    await collect(runner, "My name is Dana", session_id="r")
    events = await collect(runner, "What's my name?", session_id="r")
    assert "Dana" in events[-1].output


async def test_classic_agent_executor_streams_tools_and_nested_tokens():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langchain_classic.agents import AgentExecutor, create_tool_calling_agent

    prompt = ChatPromptTemplate.from_messages(
        [("human", "{input}"), ("placeholder", "{agent_scratchpad}")]
    )
    tools = demo_tools()
    executor = AgentExecutor(agent=create_tool_calling_agent(offline(), tools, prompt), tools=tools)
    events = await collect(wrap(executor), "What items are located where the cat is hiding?")
    starts = of(events, "tool_start")
    assert [s.name for s in starts] == ["where_cat_is_hiding", "get_items"]
    calls = {e.tool_call_id for e in of(events, "tool_call_end")}
    assert {s.tool_call_id for s in starts} <= calls, "tools are matched to the model's call ids"
    nested = [e for e in of(events, "llm_start") if e.depth == 1]
    assert len(nested) == 1 and nested[0].parent_id == starts[1].tool_call_id
    assert "socks" in events[-1].output


async def test_stream_agent_accepts_a_wrappable_object():
    from agentcast import invoke_agent

    result = await invoke_agent({"prompt": "What is 25 * 4?"}, agent=react_agent())
    assert "100" in result["output"]


def _scripted_tool_then_text(name: str):
    from langchain_core.messages import AIMessageChunk
    from langchain_core.messages.tool import tool_call_chunk

    from agentcast.testing import ScriptedChatModel

    return ScriptedChatModel(
        turns=[
            [
                AIMessageChunk(
                    content="",
                    tool_call_chunks=[tool_call_chunk(name=name, args="{}", id="c1", index=0)],
                )
            ],
            [AIMessageChunk(content="ok")],
        ]
    )


async def test_leaving_a_graph_run_cancels_it_and_closes_everything():
    runner = wrap(react_agent())
    run = runner.start("What items are located where the cat is hiding?")
    events = run.iterate()
    async for event in events:
        if event.type == "llm_token" and event.depth == 1:
            break
    await events.aclose()
    log = run.log.snapshot()
    check_invariants(log)
    assert log[-1].outcome == "cancelled"
    [items_end] = [e for e in of(log, "tool_end") if e.name == "get_items"]
    assert items_end.status == "cancelled"
