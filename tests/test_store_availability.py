"""A session store that is down, or accepts connections and never answers, fails fast.

Every store raises `StoreUnavailable` (retryable) within its `timeout`; the server checks the
store at start-up, answers 503 in the error shape while it is down, and reports it on
`GET /readyz` while `GET /healthz` stays liveness only.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest
from starlette.testclient import TestClient

from agentcast import Agent, default_agent
from agentcast.cli import main
from agentcast.errors import StoreUnavailable
from agentcast.models import OfflineChatModel
from agentcast.server import create_app
from agentcast.sessions import MemoryStore, open_store
from agentcast.sessions.postgres import PostgresStore
from agentcast.sessions.redis import RedisStore
from agentcast.sessions.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio

# Generous: only there so that a store that is not bounded fails the test instead of hanging it.
HANG_GUARD = 30


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1 that accepts connections and never sends a byte."""
    connections: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while await reader.read(65536):  # read everything, answer nothing
            pass

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in connections:
            writer.close()
        server.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("scheme", ["postgresql", "redis"])
async def test_a_store_that_accepts_but_never_answers_fails_fast(scheme):
    async with silent_server() as port:
        url = f"{scheme}://127.0.0.1:{port}/0"
        store = (PostgresStore if scheme == "postgresql" else RedisStore)(url, timeout=0.2)
        with anyio.fail_after(HANG_GUARD):
            for call in (store.ping, lambda: store.load("s"), store.list_sessions):
                with pytest.raises(StoreUnavailable, match="did not answer within 0.2 s"):
                    await call()
            with pytest.raises(StoreUnavailable) as info:
                await store.append("s", [{"role": "user", "content": "hi"}])
        assert info.value.retryable
        assert info.value.code == "store_unavailable"


async def test_a_locked_sqlite_database_is_store_unavailable_after_its_timeout(tmp_path):
    path = tmp_path / "s.db"
    store = SQLiteStore(path, timeout=0.2)
    await store.ping()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with anyio.fail_after(HANG_GUARD), pytest.raises(StoreUnavailable):
            await store.append("s", [{"role": "user", "content": "hi"}])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    await store.append("s", [{"role": "user", "content": "hi"}])  # usable again


async def test_an_sqlite_file_that_cannot_be_opened_is_store_unavailable(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StoreUnavailable, match="cannot open"):
        await SQLiteStore(tmp_path / "file" / "s.db").ping()


class SwitchableStore(MemoryStore):
    """A memory store that can be switched off: then every call raises StoreUnavailable."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("the session store memory://test is down")

    async def ping(self) -> None:
        self._check()

    async def load(self, session_id):
        self._check()
        return await super().load(session_id)

    async def append(self, session_id, messages, *, actor_id=None):
        self._check()
        await super().append(session_id, messages, actor_id=actor_id)

    async def list_sessions(self, *, actor_id=None, limit=100):
        self._check()
        return await super().list_sessions(actor_id=actor_id, limit=limit)

    async def info(self, session_id):
        self._check()
        return await super().info(session_id)

    async def delete(self, session_id):
        self._check()
        return await super().delete(session_id)


def down_error(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "store_unavailable"
    assert "memory://test is down" in response.json()["error"]["message"]


def test_the_server_answers_503_while_the_store_is_down_and_readyz_reports_it():
    store = SwitchableStore()
    app = create_app(Agent(OfflineChatModel(token_delay=0), store=store))
    with TestClient(app) as client:
        assert client.get("/readyz").json() == {"status": "ready", "store": "ok"}
        store.down = True
        down_error(client.get("/readyz"))
        assert client.get("/healthz").status_code == 200  # liveness: the process is fine
        down_error(client.post("/invoke", json={"prompt": "hi"}))
        down_error(client.post("/invoke", json={"prompt": "hi", "stream": True}))
        down_error(client.get("/sessions"))
        down_error(client.get("/sessions/s1"))
        down_error(client.delete("/sessions/s1"))
        with client.websocket_connect("/ws") as ws:
            ws.send_json({"type": "start", "prompt": "hi"})
            assert ws.receive_json()["code"] == "store_unavailable"
        store.down = False
        assert client.post("/invoke", json={"prompt": "hi"}).json()["outcome"] == "success"
        assert client.get("/readyz").status_code == 200


def test_a_run_that_finds_the_store_down_makes_the_next_invoke_a_503():
    store = SwitchableStore()
    app = create_app(Agent(OfflineChatModel(token_delay=0), store=store))
    with TestClient(app) as client:
        store.down = True
        first = client.post("/invoke", json={"prompt": "hi"})  # the run's own error (outcome)
        assert first.json()["outcome"] == "error"
        down_error(client.post("/invoke", json={"prompt": "hi"}))


async def test_the_server_does_not_start_when_the_store_does_not_answer():
    app = create_app(default_agent(), store=RedisStore(f"redis://127.0.0.1:{closed_port()}/0"))
    with pytest.raises(StoreUnavailable):
        async with app.router.lifespan_context(app):
            pass


def test_serve_exits_2_with_one_line_naming_the_redacted_store_url(capsys):
    url = f"redis://:s3cret@127.0.0.1:{closed_port()}/0"
    assert main(["serve", "--store", url, "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("agentcast: ")
    assert f"redis://:***@127.0.0.1:{url.rsplit(':', 1)[1]}" in err
    assert "s3cret" not in err


def test_open_store_passes_the_timeout_to_every_backend(tmp_path):
    urls = [f"sqlite:///{tmp_path}/s.db", "postgresql://127.0.0.1/test", "redis://127.0.0.1"]
    assert [open_store(url, timeout=1.5).timeout for url in urls] == [1.5, 1.5, 1.5]  # type: ignore[attr-defined]
