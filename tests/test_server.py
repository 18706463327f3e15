"""The server: API contract in-process, lifetimes (disconnect, cancel, shutdown) on real uvicorn."""

from __future__ import annotations

import asyncio
import json

import anyio
import httpx
import pytest
import uvicorn
from langchain_core.messages import AIMessageChunk
from starlette.testclient import TestClient

from agentcast import Agent
from agentcast.encoders.sse import decode_event
from agentcast.events import from_json
from agentcast.models import OfflineChatModel
from agentcast.models.demo_tools import demo_tools
from agentcast.server import create_app
from agentcast.sessions import MemoryStore
from agentcast.testing import ScriptedChatModel, check_invariants

pytestmark = pytest.mark.anyio


def demo_app(**config):
    return create_app(
        Agent(OfflineChatModel(token_delay=0), demo_tools(), store=MemoryStore()), **config
    )


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def parse_frame(block: str):
    """Decode one SSE message, checking its framing: `event:`, then `data:`, then `id:`."""
    lines = block.split("\n")
    assert [line.partition(": ")[0] for line in lines] == ["event", "data", "id"], block
    event = decode_event(lines[0][len("event: ") :], lines[1][len("data: ") :])
    assert (int(lines[2][len("id: ") :]), lines[0][len("event: ") :]) == (event.seq, event.type)
    return event


def parse_sse(text: str):
    """Parse a whole SSE body into (events, comments); checks the framing of every message."""
    events, comments = [], []
    for block in text.split("\n\n"):
        if not block:
            continue
        lines = block.split("\n")
        if all(line.startswith(":") for line in lines):
            comments.extend(lines)
            continue
        events.append(parse_frame(block))
    return events, comments


class Gate:
    """A scripted model that blocks before chunk `at` until released."""

    def __init__(self, at: int = 1) -> None:
        self.at = at
        self.reached = anyio.Event()
        self.release = anyio.Event()

    async def __call__(self, call: int, index: int) -> None:
        if index == self.at:
            self.reached.set()
            await self.release.wait()


def gated_app(gate: Gate, **config):
    model = ScriptedChatModel(
        turns=[[AIMessageChunk(content=t) for t in ("one ", "two ", "three")]], before_chunk=gate
    )
    return create_app(Agent(model, store=MemoryStore()), **config)


# -- the API contract ---------------------------------------------------------------------------


async def test_invoke_json_is_the_seed_compatible_result():
    async with client(demo_app()) as c:
        r = await c.post("/invoke", json={"prompt": "What is 25 * 4?", "session_id": "s1"})
    assert r.status_code == 200
    body = r.json()
    assert {"output", "session_id", "run_id", "steps", "metrics"} <= set(body)
    assert "100" in body["output"] and body["session_id"] == "s1" and body["outcome"] == "success"
    assert r.headers["x-run-id"] == body["run_id"]


async def test_invoke_stream_is_framed_sse_with_the_right_headers():
    async with client(demo_app()) as c:
        r = await c.post("/invoke", json={"prompt": "What is 2+3 and 4*5?", "stream": True})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["cache-control"] == "no-cache" and r.headers["x-accel-buffering"] == "no"
    events, _ = parse_sse(r.text)
    check_invariants(events)
    assert events[0].run_id == r.headers["x-run-id"]
    assert events[-1].type == "agent_end" and "20" in events[-1].output


async def test_stream_tokens_false_leaves_out_tokens_only():
    async with client(demo_app()) as c:
        r = await c.post(
            "/invoke", json={"prompt": "What is 25 * 4?", "stream": True, "stream_tokens": False}
        )
    events, _ = parse_sse(r.text)
    assert not [e for e in events if e.type == "llm_token"] and events[-1].type == "agent_end"


async def test_resume_with_last_event_id_or_after_gives_exactly_the_tail():
    async with client(demo_app()) as c:
        r = await c.post("/invoke", json={"prompt": "What is (3 + 4) * 5?", "stream": True})
        full, _ = parse_sse(r.text)
        run_id = r.headers["x-run-id"]
        for k in (0, 5, len(full) - 2):
            by_header = await c.get(f"/runs/{run_id}/stream", headers={"Last-Event-ID": str(k)})
            by_query = await c.get(f"/runs/{run_id}/stream", params={"after": k})
            assert parse_sse(by_header.text)[0] == full[k + 1 :] == parse_sse(by_query.text)[0]
        last = await c.get(f"/runs/{run_id}/stream", params={"after": full[-1].seq})
        assert parse_sse(last.text)[0] == []


@pytest.mark.parametrize(
    ("header", "status", "code"),
    [("x", 400, "invalid_input"), ("-5", 400, "invalid_input"), ("999", 400, "invalid_input")],
)
async def test_bad_last_event_ids_are_clear_400s(header, status, code):
    async with client(demo_app()) as c:
        r = await c.post("/invoke", json={"prompt": "hi", "stream": True})
        bad = await c.get(
            f"/runs/{r.headers['x-run-id']}/stream", headers={"Last-Event-ID": header}
        )
    assert bad.status_code == status and bad.json()["error"]["code"] == code


async def test_unknown_ids_are_404():
    async with client(demo_app()) as c:
        for method, url in (
            ("GET", "/runs/nope"),
            ("GET", "/runs/nope/stream"),
            ("POST", "/runs/nope/cancel"),
            ("GET", "/sessions/nope"),
            ("DELETE", "/sessions/nope"),
        ):
            r = await c.request(method, url)
            assert r.status_code == 404, url
            assert r.json()["error"]["code"].endswith("_not_found")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "JSON decode error"),
        (json.dumps({}).encode(), "prompt: Field required"),
        (json.dumps({"prompt": "  "}).encode(), "the prompt is empty"),
        (json.dumps({"prompt": 7}).encode(), "prompt: Input should be a valid string"),
        (json.dumps({"prompt": "hi", "stream": "maybe"}).encode(), "stream"),
        (json.dumps({"prompt": "hi", "session_id": ["x"]}).encode(), "session_id"),
        (json.dumps(["prompt"]).encode(), "body"),
    ],
)
async def test_bad_bodies_are_clear_422s_and_change_nothing(body, fragment):
    app = demo_app()
    async with client(app) as c:
        r = await c.post("/invoke", content=body, headers={"content-type": "application/json"})
        sessions = (await c.get("/sessions")).json()["sessions"]
    assert r.status_code == 422 and fragment in r.json()["error"]["message"]
    assert sessions == [] and app.state.agentcast.manager.active_runs == 0


async def test_oversized_bodies_are_413():
    async with client(demo_app(max_body_bytes=1000)) as c:
        r = await c.post("/invoke", json={"prompt": "x" * 5000})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"


async def test_sessions_list_get_delete():
    async with client(demo_app()) as c:
        await c.post("/invoke", json={"prompt": "My name is Alice", "session_id": "a"})
        await c.post("/invoke", json={"prompt": "What's my name?", "session_id": "a"})
        listed = (await c.get("/sessions")).json()["sessions"]
        assert [(s["session_id"], s["title"], s["message_count"]) for s in listed] == [
            ("a", "My name is Alice", 4)
        ]
        history = (await c.get("/sessions/a")).json()["messages"]
        assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
        assert "Alice" in history[-1]["content"]
        assert (await c.delete("/sessions/a")).status_code == 204
        assert (await c.get("/sessions/a")).status_code == 404


async def test_health_metrics_and_openapi():
    async with client(demo_app()) as c:
        await c.post("/invoke", json={"prompt": "What is 25 * 4?"})
        health = (await c.get("/healthz")).json()
        metrics = (await c.get("/metrics")).text
        schema = (await c.get("/openapi.json")).json()
    assert health["status"] == "ok" and "offline demo" in health["agent"]
    assert 'agentcast_runs_total{outcome="success"} 1.0' in metrics
    assert "agentcast_tokens_total" in metrics and "agentcast_ttft_seconds_bucket" in metrics
    assert "agentcast_active_runs 0.0" in metrics and "agentcast_active_streams 0.0" in metrics
    assert {
        "/invoke",
        "/runs/{run_id}/stream",
        "/runs/{run_id}/cancel",
        "/sessions/{session_id}",
    } <= set(schema["paths"])


async def test_the_web_page_is_served():
    async with client(demo_app()) as c:
        r = await c.get("/")
    assert r.status_code == 200 and "agentcast" in r.text.lower()


# -- auth and CORS --------------------------------------------------------------------------------


async def test_api_keys_own_their_runs_and_sessions():
    app = demo_app(api_keys={"key-a": "alice", "key-b": "bob"})
    a = {"Authorization": "Bearer key-a"}
    b = {"Authorization": "Bearer key-b"}
    async with client(app) as c:
        assert (await c.post("/invoke", json={"prompt": "hi"})).status_code == 401
        assert (
            await c.post("/invoke", json={"prompt": "hi"}, headers={"Authorization": "Bearer nope"})
        ).status_code == 401
        r = await c.post(
            "/invoke", json={"prompt": "My name is Alice", "session_id": "s"}, headers=a
        )
        run_id = r.json()["run_id"]
        assert (await c.get(f"/runs/{run_id}", headers=a)).status_code == 200
        assert (await c.get(f"/runs/{run_id}", headers=b)).status_code == 404
        assert (await c.get("/sessions/s", headers=b)).status_code == 404
        assert (await c.get("/sessions", headers=b)).json()["sessions"] == []
        # B's "s" is B's own session (see tests/test_ownership.py): A's is untouched.
        assert (
            await c.post("/invoke", json={"prompt": "hi", "session_id": "s"}, headers=b)
        ).status_code == 200
        assert len((await c.get("/sessions/s", headers=a)).json()["messages"]) == 2


async def test_cors_is_closed_unless_configured():
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    async with client(demo_app()) as c:
        closed = await c.options("/invoke", headers=preflight)
    async with client(demo_app(cors_origins=["https://app.example"])) as c:
        opened = await c.options("/invoke", headers=preflight)
    assert "access-control-allow-origin" not in closed.headers
    assert opened.headers["access-control-allow-origin"] == "https://app.example"


# -- session policies ------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["reject", "enqueue", "interrupt"])
async def test_a_second_request_on_a_busy_session_follows_the_policy(policy):
    gate = Gate(at=1)
    app = gated_app(gate, session_policy=policy)
    manager = app.state.agentcast.manager
    first = manager.start("first", session_id="s")
    await gate.reached.wait()
    async with client(app) as c:
        if policy == "reject":
            r = await c.post("/invoke", json={"prompt": "second", "session_id": "s"})
            assert r.status_code == 409 and r.json()["error"]["code"] == "session_busy"
            gate.release.set()
            assert (await first.run.wait()).outcome == "success"
            return
        second = manager.start("second", session_id="s")
        if policy == "interrupt":
            assert (await first.run.wait()).outcome == "cancelled"
        gate.release.set()
        await second.run.wait()
        history = (await c.get("/sessions/s")).json()["messages"]
    roles = [(m["role"], m.get("status")) for m in history]
    if policy == "enqueue":
        assert roles == [("user", None), ("assistant", None), ("user", None), ("assistant", None)]
    else:  # the first turn was stopped: its partial answer is kept, marked
        assert roles == [
            ("user", None),
            ("assistant", "interrupted"),
            ("user", None),
            ("assistant", None),
        ]


async def test_deleting_a_session_with_a_run_in_flight_is_409_and_loses_nothing():
    # Before, the delete was answered (a 404 here: nothing saved yet) and the run then saved.
    gate = Gate(at=1)
    app = gated_app(gate)
    manager = app.state.agentcast.manager
    running = manager.start("first", session_id="s")
    await gate.reached.wait()
    async with client(app) as c:
        busy = await c.delete("/sessions/s")
        assert busy.status_code == 409 and busy.json()["error"]["code"] == "session_busy"
        assert "cancel" in busy.json()["error"]["message"]
        gate.release.set()
        assert (await running.run.wait()).outcome == "success"
        assert len((await c.get("/sessions/s")).json()["messages"]) == 2  # the turn was saved
        assert (await c.delete("/sessions/s")).status_code == 204
        assert (await c.get("/sessions/s")).status_code == 404


async def test_a_run_asked_for_while_its_session_is_being_deleted_waits_or_is_409(monkeypatch):
    # Before: a run that came in while the store was still deleting started at once, loaded
    # the history being deleted (its model saw it) and saved its turn after the delete.
    model = ScriptedChatModel(turns=[[AIMessageChunk(content="ok")]])
    store = MemoryStore()
    app = create_app(Agent(model, store=store))
    server = app.state.agentcast
    async with client(app) as c:
        assert (await c.post("/invoke", json={"prompt": "old", "session_id": "s"})).is_success
        deleting, go_on = asyncio.Event(), asyncio.Event()
        delete = store.delete

        async def slow_delete(session_id, **kwargs):  # a store that takes its time
            deleting.set()
            await go_on.wait()
            return await delete(session_id, **kwargs)

        monkeypatch.setattr(store, "delete", slow_delete)
        removal = asyncio.create_task(c.delete("/sessions/s"))
        await deleting.wait()
        busy = await c.post("/invoke", json={"prompt": "new", "session_id": "s"})
        assert busy.status_code == 409 and "being deleted" in busy.json()["error"]["message"]
        twice = await c.delete("/sessions/s")
        assert twice.status_code == 409 and twice.json()["error"]["code"] == "session_busy"
        queued = asyncio.create_task(
            server.start_run("new", session_id="s", owner=None, policy="enqueue")
        )
        await asyncio.sleep(0)  # one loop turn: the queued run reaches its wait (FIFO)
        assert not queued.done() and len(model.calls) == 1
        go_on.set()
        assert (await removal).status_code == 204
        fresh = await queued
        assert (await fresh.run.wait()).outcome == "success"
    assert [m.content for m in model.calls[-1]] == ["new"], "the deleted history was not seen"
    assert [m["content"] for m in await store.load("s")] == ["new", "ok"]


# -- WebSocket ----------------------------------------------------------------------------------


def test_websocket_start_cancel_and_errors():
    app = demo_app()
    with TestClient(app) as tc, tc.websocket_connect("/ws") as ws:
        ws.send_json({"type": "start", "prompt": "What is 25 * 4?", "session_id": "w"})
        started = ws.receive_json()
        assert started["type"] == "run_started" and started["session_id"] == "w"
        events = []
        while not events or events[-1].type != "agent_end":
            events.append(from_json(ws.receive_text()))
        check_invariants(events)
        assert "100" in events[-1].output
        ws.send_json({"type": "resume", "run_id": started["run_id"], "after": events[-3].seq})
        tail = [from_json(ws.receive_text()) for _ in range(2)]
        assert tail == events[-2:]
        ws.send_json({"type": "start", "prompt": ""})
        assert ws.receive_json() == {
            "type": "ws_error",
            "code": "invalid_input",
            "message": "prompt: Value error, the prompt is empty",
        }
        ws.send_json({"type": "dance"})
        assert ws.receive_json()["type"] == "ws_error"
        ws.send_text("not json")
        assert ws.receive_json()["code"] == "invalid_input"
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}


# -- real uvicorn: disconnect, cancel, shutdown ----------------------------------------------------


class Served:
    """A real uvicorn server on 127.0.0.1, started in the test's event loop."""

    def __init__(self, app) -> None:
        started = asyncio.Event()

        class Server(uvicorn.Server):
            async def startup(self, sockets=None):
                await super().startup(sockets)
                started.set()

        self.server = Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        )
        self.started = started
        self.app = app

    async def __aenter__(self):
        self.task = asyncio.create_task(self.server.serve())
        await self.started.wait()
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc):
        self.server.should_exit = True
        await self.task


class Reader:
    """Reads SSE events off one live response, across several `until` calls."""

    def __init__(self, response: httpx.Response) -> None:
        self.chunks = response.aiter_text()
        self.buffer = ""
        self.comments: list[str] = []

    async def until(self, predicate, *, on_comment: bool = False) -> list:
        events = []
        while True:
            while "\n\n" in self.buffer:
                block, self.buffer = self.buffer.split("\n\n", 1)
                if block.startswith(":"):
                    self.comments.append(block)
                    if on_comment:
                        return events
                    continue
                event = parse_frame(block)
                events.append(event)
                if predicate(event):
                    return events
            try:
                self.buffer += await self.chunks.__anext__()
            except StopAsyncIteration:
                return events

    async def until_comment(self) -> list:
        """Read until a comment arrives; return the events read meanwhile."""
        return await self.until(lambda e: False, on_comment=True)


@pytest.mark.parametrize(("policy", "outcome"), [("cancel", "cancelled"), ("continue", "success")])
async def test_disconnect_policy_on_a_real_server(policy, outcome):
    gate = Gate(at=1)
    app = gated_app(gate, disconnect=policy)
    async with Served(app) as served, httpx.AsyncClient(base_url=served.url) as c:
        async with c.stream("POST", "/invoke", json={"prompt": "go", "stream": True}) as r:
            run_id = r.headers["x-run-id"]
            await Reader(r).until(lambda e: e.type == "llm_token")
        managed = app.state.agentcast.manager.get(run_id)
        await managed.idle.wait()  # the server saw the disconnect
        gate.release.set()
        result = await managed.run.wait()
    assert result.outcome == outcome


async def test_grace_period_cancels_only_when_nobody_comes_back():
    gate = Gate(at=1)
    app = gated_app(gate, disconnect="grace", grace_period=0.05)
    async with Served(app) as served, httpx.AsyncClient(base_url=served.url) as c:
        async with c.stream("POST", "/invoke", json={"prompt": "go", "stream": True}) as r:
            run_id = r.headers["x-run-id"]
            seen = await Reader(r).until(lambda e: e.type == "llm_token")
        managed = app.state.agentcast.manager.get(run_id)
        assert (await managed.run.wait()).outcome == "cancelled"
        # The log is complete anyway: a late reader gets the rest, ending with agent_end.
        rest = (
            await c.get(f"/runs/{run_id}/stream", headers={"Last-Event-ID": str(seen[-1].seq)})
        ).text
    tail, _ = parse_sse(rest)
    check_invariants(seen + tail)


async def test_cancel_endpoint_stops_a_live_run_with_closers():
    gate = Gate(at=1)
    app = gated_app(gate)
    async with Served(app) as served, httpx.AsyncClient(base_url=served.url) as c:
        async with c.stream(
            "POST", "/invoke", json={"prompt": "go", "stream": True, "session_id": "c"}
        ) as r:
            reader = Reader(r)
            seen = await reader.until(lambda e: e.type == "llm_token")
            assert (await c.post(f"/runs/{r.headers['x-run-id']}/cancel")).status_code == 202
            seen += await reader.until(lambda e: e.type == "agent_end")
        history = (await c.get("/sessions/c")).json()["messages"]
    check_invariants(seen)
    assert seen[-1].outcome == "cancelled"
    assert history[-1].pop("metadata")["outcome"] == "cancelled"
    assert history[-1] == {"role": "assistant", "content": "one ", "status": "interrupted"}


async def test_shutdown_ends_every_stream_with_a_terminal_event():
    gate = Gate(at=1)
    app = gated_app(gate)
    async with (
        Served(app) as served,
        httpx.AsyncClient(base_url=served.url) as c,
        c.stream("POST", "/invoke", json={"prompt": "go", "stream": True}) as r,
    ):
        reader = Reader(r)
        seen = await reader.until(lambda e: e.type == "llm_token")
        await app.state.agentcast.manager.aclose()  # what the lifespan / agentcast serve do
        seen += await reader.until(lambda e: e.type == "agent_end")
    check_invariants(seen)
    assert seen[-1].outcome == "cancelled"


async def test_heartbeat_comments_while_the_run_is_silent():
    gate = Gate(at=1)
    app = gated_app(gate, heartbeat=0.02)
    async with (
        Served(app) as served,
        httpx.AsyncClient(base_url=served.url) as c,
        c.stream("POST", "/invoke", json={"prompt": "go", "stream": True}) as r,
    ):
        reader = Reader(r)
        seen = await reader.until(lambda e: e.type == "llm_token")
        seen += await reader.until_comment()  # the model is blocked: only a heartbeat can come
        gate.release.set()
        seen += await reader.until(lambda e: e.type == "agent_end")
    assert ": ping" in reader.comments
    check_invariants(seen)


async def test_the_conversation_survives_a_server_restart_on_sqlite(tmp_path):
    from agentcast.sessions.sqlite import SQLiteStore

    def app():
        store = SQLiteStore(tmp_path / "sessions.db")
        return create_app(Agent(OfflineChatModel(token_delay=0), demo_tools(), store=store))

    first = app()
    async with Served(first) as served, httpx.AsyncClient(base_url=served.url) as c:
        await c.post("/invoke", json={"prompt": "My name is Alice", "session_id": "r"})
    second = app()  # a new process would build exactly this
    async with Served(second) as served, httpx.AsyncClient(base_url=served.url) as c:
        answer = (
            await c.post("/invoke", json={"prompt": "What's my name?", "session_id": "r"})
        ).json()
        history = (await c.get("/sessions/r")).json()["messages"]
    assert "Alice" in answer["output"] and len(history) == 4
