"""Ownership with API keys: each key's sessions and runs are its own, on every entry point.

A session id names a session within its owner's namespace, so another key's `sa` is simply
another session: it never reads, appends to, blocks, cancels or waits on the first key's. A
foreign run or session is indistinguishable from a missing one (same status, same body), and
the code serving it never touches the other key's data (asserted on the store's calls, which
is what makes the answer time the same).
"""

from __future__ import annotations

import anyio
import httpx
import pytest
from langchain_core.messages import AIMessageChunk
from starlette.testclient import TestClient

from agentcast import Agent, wrap
from agentcast.errors import ConfigError
from agentcast.events import from_json
from agentcast.models import OfflineChatModel
from agentcast.models.demo_tools import demo_tools
from agentcast.server import create_app
from agentcast.sessions import MemoryStore
from agentcast.testing import ScriptedChatModel
from tests.test_server import Reader, Served, client

pytestmark = pytest.mark.anyio

KEYS = {"KEYA": "alice", "KEYB": "bob"}
A = {"Authorization": "Bearer KEYA"}
B = {"Authorization": "Bearer KEYB"}


class SpyStore(MemoryStore):
    """A memory store that records the session keys each call was asked about."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[str] = []

    async def load(self, session_id):
        self.keys.append(session_id)
        return await super().load(session_id)

    async def append(self, session_id, messages, *, actor_id=None):
        self.keys.append(session_id)
        await super().append(session_id, messages, actor_id=actor_id)

    async def info(self, session_id):
        self.keys.append(session_id)
        return await super().info(session_id)

    async def delete(self, session_id):
        self.keys.append(session_id)
        return await super().delete(session_id)


def parse_api_keys(items):
    from agentcast.server import parse_api_keys as parse

    return parse(items)


def demo(store=None, **config):
    agent = Agent(OfflineChatModel(token_delay=0), demo_tools(), store=store or MemoryStore())
    return create_app(agent, **config)


def read_run(ws) -> list:
    events = []
    while not events or events[-1].type != "agent_end":
        events.append(from_json(ws.receive_text()))
    return events


def test_another_key_starting_on_a_session_id_over_websocket_gets_its_own_session():
    app = demo(api_keys=KEYS)
    with TestClient(app) as tc:
        r = tc.post("/invoke", json={"prompt": "My name is Alice", "session_id": "sa"}, headers=A)
        assert r.status_code == 200
        with tc.websocket_connect("/ws?token=KEYB") as ws:
            ws.send_json({"type": "start", "prompt": "What's my name?", "session_id": "sa"})
            started = ws.receive_json()
            assert started["type"] == "run_started" and started["session_id"] == "sa"
            events = read_run(ws)
        alice = tc.get("/sessions/sa", headers=A).json()["messages"]
        bob = tc.get("/sessions/sa", headers=B).json()["messages"]
    assert "Alice" not in str(events[-1].output)
    assert {e.session_id for e in events} == {"sa"}  # the caller's own id, not a storage key
    assert [m["content"] for m in alice if m["role"] == "user"] == ["My name is Alice"]
    assert [m["content"] for m in bob if m["role"] == "user"] == ["What's my name?"]


class FirstCallGate:
    """Holds the model's first call (the owner's turn) before its second chunk."""

    def __init__(self) -> None:
        self.release = anyio.Event()

    async def __call__(self, call: int, index: int) -> None:
        if call == 0 and index == 1:
            await self.release.wait()


@pytest.mark.parametrize("policy", ["reject", "enqueue", "interrupt"])
async def test_another_key_on_a_busy_session_id_never_touches_the_owners_run(policy):
    gate = FirstCallGate()
    model = ScriptedChatModel(
        turns=[[AIMessageChunk(content=t) for t in ("one ", "two ", "three")]], before_chunk=gate
    )
    store = SpyStore()
    app = create_app(Agent(model, store=store), session_policy=policy, api_keys=KEYS)
    async with Served(app) as served, httpx.AsyncClient(base_url=served.url) as c:
        body = {"prompt": "first", "session_id": "sa", "stream": True}
        async with c.stream("POST", "/invoke", json=body, headers=A) as first:
            reader = Reader(first)
            await reader.until(lambda e: e.type == "llm_token")  # A's turn runs, nothing saved
            owner_keys = set(store.keys)
            with anyio.fail_after(30):  # the code as found waited on A's run (enqueue)
                second = await c.post(
                    "/invoke", json={"prompt": "second", "session_id": "sa"}, headers=B
                )
            assert second.status_code == 200, second.text
            assert second.json()["outcome"] == "success"
            status = (await c.get(f"/runs/{first.headers['x-run-id']}", headers=A)).json()
            assert status["status"] == "running"  # not cancelled (interrupt), not waited on
            gate.release.set()
            events = await reader.until(lambda e: e.type == "agent_end")
        alice = (await c.get("/sessions/sa", headers=A)).json()["messages"]
        bob = (await c.get("/sessions/sa", headers=B)).json()["messages"]
    assert events[-1].outcome == "success"
    assert [m["content"] for m in alice] == ["first", "one two three"]
    assert [m["content"] for m in bob] == ["second", "one two three"]
    assert [m.content for m in model.calls[1]] == ["second"]  # B's call never saw A's history
    assert owner_keys.isdisjoint(set(store.keys) - owner_keys)


async def test_a_foreign_session_answers_exactly_like_a_missing_one_and_is_never_read():
    store = SpyStore()
    app = demo(store, api_keys=KEYS)
    fresh = demo(api_keys=KEYS)  # where "sa" was never used by anyone
    async with client(app) as c, client(fresh) as f:
        for n in range(20):  # a large session: reading it would take measurably longer
            await c.post(
                "/invoke", json={"prompt": f"My name is Alice {n}", "session_id": "sa"}, headers=A
            )
        owner_keys = set(store.keys)
        store.keys.clear()
        for method, path in [("GET", "/sessions/sa"), ("DELETE", "/sessions/sa")]:
            foreign = await c.request(method, path, headers=B)
            missing = await f.request(method, path, headers=B)
            assert (foreign.status_code, foreign.json()) == (missing.status_code, missing.json())
            assert foreign.status_code == 404
        listed = (await c.get("/sessions", headers=B)).json()
        assert listed == {"sessions": []}
        foreign = await c.post("/invoke", json={"prompt": "hi", "session_id": "sa"}, headers=B)
        missing = await f.post("/invoke", json={"prompt": "hi", "session_id": "sa"}, headers=B)
        assert foreign.status_code == missing.status_code == 200
        assert foreign.json()["session_id"] == "sa"
        assert store.keys and owner_keys.isdisjoint(store.keys)  # B never touched A's rows
        still = (await c.get("/sessions/sa", headers=A)).json()["messages"]
    assert len(still) == 40


async def test_a_foreign_run_answers_exactly_like_an_unknown_one():
    app = demo(api_keys=KEYS)
    fresh = demo(api_keys=KEYS)
    async with client(app) as c, client(fresh) as f:
        run_id = (await c.post("/invoke", json={"prompt": "hi"}, headers=A)).json()["run_id"]
        for method, path in [
            ("GET", f"/runs/{run_id}"),
            ("GET", f"/runs/{run_id}/stream"),
            ("POST", f"/runs/{run_id}/cancel"),
        ]:
            foreign = await c.request(method, path, headers=B)
            missing = await f.request(method, path, headers=B)
            assert foreign.status_code == 404
            assert (foreign.status_code, foreign.json()) == (missing.status_code, missing.json())
    with TestClient(app) as tc, TestClient(fresh) as tf:
        run_id = tc.post("/invoke", json={"prompt": "hi"}, headers=A).json()["run_id"]
        for message in [{"type": "resume", "run_id": run_id}, {"type": "cancel", "run_id": run_id}]:
            answers = []
            for test_client in (tc, tf):
                with test_client.websocket_connect("/ws?token=KEYB") as ws:
                    ws.send_json(message)
                    answers.append(ws.receive_json())
            assert answers[0] == answers[1] and answers[0]["type"] == "ws_error"


# -- owners of keys ---------------------------------------------------------------------------


def test_unnamed_keys_are_owned_by_a_digest_of_the_key_not_by_their_position():
    both = parse_api_keys(["KX", "KY"])
    assert parse_api_keys(["KY"])["KY"] == both["KY"]  # removing KX hands nothing to KY
    assert both["KX"] != both["KY"]
    assert "KY" not in both["KY"]  # the name does not reveal the key
    mixed = parse_api_keys(["key2=KX", "KY"])  # a name that looks positional stays one owner
    assert mixed["KX"] == "key2" and mixed["KY"] != "key2"


@pytest.mark.parametrize(
    "items",
    [
        ["alice=K1", "alice=K2"],  # one name, two keys
        ["alice=K1", "bob=K1"],  # one key, two names
        ["K1", "K1"],
        ["team/a=K1"],  # a name outside the id rule
        ["alice="],  # no key
    ],
)
def test_ambiguous_or_malformed_keys_are_a_start_up_error(items):
    with pytest.raises(ConfigError):
        parse_api_keys(items)


def test_duplicate_owner_names_are_refused_by_the_server_config():
    with pytest.raises(ConfigError):
        create_app(Agent(OfflineChatModel(token_delay=0)), api_keys={"K1": "a", "K2": "a"})


def test_serve_with_duplicate_key_names_exits_2_with_one_line():
    import os
    import subprocess
    import sys

    env = dict(os.environ, AGENTCAST_API_KEYS="alice=K2")
    result = subprocess.run(
        [sys.executable, "-m", "agentcast", "serve", "--port", "0", "--api-key", "alice=K1"],
        capture_output=True,
        text=True,
        timeout=60,  # the code as found started serving here
        env=env,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "alice" in result.stderr and "K1" not in result.stderr and "K2" not in result.stderr


async def test_a_key_keeps_its_sessions_when_another_key_is_removed(tmp_path):
    from agentcast.sessions.sqlite import SQLiteStore

    def app(items):
        store = SQLiteStore(tmp_path / "sessions.db")
        agent = Agent(OfflineChatModel(token_delay=0), demo_tools(), store=store)
        return create_app(agent, api_keys=parse_api_keys(items))

    async with client(app(["KA", "KB"])) as c:
        body = {"prompt": "My name is Bob", "session_id": "b1"}
        assert (
            await c.post("/invoke", json=body, headers={"Authorization": "Bearer KB"})
        ).status_code == 200
    async with client(app(["KB"])) as c:  # KA removed: KB must not move
        r = await c.get("/sessions/b1", headers={"Authorization": "Bearer KB"})
        assert r.status_code == 200
    async with client(app(["KC", "KA"])) as c:  # nobody else inherits it
        for key in ("KC", "KA"):
            r = await c.get("/sessions/b1", headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 404


async def test_a_langgraph_agents_threads_are_scoped_by_owner_too():
    from langchain.agents import create_agent
    from langgraph.checkpoint.memory import InMemorySaver

    graph = create_agent(
        OfflineChatModel(token_delay=0), demo_tools(), checkpointer=InMemorySaver()
    )
    app = create_app(wrap(graph), api_keys=KEYS)
    async with client(app) as c:
        await c.post("/invoke", json={"prompt": "My name is Alice", "session_id": "t"}, headers=A)
        bob = await c.post(
            "/invoke", json={"prompt": "What's my name?", "session_id": "t"}, headers=B
        )
        alice = await c.post(
            "/invoke", json={"prompt": "What's my name?", "session_id": "t"}, headers=A
        )
    assert bob.status_code == 200 and "Alice" not in bob.json()["output"]
    assert "Alice" in alice.json()["output"]
