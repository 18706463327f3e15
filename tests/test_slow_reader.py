"""A reader that stops reading: the run never waits for it, and it catches up coalesced.

The server sends every event a wake-up finds in one write; when that backlog is long (the
client read slower than the model wrote), adjacent tokens of one LLM call are joined first
(`agentcast.runtime.coalesce`): the same text, the last seq, nothing dropped, lifecycle
events as they were. Driven at the ASGI level with a `send` that blocks until the run ended.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk

from agentcast import Agent
from agentcast.encoders.sse import decode_event
from agentcast.events import LLMToken
from agentcast.runtime import coalesce
from agentcast.server import create_app
from agentcast.server._stream import BACKLOG
from agentcast.sessions import MemoryStore
from agentcast.testing import ScriptedChatModel, check_invariants

pytestmark = pytest.mark.anyio

TOKENS = 400


async def hop(call: int, index: int) -> None:
    await asyncio.sleep(0)  # one loop iteration per token, as a network gives


def parse(body: bytes) -> list[Any]:
    events = []
    for frame in body.decode().split("\n\n"):
        if frame.startswith("event:"):
            kind_line, data_line, _ = frame.split("\n")
            events.append(decode_event(kind_line[7:], data_line[6:]))
    return events


async def test_a_stalled_reader_never_stalls_the_run_and_catches_up_with_joined_tokens():
    chunks = [AIMessageChunk(content=f"t{i} ") for i in range(TOKENS)]
    model = ScriptedChatModel(turns=[chunks], before_chunk=hop)
    app = create_app(Agent(model, store=MemoryStore()))
    manager = app.state.agentcast.manager
    bodies: list[bytes] = []
    run_ended_while_stalled = asyncio.Event()
    response_ended = asyncio.Event()

    async def receive() -> dict[str, Any]:
        # The client never disconnects; as ASGI says, `receive` answers `http.disconnect`
        # once the response is complete.
        await response_ended.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            response_ended.set()
        if message["type"] != "http.response.body" or not message.get("body"):
            return
        bodies.append(message["body"])
        if len(bodies) == 5:  # the client stops reading: this send blocks until the run ends
            [managed] = manager._runs.values()  # noqa: SLF001
            await managed.run.wait()
            run_ended_while_stalled.set()

    request = json.dumps({"prompt": "go", "stream": True}).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "path": "/invoke",
        "raw_path": b"/invoke",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"host", b"test")],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
        "scheme": "http",
    }
    received = [request]

    async def first_receive() -> dict[str, Any]:
        if received:
            return {"type": "http.request", "body": received.pop(), "more_body": False}
        return await receive()

    async with app.router.lifespan_context(app):
        await app(scope, first_receive, send)
    assert run_ended_while_stalled.is_set(), "the run finished while its only reader was stalled"
    events = [e for body in bodies for e in parse(body)]
    check_invariants(events, contiguous=False)
    tokens = [e for e in events if isinstance(e, LLMToken)]
    assert "".join(t.token for t in tokens) == "".join(c.content for c in chunks)
    assert len(tokens) < TOKENS / 4, "the backlog was sent as joined tokens"
    before_stall = [e for body in bodies[:5] for e in parse(body) if isinstance(e, LLMToken)]
    assert all(len(t.token.split()) == 1 for t in before_stall), "no joining while it kept up"
    seqs = [e.seq for e in events]
    assert seqs == sorted(set(seqs)) and seqs[-1] == events[-1].seq
    assert events[-1].type == "agent_end"


def test_coalesce_joins_only_adjacent_tokens_of_one_call_and_kind():
    from agentcast.events import LLMEnd, LLMStart

    events = [
        LLMStart(call_id="a", seq=0),
        LLMToken(call_id="a", token="x", seq=1),
        LLMToken(call_id="a", token="y", seq=2),
        LLMToken(call_id="a", token="r", seq=3, kind="reasoning"),
        LLMToken(call_id="b", token="z", seq=4, depth=1),
        LLMToken(call_id="a", token="w", seq=5),
        LLMEnd(call_id="a", seq=6),
    ]
    shown = [(e.type, getattr(e, "token", None), e.seq) for e in coalesce(events)]
    assert shown == [
        ("llm_start", None, 0),
        ("llm_token", "xy", 2),
        ("llm_token", "r", 3),
        ("llm_token", "z", 4),
        ("llm_token", "w", 5),
        ("llm_end", None, 6),
    ]
    assert BACKLOG > 1
