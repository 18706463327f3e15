"""`POST /agui`: the AG-UI endpoint's contract, in-process and on a real server.

Same gates as `/invoke` (owners, the id rule, the error shape, session policy, disconnect
policy); the conversation comes from the client's `messages`; the turn is saved under the
thread. Every stream read here passes the AG-UI rule checker.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, TypedDict

import anyio
import httpx
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, AnyMessage, HumanMessage, ToolMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import interrupt

from agentcast import Agent, wrap
from agentcast.errors import SessionBusy
from agentcast.models import OfflineChatModel
from agentcast.models.demo_tools import demo_tools
from agentcast.runtime import RunManager
from agentcast.server import create_app
from agentcast.sessions import MemoryStore
from agentcast.testing import ScriptedChatModel
from tests._agui_rules import check_stream
from tests.test_server import Gate, Served, client

pytestmark = pytest.mark.anyio

KEYS = {"KEYA": "alice", "KEYB": "bob"}


def demo_app(**config: Any):
    agent = Agent(OfflineChatModel(token_delay=0), demo_tools(), store=MemoryStore())
    return create_app(agent, tune_gc=False, **config)


def run_input(prompt: str | None = "What is 2+3?", *, thread="t1", run="r1", history=(), **more):
    messages = [*history]
    if prompt is not None:
        messages.append({"id": f"u-{run}", "role": "user", "content": prompt})
    return {
        "threadId": thread,
        "runId": run,
        "messages": messages,
        "tools": [],
        "context": [],
        "state": {},
        "forwardedProps": {},
        **more,
    }


def agui_events(text: str, *, thread="t1", run="r1") -> list[dict[str, Any]]:
    """Parse an AG-UI SSE body: only `data:` messages (and comments), LF only."""
    assert "\r" not in text and text.endswith("\n\n")
    events = []
    for block in text.split("\n\n")[:-1]:
        if block.startswith(":"):
            continue
        assert block.startswith("data: ") and "\n" not in block, block
        events.append(json.loads(block[len("data: ") :]))
    check_stream(events, thread_id=thread, run_id=run)
    return events


def answer(events: list[dict[str, Any]]) -> str:
    """The text of the untagged (top-level) assistant messages."""
    return "".join(
        e["delta"]
        for e in events
        if e["type"] == "TEXT_MESSAGE_CONTENT" and "subagentRunId" not in e
    )


async def test_a_run_streams_agui_events_echoing_the_request_ids():
    async with client(demo_app()) as c:
        r = await c.post("/agui", json=run_input("What is 2+3 and 4*5?", thread="th", run="rn"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert (r.headers["x-run-id"], r.headers["x-session-id"]) == ("rn", "th")
    events = agui_events(r.text, thread="th", run="rn")
    starts = [e for e in events if e["type"] == "TOOL_CALL_START"]
    assert [e["toolCallName"] for e in starts] == ["add", "multiply"]
    assert len({e["parentMessageId"] for e in starts}) == 1  # one LLM message, two calls
    assert answer(events) == "2 + 3 = **5** and 4 * 5 = **20**."
    assert events[-1]["outcome"] == {"type": "success"}


BAD_INPUT = [
    ("not json", 422, "JSON"),
    ([], 422, "body"),
    ({}, 422, "threadId"),
    ({"threadId": "t", "runId": "r"}, 422, "messages"),
    ({"threadId": 5, "runId": "r", "messages": []}, 422, "threadId"),
    ({"threadId": "t", "runId": "r", "messages": {}}, 422, "messages"),
    (run_input(thread="a/b"), 400, "threadId"),
    (run_input(run="r" * 200), 400, "runId"),
    (run_input(None), 400, "end with the user's message"),
    (run_input("   "), 400, "empty"),
    (run_input(None, history=[{"id": "a", "role": "assistant", "content": "hi"}]), 400, "user"),
    (run_input(None, history=[{"id": "u", "role": "wizard", "content": "x"}]), 422, "role"),
    (run_input(None, history=[{"role": "user", "content": "x"}]), 422, "id"),
    (run_input(None, history=[{"id": "t", "role": "tool", "content": "x"}]), 422, "toolCallId"),
    (
        run_input(None, history=[{"id": "u", "role": "user", "content": [{"type": "image"}]}]),
        400,
        "only text parts",
    ),
    (run_input(resume=[{"interruptId": "i", "status": "cancelled"}]), 400, "resolved"),
    (run_input(resume=[{"interruptId": "i", "status": "maybe"}]), 422, "status"),
    (
        run_input(resume=[{"interruptId": i, "status": "resolved", "payload": 1} for i in "ab"]),
        400,
        "one interrupt",
    ),
]


@pytest.mark.parametrize(("body", "status", "says"), BAD_INPUT)
async def test_bad_input_is_a_clear_4xx_in_the_error_shape_and_starts_nothing(body, status, says):
    app = demo_app()
    content = body if isinstance(body, str) else json.dumps(body)
    async with client(app) as c:
        r = await c.post("/agui", content=content, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"code", "message"} and says in error["message"]
    assert app.state.agentcast.manager.active_runs == 0


async def test_client_held_history_is_answered_from_and_the_turn_is_kept_under_the_thread():
    bob = [
        {"id": "m1", "role": "user", "content": "My name is Bob."},
        {"id": "m2", "role": "assistant", "content": "Nice to meet you, Bob!"},
    ]
    async with client(demo_app()) as c:
        r = await c.post("/agui", json=run_input("What's my name?", thread="fresh", history=bob))
        assert answer(agui_events(r.text, thread="fresh")) == "Your name is Bob."
        saved = (await c.get("/sessions/fresh")).json()["messages"]
    assert [(m["role"], m["content"]) for m in saved] == [
        ("user", "What's my name?"),
        ("assistant", "Your name is Bob."),
    ]


async def test_what_the_client_sends_back_reaches_the_model_as_a_valid_history():
    # The shapes @ag-ui/client builds from our own events: reasoning messages, an assistant
    # message with content "" and toolCalls, tool results, a subagent's messages, activity.
    model = ScriptedChatModel(turns=[[AIMessageChunk(content="ok")]])
    app = create_app(Agent(model, store=MemoryStore()), tune_gc=False)
    call = {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a":1}'}}
    cut = {"id": "c2", "type": "function", "function": {"name": "add", "arguments": '{"a":'}}
    history = [
        {"id": "u1", "role": "user", "content": [{"type": "text", "text": "add"}]},
        {"id": "r1", "role": "reasoning", "content": "thinking"},
        {"id": "a1", "role": "assistant", "content": "", "toolCalls": [call, cut]},
        {"id": "t1", "role": "tool", "content": "1", "toolCallId": "c1"},
        {"id": "n1", "role": "assistant", "content": "nested", "subagentRunId": "c1-subagent"},
        {"id": "x1", "role": "activity", "activityType": "plan", "content": {"step": 1}},
        {"id": "t9", "role": "tool", "content": "orphan", "toolCallId": "nope"},
        {"id": "s1", "role": "developer", "content": "Be brief.", "metadata": {"k": None}},
    ]
    body = run_input("again", history=history, protocolVersion="1.0", parentRunId="r0")
    async with client(app) as c:
        r = await c.post("/agui", json=body)
    assert answer(agui_events(r.text)) == "ok"
    sent = model.calls[0]
    assert [type(m).__name__ for m in sent] == [
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "ToolMessage",
        "SystemMessage",
        "HumanMessage",
    ]
    assert sent[1].tool_calls[0]["args"] == {"a": 1} and sent[1].tool_calls[1]["args"] == {}
    assert isinstance(sent[3], ToolMessage) and sent[3].status == "error"  # synthesized: cancelled
    assert isinstance(sent[0], HumanMessage) and sent[0].content == "add"


async def test_input_the_agent_does_not_consume_is_attached_to_the_run():
    app = demo_app()
    body = run_input(
        "hi",
        context=[{"description": "page", "value": "/home"}],
        state={"tab": 2},
        forwardedProps={"x": 1},
    )
    async with client(app) as c:
        r = await c.post("/agui", json=body)
    agui_events(r.text)
    start = app.state.agentcast.manager.get("r1").run.log.get(0)
    assert start.custom_data == {
        "agui": {
            "context": [{"description": "page", "value": "/home"}],
            "state": {"tab": 2},
            "forwardedProps": {"x": 1},
        }
    }


async def test_a_reader_that_saw_the_end_may_start_the_next_turn_at_once():
    # The AG-UI client posts the next run as soon as it reads RUN_FINISHED: the session must
    # not still count as busy (policy `reject`) while the previous run's task winds down.
    agent = Agent(OfflineChatModel(token_delay=0), store=MemoryStore())
    manager = RunManager(agent.start, session_policy="reject")
    first = manager.start("My name is Alice.", session_id="t")
    async for event in first.run.events():
        if event.type == "agent_end":
            second = manager.start("What's my name?", session_id="t")  # not SessionBusy
    assert "Alice" in (await second.run.wait()).output
    third = manager.start("Still there?", session_id="t")
    with pytest.raises(SessionBusy):
        manager.start("and again", session_id="t")  # a run that is active is still refused
    await third.run.wait()


async def test_two_runs_back_to_back_on_one_thread_with_the_reject_policy():
    async with client(demo_app(session_policy="reject")) as c:
        first = await c.post("/agui", json=run_input("My name is Alice.", run="r1"))
        agui_events(first.text, run="r1")
        second = await c.post("/agui", json=run_input("What's my name?", run="r2"))
    assert second.status_code == 200
    assert "Alice" not in answer(agui_events(second.text, run="r2"))  # the client held nothing


async def test_a_busy_thread_is_409_in_the_error_shape():
    gate = Gate(at=1)
    model = ScriptedChatModel(
        turns=[[AIMessageChunk(content=t) for t in ("a", "b")]], before_chunk=gate
    )
    app = create_app(Agent(model, store=MemoryStore()), tune_gc=False)
    async with (
        Served(app) as served,
        httpx.AsyncClient(base_url=served.url) as c,
        c.stream("POST", "/agui", json=run_input("go", run="r1")) as first,
    ):
        await gate.reached.wait()
        busy = await c.post("/agui", json=run_input("go", run="r2"))
        gate.release.set()
        agui_events((await first.aread()).decode(), run="r1")
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "session_busy"


async def test_owners_keep_their_threads_and_runs_apart():
    app = demo_app(api_keys=KEYS)
    a, b = {"Authorization": "Bearer KEYA"}, {"Authorization": "Bearer KEYB"}
    async with client(app) as c:
        assert (await c.post("/agui", json=run_input())).status_code == 401
        mine = await c.post("/agui", json=run_input("My name is Alice.", run="same"), headers=a)
        theirs = await c.post("/agui", json=run_input("hi", run="same"), headers=b)
        assert mine.headers["x-run-id"] == "same"
        # The id is taken (by another owner): that run gets a fresh one, and nothing says whose.
        assert theirs.status_code == 200 and theirs.headers["x-run-id"] != "same"
        agui_events(theirs.text, run="same")  # the client's runId is still echoed
        assert (await c.get("/runs/same", headers=b)).status_code == 404
        assert (await c.get("/runs/same", headers=a)).status_code == 200
        assert (await c.get("/sessions/t1", headers=b)).json()["messages"][0]["content"] == "hi"


async def test_a_graph_interrupt_is_the_interrupt_outcome_and_resume_continues_it(tmp_path):
    class State(TypedDict):
        messages: Annotated[list[AnyMessage], add_messages]

    def ask(state: State):
        city = interrupt({"question": "Which city?"})
        return {"messages": [AIMessage(content=f"Booked a trip to {city}.")]}

    builder = StateGraph(State)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", END)
    app = create_app(
        wrap(builder.compile(), checkpoint_path=tmp_path / "g.db"),
        store=MemoryStore(),
        tune_gc=False,
    )
    async with client(app) as c:
        first = agui_events((await c.post("/agui", json=run_input("Book me a trip"))).text)
        [pending] = first[-1]["outcome"]["interrupts"]
        assert first[-1]["outcome"]["type"] == "interrupt"
        assert pending["metadata"] == {"value": {"question": "Which city?"}}
        resume = [{"interruptId": pending["id"], "status": "resolved", "payload": "Lisbon"}]
        held = [{"id": "u1", "role": "user", "content": "Book me a trip"}]
        body = run_input(None, run="r2", history=held, resume=resume)
        second = agui_events((await c.post("/agui", json=body)).text, run="r2")
    assert second[-1]["outcome"] == {"type": "success"}
    assert second[-1]["result"] == "Booked a trip to Lisbon."


@pytest.mark.parametrize(("policy", "outcome"), [("cancel", "cancelled"), ("continue", "success")])
async def test_the_disconnect_policy_applies_as_for_invoke(policy, outcome):
    gate = Gate(at=1)
    model = ScriptedChatModel(
        turns=[[AIMessageChunk(content=t) for t in ("a", "b")]], before_chunk=gate
    )
    app = create_app(Agent(model, store=MemoryStore()), tune_gc=False, disconnect=policy)
    async with Served(app) as served, httpx.AsyncClient(base_url=served.url) as c:
        async with c.stream("POST", "/agui", json=run_input("go")) as r:
            await gate.reached.wait()
            assert r.status_code == 200
        managed = app.state.agentcast.manager.get("r1")
        await managed.idle.wait()  # the server saw the disconnect
        gate.release.set()
        assert (await managed.run.wait()).outcome == outcome


async def test_cancel_by_the_runs_endpoint_finishes_the_stream_with_the_cancelled_outcome():
    gate = Gate(at=1)
    model = ScriptedChatModel(
        turns=[[AIMessageChunk(content=t) for t in ("a", "b")]], before_chunk=gate
    )
    app = create_app(Agent(model, store=MemoryStore()), tune_gc=False)
    async with (
        Served(app) as served,
        httpx.AsyncClient(base_url=served.url) as c,
        c.stream("POST", "/agui", json=run_input("go")) as r,
    ):
        await gate.reached.wait()
        assert (await c.post("/runs/r1/cancel")).json()["status"] == "cancelling"
        events = agui_events((await r.aread()).decode())
    assert events[-1]["outcome"] == {"type": "cancelled"}
    assert answer(events) == "a"


@pytest.mark.slow
async def test_heartbeats_while_the_run_is_silent_are_comments_the_client_ignores(tmp_path):
    gate = Gate(at=1)
    model = ScriptedChatModel(
        turns=[[AIMessageChunk(content=t) for t in ("a", "b")]], before_chunk=gate
    )
    app = create_app(Agent(model, store=MemoryStore()), tune_gc=False, heartbeat=0.02)
    async with (
        Served(app) as served,
        httpx.AsyncClient(base_url=served.url) as c,
        c.stream("POST", "/agui", json=run_input("go")) as r,
    ):
        text = ""
        chunks = r.aiter_text()
        while ": ping\n\n" not in text:  # the model is blocked: only a heartbeat can come
            text += await chunks.__anext__()
        gate.release.set()
        async for chunk in chunks:
            text += chunk
    assert answer(agui_events(text)) == "ab"
    # The real client's SSE parser, schemas and verifyEvents on these very bytes.
    path = tmp_path / "stream.json"
    path.write_text(json.dumps([text]))
    js = Path(__file__).parent / "js" / "agui"
    done = await anyio.run_process(["node", "verify.mjs", str(path)], cwd=js)
    [result] = json.loads(done.stdout)
    assert result["ok"], result


async def test_the_request_limits_apply():
    async with client(demo_app(max_body_bytes=2_000)) as c:
        big = run_input("x" * 3_000)
        r = await c.post("/agui", json=big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"


async def test_a_langgraph_agent_streams_valid_agui_with_its_nested_llm_as_a_subagent():
    from langchain.agents import create_agent
    from langgraph.checkpoint.memory import InMemorySaver

    graph = create_agent(
        OfflineChatModel(token_delay=0), demo_tools(), checkpointer=InMemorySaver()
    )
    app = create_app(wrap(graph), store=MemoryStore(), tune_gc=False)
    async with client(app) as c:
        r = await c.post("/agui", json=run_input("What items are located where the cat is hiding?"))
    events = agui_events(r.text)
    [started] = [e for e in events if e["type"] == "SUBAGENT_STARTED"]
    calls = {e["toolCallId"]: e["toolCallName"] for e in events if e["type"] == "TOOL_CALL_START"}
    assert calls[started["parentToolCallId"]] == "get_items"
    assert answer(events).endswith(
        "Items located there: socks, a pair of shoes and some dust bunnies."
    )
