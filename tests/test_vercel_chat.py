"""`POST /api/chat` and `GET /api/chat/{id}/stream` over HTTP, and the `messages` they take.

In-process (httpx's ASGI transport) against the real app: bad input, the stream's framing
and headers, ownership, a request right after (or during) the previous one on a chat, resume
and the UI messages a client sends back. The real AI SDK clients are in test_vercel_e2e.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from langchain_core.messages import AIMessageChunk

from agentcast import Agent
from agentcast.encoders.vercel_input import chat_turn
from agentcast.errors import InvalidInput
from agentcast.models import OfflineChatModel
from agentcast.models.demo_tools import demo_tools
from agentcast.server import create_app
from agentcast.sessions import MemoryStore
from agentcast.testing import ScriptedChatModel
from tests.vercel_protocol import check_sse_body, check_ui_stream

pytestmark = pytest.mark.anyio


def user(text: str, id: str = "u1") -> dict[str, Any]:
    return {"id": id, "role": "user", "parts": [{"type": "text", "text": text}]}


def assistant(*parts: dict[str, Any], id: str = "a1") -> dict[str, Any]:
    return {"id": id, "role": "assistant", "parts": list(parts)}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value, "state": "done"}


def demo_app(**config: Any) -> Any:
    agent = Agent(OfflineChatModel(token_delay=0), demo_tools(), store=MemoryStore())
    return create_app(agent, **config)


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def answer_of(raw: str) -> str:
    chunks = check_sse_body(raw)
    check_ui_stream(chunks)
    return "".join(c["delta"] for c in chunks if c["type"] == "text-delta")


class Gate:
    """A scripted model that blocks before its second chunk until released."""

    def __init__(self) -> None:
        self.reached = anyio.Event()
        self.release = anyio.Event()
        self.only_first = False  # once set, later model calls are no longer blocked
        self._blocked = 0

    async def __call__(self, call: int, index: int) -> None:
        if index == 1 and not (self.only_first and self._blocked):
            self._blocked += 1
            self.reached.set()
            await self.release.wait()

    def app(self, **config: Any) -> Any:
        chunks = [AIMessageChunk(content=t) for t in ("one ", "two ", "three")]
        model = ScriptedChatModel(turns=[chunks], before_chunk=self)
        return create_app(Agent(model, store=MemoryStore()), **config)


async def test_the_stream_has_the_protocol_header_one_done_and_the_run_as_message_id():
    async with client(demo_app()) as c:
        r = await c.post("/api/chat", json={"id": "c1", "messages": [user("What is 25 * 4?")]})
        session = (await c.get("/sessions/c1")).json()
    assert r.status_code == 200
    assert r.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert r.headers["content-type"].startswith("text/event-stream")
    chunks = check_sse_body(r.text)
    check_ui_stream(chunks)
    assert chunks[0]["messageId"] == r.headers["x-run-id"]
    assert chunks[0]["messageMetadata"] == {"runId": r.headers["x-run-id"], "sessionId": "c1"}
    assert chunks[-1]["messageMetadata"]["outcome"] == "success"
    assert chunks[-1]["messageMetadata"]["metrics"]["tool_calls"] == 1
    assert "100" in answer_of(r.text)
    # The chat id is the session id: the turn is saved there.
    assert session["messages"][0] == {"role": "user", "content": "What is 25 * 4?"}


async def test_openapi_declares_both_routes_with_the_error_model():
    async with client(demo_app()) as c:
        schema = (await c.get("/openapi.json")).json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for method, path, statuses in [
        ("post", "/api/chat", {"400", "401", "408", "413", "422", "503"}),
        # 503: with a broker, the chat's run may be looked up on another worker (issue 11).
        ("get", "/api/chat/{chat_id}/stream", {"400", "401", "410", "422", "503"}),
    ]:
        responses = schema["paths"][path][method]["responses"]
        assert {s for s in responses if not s.startswith("2")} == statuses
        assert "204" in responses or method == "post"


BAD = [
    (b"not json", 422),
    (b'{"messages": []}', 422),
    (json.dumps({"id": "c1", "messages": []}).encode(), 422),
    (json.dumps({"id": "c1", "messages": "hi"}).encode(), 422),
    (json.dumps({"id": "a b", "messages": [user("hi")]}).encode(), 400),
    (json.dumps({"id": "x" * 129, "messages": [user("hi")]}).encode(), 400),
    (json.dumps({"id": "c1", "messages": [user("hi")], "trigger": "dance"}).encode(), 400),
    (json.dumps({"id": "c1", "messages": [user("hi"), assistant(text("yo"))]}).encode(), 400),
    (json.dumps({"id": "c1", "messages": [{"role": "robot", "parts": []}]}).encode(), 400),
    (json.dumps({"id": "c1", "messages": [{"role": "user", "parts": [{}]}]}).encode(), 400),
    (
        json.dumps(
            {"id": "c1", "messages": [{"role": "user", "parts": [{"type": "text"}]}]}
        ).encode(),
        400,
    ),
    (json.dumps({"id": "c1", "messages": [user("   ")]}).encode(), 400),
    (json.dumps({"id": "c1", "messages": [{"role": "user"}]}).encode(), 400),
]


@pytest.mark.parametrize(("body", "status"), BAD)
async def test_bad_input_is_a_clear_error_in_the_error_shape_and_starts_nothing(body, status):
    app = demo_app()
    async with client(app) as c:
        r = await c.post("/api/chat", content=body, headers={"content-type": "application/json"})
        sessions = (await c.get("/sessions")).json()["sessions"]
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"code", "message"} and error["message"]
    assert sessions == [] and app.state.agentcast.manager.active_runs == 0


async def test_a_request_during_the_previous_run_supersedes_it_and_is_never_busy():
    gate = Gate()
    app = gate.app(session_policy="reject")
    async with client(app) as c, anyio.create_task_group() as tg:
        first: dict[str, Any] = {}

        async def post_first() -> None:
            r = await c.post("/api/chat", json={"id": "c1", "messages": [user("first")]})
            first["raw"] = r.text

        tg.start_soon(post_first)
        await gate.reached.wait()  # the first run is blocked mid-answer, and stays blocked
        gate.only_first = True  # the next run streams through
        r = await c.post("/api/chat", json={"id": "c1", "messages": [user("second")]})
    assert r.status_code == 200 and answer_of(r.text) == "one two three"
    ended = check_sse_body(first["raw"])
    check_ui_stream(ended)
    assert ended[-1]["messageMetadata"]["outcome"] == "cancelled"
    assert {"type": "abort"} in ended


async def test_requests_one_right_after_the_other_on_a_chat_all_answer():
    async with client(demo_app(session_policy="reject")) as c:
        messages: list[dict[str, Any]] = []
        for number, prompt in enumerate(["My name is Alice.", "What is 2+2?", "What's my name?"]):
            messages.append(user(prompt, id=f"u{number}"))
            r = await c.post("/api/chat", json={"id": "c1", "messages": messages})
            assert r.status_code == 200
            messages.append(assistant(text(answer_of(r.text)), id=f"a{number}"))
    assert "Alice" in messages[-1]["parts"][0]["text"]


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A real uvicorn server in this event loop (ASGITransport does not stream responses)."""
    started = asyncio.Event()

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            started.set()

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = Server(config)
    task = asyncio.create_task(server.serve())
    await started.wait()
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            yield c
    finally:
        server.should_exit = True
        await task


async def test_resume_replays_the_chats_run_in_progress_for_its_owner_only():
    gate = Gate()
    app = gate.app(api_keys={"ka": "alice", "kb": "bob"})
    alice, bob = {"authorization": "Bearer ka"}, {"authorization": "Bearer kb"}
    async with served(app) as c, anyio.create_task_group() as tg:
        assert (await c.get("/api/chat/c1/stream", headers=alice)).status_code == 204
        body = {"id": "c1", "messages": [user("q")]}
        tg.start_soon(lambda: c.post("/api/chat", json=body, headers=alice))
        await gate.reached.wait()
        assert (await c.get("/api/chat/c1/stream", headers=bob)).status_code == 204
        assert (await c.get("/api/chat/c1/stream")).status_code == 401
        assert (await c.get("/api/chat/a%20b/stream", headers=alice)).status_code == 400
        async with c.stream("GET", "/api/chat/c1/stream", headers=alice) as resumed:
            assert resumed.headers["x-vercel-ai-ui-message-stream"] == "v1"
            gate.release.set()
            raw = (await resumed.aread()).decode()
        assert (await c.get("/api/chat/c1/stream", headers=alice)).status_code == 204
    chunks = check_sse_body(raw)
    check_ui_stream(chunks)  # from its start: start first
    assert answer_of(raw) == "one two three"


async def test_regenerate_answers_the_last_user_message_again():
    async with client(demo_app()) as c:
        messages = [
            user("My name is Alice.", id="u0"),
            assistant(text("Nice to meet you, Alice!"), id="a0"),
            user("What's my name?", id="u1"),
            assistant(text("Your name is Bob."), id="a1"),  # the answer to regenerate
        ]
        body = {"id": "c1", "messages": messages, "trigger": "regenerate-message"}
        r = await c.post("/api/chat", json=body | {"messageId": "a1"})
    assert r.status_code == 200 and "Alice" in answer_of(r.text)


async def test_client_held_history_on_a_fresh_chat_is_answered_from():
    async with client(demo_app()) as c:
        messages = [
            user("My name is Bob.", id="u0"),
            assistant(text("Nice to meet you, Bob!"), id="a0"),
            user("What's my name?", id="u1"),
        ]
        r = await c.post("/api/chat", json={"id": "fresh", "messages": messages})
    assert "Bob" in answer_of(r.text)


async def test_every_part_the_stream_makes_is_accepted_back_in_messages():
    async with client(demo_app()) as c:
        first = await c.post(
            "/api/chat",
            json={
                "id": "c1",
                "messages": [user("What items are located where the cat is hiding?")],
            },
        )
        parts = _parts_of(check_sse_body(first.text))
        assert {p["type"] for p in parts} >= {"data-agentcast-llm", "tool-get_items", "text"}
        messages = [user("What items are located where the cat is hiding?"), assistant(*parts)]
        messages.append(user("What's my name?", id="u2"))
        r = await c.post("/api/chat", json={"id": "c1", "messages": messages})
    assert r.status_code == 200 and answer_of(r.text)


def _parts_of(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The message parts a client builds from chunks (enough of processUIMessageStream)."""
    parts: list[dict[str, Any]] = []
    by_id: dict[str, dict[str, Any]] = {}
    for c in chunks:
        kind = c["type"]
        if kind == "start-step":
            parts.append({"type": "step-start"})
        elif kind in ("text-start", "reasoning-start"):
            by_id[c["id"]] = {"type": kind.split("-")[0], "text": "", "state": "done"}
            parts.append(by_id[c["id"]])
        elif kind in ("text-delta", "reasoning-delta"):
            by_id[c["id"]]["text"] += c["delta"]
        elif kind == "tool-input-available":
            part = {"type": f"tool-{c['toolName']}", "toolCallId": c["toolCallId"]}
            by_id[c["toolCallId"]] = part | {"state": "input-available", "input": c["input"]}
            parts.append(by_id[c["toolCallId"]])
        elif kind == "tool-output-available":
            by_id[c["toolCallId"]].update(state="output-available", output=c["output"])
        elif kind.startswith("data-"):
            old = next((p for p in parts if p["type"] == kind and p.get("id") == c.get("id")), None)
            if old is not None and "id" in c:
                old["data"] = c["data"]
            else:
                parts.append(dict(c))
    return parts


def test_ui_messages_become_one_model_turn_per_step_with_a_result_per_tool_call():
    step = {"type": "step-start"}
    turn = chat_turn(
        [
            {"id": "s", "role": "system", "parts": [text("Be brief.")]},
            user("Where is the cat, and 2+2?"),
            assistant(
                step,
                {"type": "reasoning", "text": "Let me look."},
                {
                    "type": "tool-where_cat_is_hiding",
                    "toolCallId": "t1",
                    "state": "output-available",
                    "input": {},
                    "output": "under the bed",
                },
                {
                    "type": "dynamic-tool",
                    "toolName": "add",
                    "toolCallId": "t2",
                    "state": "output-error",
                    "input": {"a": 2},
                    "errorText": "boom",
                },
                {
                    "type": "tool-search",
                    "toolCallId": "t3",
                    "state": "input-available",
                    "input": {"q": 1},
                },
                {"type": "data-agentcast-llm", "id": "n1", "data": {"text": "socks"}},
                step,
                {"type": "file", "url": "data:,", "mediaType": "text/plain"},
                text("It is under the bed."),
            ),
            user("Thanks!", id="u2"),
        ]
    )
    assert turn.prompt == "Thanks!"
    assert turn.history == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Where is the cat, and 2+2?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "t1", "name": "where_cat_is_hiding", "args": {}},
                {"id": "t2", "name": "add", "args": {"a": 2}},
                {"id": "t3", "name": "search", "args": {"q": 1}},
            ],
        },
        {
            "role": "tool",
            "content": "under the bed",
            "tool_call_id": "t1",
            "name": "where_cat_is_hiding",
        },
        {
            "role": "tool",
            "content": "Error: boom",
            "tool_call_id": "t2",
            "name": "add",
            "status": "error",
        },
        {
            "role": "tool",
            "content": "the tool did not finish (cancelled)",
            "tool_call_id": "t3",
            "name": "search",
            "status": "cancelled",
        },
        {"role": "assistant", "content": "It is under the bed."},
    ]


@pytest.mark.parametrize(
    ("messages", "trigger", "message"),
    [
        ([], "submit-message", "non-empty list"),
        ([user("a"), assistant(text("b"))], "submit-message", "must be the user's"),
        ([assistant(text("b"))], "regenerate-message", "must be the user's"),
        ([user("a")], "resume-stream", "trigger must be"),
        ([{"role": "user", "parts": [{"type": "tool-x"}]}], "submit-message", "toolCallId"),
    ],
)
def test_malformed_messages_say_what_is_wrong(messages, trigger, message):
    with pytest.raises(InvalidInput, match=message):
        chat_turn(messages, trigger)
