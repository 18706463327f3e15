"""Edge token buffering: seed 002's TokenBuffer, and the one definition of a joined token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from agentcast import Agent, TokenBuffer
from agentcast.errors import InvalidInput
from agentcast.events import AgentEnd, BaseEvent, LLMEnd, LLMStart, LLMToken, ToolCallStart
from agentcast.models import OfflineChatModel
from agentcast.runtime import _buffer as buffer_module
from agentcast.runtime import join_tokens

pytestmark = pytest.mark.anyio


def test_seed_002_usage_batches_by_count_and_flushes_the_rest():
    buffer = TokenBuffer(buffer_size=3)
    assert [buffer.add(t) for t in "abcde"] == [None, None, "abc", None, None]
    assert buffer.flush() == "de"
    assert buffer.flush() == ""


def test_a_batch_is_due_once_its_oldest_token_waited_max_delay(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(buffer_module.time, "monotonic", lambda: now[0])
    buffer = TokenBuffer(buffer_size=100, max_delay=0.02)
    assert buffer.add("a") is None
    now[0] += 0.019
    assert buffer.add("b") is None
    now[0] += 0.001
    assert buffer.add("c") == "abc"


@pytest.mark.parametrize("size, delay", [(0, None), (True, None), (2.5, None), (3, 0), (3, -1)])
def test_bad_settings_are_refused(size, delay):
    with pytest.raises(InvalidInput):
        TokenBuffer(buffer_size=size, max_delay=delay)


def tok(call: str, text: str, seq: int, kind: str = "text") -> LLMToken:
    return LLMToken(call_id=call, token=text, seq=seq, kind=kind)  # type: ignore[arg-type]


def test_joined_tokens_keep_the_text_and_the_last_seq():
    joined = join_tokens([tok("c", "He", 3), tok("c", "llo", 4)])
    assert (joined.token, joined.seq, joined.call_id) == ("Hello", 4, "c")
    with pytest.raises(ValueError):
        join_tokens([tok("c", "a", 1), tok("d", "b", 2)])
    with pytest.raises(ValueError):
        join_tokens([tok("c", "a", 1), tok("c", "b", 2, kind="reasoning")])


async def from_list(events: list[BaseEvent]) -> AsyncIterator[BaseEvent]:
    for event in events:
        yield event


async def test_the_event_form_never_merges_across_calls_kinds_or_other_events():
    events: list[BaseEvent] = [
        LLMStart(call_id="a", seq=0),
        tok("a", "th", 1, "reasoning"),
        tok("a", "ink", 2, "reasoning"),
        tok("a", "He", 3),
        tok("a", "l", 4),
        tok("a", "lo", 5),
        ToolCallStart(call_id="a", tool_call_id="t", name="x", seq=6),
        tok("a", "!", 7),
        LLMEnd(call_id="a", seq=8),
        AgentEnd(seq=9),
    ]
    out = [e async for e in TokenBuffer(buffer_size=2).events(from_list(events))]
    shown = [(e.type, getattr(e, "token", None), e.seq) for e in out]
    assert shown == [
        ("llm_start", None, 0),
        ("llm_token", "think", 2),
        ("llm_token", "Hel", 4),
        ("llm_token", "lo", 5),
        ("tool_call_start", None, 6),
        ("llm_token", "!", 7),
        ("llm_end", None, 8),
        ("agent_end", None, 9),
    ]


async def test_the_event_form_flushes_on_time_while_the_model_pauses():
    release = asyncio.Event()

    async def paused() -> AsyncIterator[BaseEvent]:
        yield tok("a", "x", 1)
        yield tok("a", "y", 2)
        await release.wait()  # the model pauses: only the buffer's time bound can flush
        yield tok("a", "z", 3)

    events = TokenBuffer(buffer_size=100, max_delay=0.01).events(paused())
    first = await anext(events)
    assert (first.token, first.seq) == ("xy", 2)
    release.set()
    rest = [e async for e in events]
    assert [(e.token, e.seq) for e in rest] == [("z", 3)]


async def test_a_buffered_agent_stream_carries_the_whole_answer_in_fewer_events():
    agent = Agent(OfflineChatModel(token_delay=0))
    plain = [e async for e in agent.astream("My name is Alice.")]
    buffered = [
        e async for e in TokenBuffer(buffer_size=10).events(agent.astream("My name is Alice."))
    ]
    text = lambda events: "".join(e.token for e in events if e.type == "llm_token")  # noqa: E731
    assert text(buffered) == text(plain) != ""
    assert sum(e.type == "llm_token" for e in buffered) < sum(e.type == "llm_token" for e in plain)
    assert [e.type for e in buffered if e.type != "llm_token"] == [
        e.type for e in plain if e.type != "llm_token"
    ]
    assert buffered[-1].type == "agent_end"


# -- over HTTP and the WebSocket: `stream_options` --------------------------------------------


def hopping_app(tokens: int = 40):  # type: ignore[no-untyped-def]
    from langchain_core.messages import AIMessageChunk

    from agentcast.server import create_app
    from agentcast.sessions import MemoryStore
    from agentcast.testing import ScriptedChatModel

    async def hop(call: int, index: int) -> None:
        await asyncio.sleep(0)  # one loop iteration per token: each would be a frame of its own

    chunks = [AIMessageChunk(content=f"t{i} ") for i in range(tokens)]
    model = ScriptedChatModel(turns=[chunks], before_chunk=hop)
    return create_app(Agent(model, store=MemoryStore())), "".join(c.content for c in chunks)


def sse_events(body: str) -> list[BaseEvent]:
    from agentcast.encoders.sse import decode_event

    events = []
    for frame in body.split("\n\n"):
        if frame.startswith("event:"):
            kind, data, _ = frame.split("\n")
            events.append(decode_event(kind[7:], data[6:]))
    return events


def check_buffered(events: list[BaseEvent], text: str, size: int) -> None:
    from agentcast.testing import check_invariants

    check_invariants(events, contiguous=False)
    tokens = [e for e in events if isinstance(e, LLMToken)]
    assert "".join(t.token for t in tokens) == text
    assert all(len(t.token.split()) <= size for t in tokens)
    assert max(len(t.token.split()) for t in tokens) == size
    assert events[-1].type == "agent_end"


async def test_invoke_stream_options_buffer_tokens_and_a_join_resumes_the_same():
    import httpx

    app, text = hopping_app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        body = {"prompt": "go", "stream": True, "stream_options": {"buffer_size": 5}}
        first = await client.post("/invoke", json=body)
        events = sse_events(first.text)
        check_buffered(events, text, 5)
        run_id = first.headers["x-run-id"]
        joined = await client.get(f"/runs/{run_id}/stream?buffer_size=8&max_delay=0.5")
        check_buffered(sse_events(joined.text), text, 8)
        # resuming after a joined token continues with what followed it: no gap, no duplicate
        cut = next(e for e in events if isinstance(e, LLMToken))
        rest = await client.get(f"/runs/{run_id}/stream", headers={"Last-Event-ID": str(cut.seq)})
        tail = [e for e in sse_events(rest.text) if isinstance(e, LLMToken)]
        assert cut.token + "".join(t.token for t in tail) == text


@pytest.mark.parametrize(
    "options",
    [{"buffer_size": 0}, {"buffer_size": "ten"}, {"max_delay": 0}, {"max_delay": 61}, {"size": 3}],
)
async def test_bad_stream_options_are_a_422_in_the_error_shape_and_start_nothing(options):
    import httpx

    app, _ = hopping_app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        body = {"prompt": "go", "stream": True, "stream_options": options}
        response = await client.post("/invoke", json=body)
    assert response.status_code == 422
    assert set(response.json()["error"]) == {"code", "message"}
    assert app.state.agentcast.manager.active_runs == 0


def test_websocket_stream_options_buffer_tokens():
    from starlette.testclient import TestClient

    from agentcast.events import from_json

    app, text = hopping_app()
    with TestClient(app) as tc, tc.websocket_connect("/ws") as ws:
        ws.send_json({"type": "start", "prompt": "go", "stream_options": {"buffer_size": 4}})
        started = ws.receive_json()
        events: list[BaseEvent] = []
        while not events or events[-1].type != "agent_end":
            events.append(from_json(ws.receive_text()))
        check_buffered(events, text, 4)
        resume = {"type": "resume", "run_id": started["run_id"], "after": -1}
        ws.send_json(resume | {"stream_options": {"buffer_size": 6}})
        again: list[BaseEvent] = []
        while not again or again[-1].type != "agent_end":
            again.append(from_json(ws.receive_text()))
        check_buffered(again, text, 6)
        ws.send_json(resume | {"stream_options": {"buffer_size": -1}})
        assert ws.receive_json()["type"] == "ws_error"
