"""Session-store schema versions: old layouts are migrated, each step once, newer ones refused."""

from __future__ import annotations

import sqlite3

import anyio
import psycopg
import pytest
import redis.asyncio
from psycopg import sql
from starlette.testclient import TestClient

from agentcast import Agent
from agentcast.cli import main
from agentcast.errors import ConfigError, SessionFenced
from agentcast.models import OfflineChatModel
from agentcast.server import create_app
from agentcast.sessions import MemoryStore
from agentcast.sessions import postgres as postgres_module
from agentcast.sessions import redis as redis_module
from agentcast.sessions import sqlite as sqlite_module
from agentcast.sessions.postgres import PostgresStore
from agentcast.sessions.redis import RedisStore
from agentcast.sessions.sqlite import SQLiteStore
from agentcast.testing.store_conformance import TURN, turn
from tests.test_sessions import POSTGRES_URL, REDIS_URL, postgres_prefix, redis_prefix

pytestmark = pytest.mark.anyio

# The SQLite tables as the first release wrote them, before schema versions (user_version 0).
SQLITE_V0 = """
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    actor_id   TEXT,
    title      TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE messages (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
    body       BLOB NOT NULL
);
CREATE INDEX messages_by_session ON messages(session_id, id);
INSERT INTO sessions VALUES ('old', 'alice', 'old question', 1, 2);
INSERT INTO messages(session_id, body) VALUES ('old', '{"role":"user","content":"old question"}');
"""


def _sqlite_state(path) -> tuple[int, set[str]]:
    with sqlite3.connect(path) as db:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        indexes = {
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='index'")
        }
    return version, indexes


async def test_sqlite_database_from_before_versions_is_migrated_and_keeps_its_data(tmp_path):
    path = tmp_path / "s.db"
    with sqlite3.connect(path) as db:
        db.executescript(SQLITE_V0)
    store = SQLiteStore(path)
    assert await store.load("old") == [{"role": "user", "content": "old question"}]
    [info] = await store.list_sessions(actor_id="alice")
    assert (info.session_id, info.title, info.message_count) == ("old", "old question", 1)
    version, indexes = _sqlite_state(path)
    assert version == len(sqlite_module.MIGRATIONS) == 4
    assert {"sessions_by_update", "sessions_by_actor"} <= indexes
    await store.append("old", turn("new"))
    assert len(await SQLiteStore(path).load("old")) == 1 + len(turn("new"))


async def test_sqlite_concurrent_setup_applies_each_step_once(tmp_path, monkeypatch):
    # A step that fails when applied twice (CREATE TABLE without IF NOT EXISTS) and counts.
    probe = ("CREATE TABLE probe (n INTEGER)", "INSERT INTO probe VALUES (1)")
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", (*sqlite_module.MIGRATIONS, probe))
    path = tmp_path / "s.db"
    stores = [SQLiteStore(path) for _ in range(4)]
    async with anyio.create_task_group() as tg:
        for store in stores:
            tg.start_soon(store.setup)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM probe").fetchone()[0] == 1
        assert db.execute("PRAGMA user_version").fetchone()[0] == 5


async def test_sqlite_database_newer_than_the_code_is_refused(tmp_path):
    path = tmp_path / "s.db"
    await SQLiteStore(path).append("s", TURN)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    store = SQLiteStore(path)
    with pytest.raises(ConfigError, match="schema version 99, newer than the 4"):
        await store.setup()
    with pytest.raises(ConfigError, match="upgrade agentcast"):
        await store.load("s")
    assert _sqlite_state(path)[0] == 99, "a refused database is left as it was"


async def test_sqlite_database_of_the_previous_schema_gets_the_fence_column(tmp_path):
    path = tmp_path / "s.db"
    await SQLiteStore(path).append("old", turn("old"))
    with sqlite3.connect(path) as db:  # back to the schema of the release before fencing
        db.execute("ALTER TABLE sessions DROP COLUMN deleted")
        db.execute("ALTER TABLE sessions DROP COLUMN fence")
        db.execute("PRAGMA user_version = 2")
    store = SQLiteStore(path)
    await store.append("old", turn("fenced"), fence=5)
    with pytest.raises(SessionFenced):
        await store.append("old", turn("late"), fence=4)
    assert await store.load("old") == [*turn("old"), *turn("fenced")]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT fence FROM sessions").fetchall() == [(5,)]
        assert db.execute("PRAGMA user_version").fetchone()[0] == 4


async def test_sqlite_database_of_the_previous_schema_gets_the_tombstone_column(tmp_path):
    path = tmp_path / "s.db"
    await SQLiteStore(path).append("old", turn("old"), fence=3)
    with sqlite3.connect(path) as db:  # back to the schema of the release before tombstones
        db.execute("ALTER TABLE sessions DROP COLUMN deleted")
        db.execute("PRAGMA user_version = 3")
    store = SQLiteStore(path)
    assert [i.session_id for i in await store.list_sessions()] == ["old"]
    assert await store.delete("old", fence=5) is True
    with pytest.raises(SessionFenced):
        await store.append("old", turn("late"), fence=4)
    assert (await store.list_sessions(), await store.info("old")) == ([], None)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 4


async def _postgres_versions(prefix: str) -> list[int]:
    conn = await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True)
    try:
        table = sql.Identifier(f"{prefix}schema")
        cursor = await conn.execute(sql.SQL("SELECT version FROM {} ORDER BY 1").format(table))
        return [row[0] for row in await cursor.fetchall()]
    finally:
        await conn.close()


async def _postgres_execute(query: sql.Composable) -> None:
    conn = await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True)
    try:
        await conn.execute(query)
    finally:
        await conn.close()


async def test_postgres_tables_from_before_versions_are_migrated_and_keep_their_data():
    async with postgres_prefix() as prefix:
        await PostgresStore(POSTGRES_URL, table_prefix=prefix).append("s", TURN, actor_id="ann")
        # Without its schema table, the layout is the first release's: version 0.
        await _postgres_execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(f"{prefix}schema")))
        store = PostgresStore(POSTGRES_URL, table_prefix=prefix)
        assert await store.load("s") == TURN
        assert await _postgres_versions(prefix) == [1, 2, 3]


async def test_postgres_tables_of_the_previous_schema_get_the_fence_column():
    async with postgres_prefix() as prefix:
        await PostgresStore(POSTGRES_URL, table_prefix=prefix).append("old", turn("old"))
        # Back to the schema of the release before fencing.
        sessions, schema = (sql.Identifier(f"{prefix}{name}") for name in ("sessions", "schema"))
        for column in ("fence", "deleted"):
            drop = sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(sessions, sql.Identifier(column))
            await _postgres_execute(drop)
        await _postgres_execute(sql.SQL("DELETE FROM {} WHERE version >= 2").format(schema))
        stores = [PostgresStore(POSTGRES_URL, table_prefix=prefix) for _ in range(3)]
        async with anyio.create_task_group() as tg:  # several processes starting at once
            for store in stores:
                tg.start_soon(store.setup)
        assert await _postgres_versions(prefix) == [1, 2, 3]
        await stores[0].append("old", turn("fenced"), fence=5)
        with pytest.raises(SessionFenced):
            await stores[1].append("old", turn("late"), fence=4)
        assert await stores[2].load("old") == [*turn("old"), *turn("fenced")]


async def test_postgres_tables_of_the_previous_schema_get_the_tombstone_column():
    async with postgres_prefix() as prefix:
        await PostgresStore(POSTGRES_URL, table_prefix=prefix).append("old", turn("old"), fence=3)
        # Back to the schema of the release before tombstones.
        sessions, schema = (sql.Identifier(f"{prefix}{name}") for name in ("sessions", "schema"))
        await _postgres_execute(sql.SQL("ALTER TABLE {} DROP COLUMN deleted").format(sessions))
        await _postgres_execute(sql.SQL("DELETE FROM {} WHERE version = 3").format(schema))
        store = PostgresStore(POSTGRES_URL, table_prefix=prefix)
        assert [i.session_id for i in await store.list_sessions()] == ["old"]
        assert await store.delete("old", fence=5) is True
        with pytest.raises(SessionFenced):
            await store.append("old", turn("late"), fence=4)
        assert (await store.list_sessions(), await store.info("old")) == ([], None)
        assert await _postgres_versions(prefix) == [1, 2, 3]


async def test_postgres_concurrent_setup_applies_each_step_once(monkeypatch):
    # Applied twice, ADD COLUMN fails (and so would the second version row).
    probe = ("ALTER TABLE {sessions} ADD COLUMN probe INTEGER",)
    monkeypatch.setattr(postgres_module, "MIGRATIONS", (*postgres_module.MIGRATIONS, probe))
    async with postgres_prefix() as prefix:
        stores = [PostgresStore(POSTGRES_URL, table_prefix=prefix) for _ in range(4)]
        async with anyio.create_task_group() as tg:
            for store in stores:
                tg.start_soon(store.setup)
        assert await _postgres_versions(prefix) == [1, 2, 3, 4]
        await stores[0].append("s", TURN)
        assert await stores[1].load("s") == TURN


async def test_postgres_tables_newer_than_the_code_are_refused():
    async with postgres_prefix() as prefix:
        await PostgresStore(POSTGRES_URL, table_prefix=prefix).setup()
        await _postgres_execute(
            sql.SQL("INSERT INTO {} VALUES (99, 0)").format(sql.Identifier(f"{prefix}schema"))
        )
        store = PostgresStore(POSTGRES_URL, table_prefix=prefix)
        with pytest.raises(ConfigError, match="schema version 99, newer than the 3"):
            await store.load("s")


async def _redis_get(key: str) -> bytes | None:
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        return await client.get(key)
    finally:
        await client.aclose()


async def test_redis_concurrent_setup_applies_each_step_once_and_keeps_the_data(monkeypatch):
    async with redis_prefix() as prefix:
        await RedisStore(REDIS_URL, prefix=prefix).append("s", TURN)
        assert await _redis_get(f"{prefix}schema_version") == b"1"
        probe = "redis.call('INCR', ARGV[2] .. 'probe')"
        monkeypatch.setattr(redis_module, "MIGRATIONS", (*redis_module.MIGRATIONS, probe))
        stores = [RedisStore(REDIS_URL, prefix=prefix) for _ in range(4)]
        async with anyio.create_task_group() as tg:
            for store in stores:
                tg.start_soon(store.setup)
        assert await _redis_get(f"{prefix}probe") == b"1"
        assert await _redis_get(f"{prefix}schema_version") == b"2"
        assert await stores[0].load("s") == TURN


async def test_redis_keys_of_the_first_layout_are_stamped_with_the_tombstone_step():
    async with redis_prefix() as prefix:
        await RedisStore(REDIS_URL, prefix=prefix).append("old", TURN, fence=3)
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        try:  # the keys as the release before tombstones left them: no version key (0)
            await client.delete(f"{prefix}schema_version")
        finally:
            await client.aclose()
        store = RedisStore(REDIS_URL, prefix=prefix)
        assert await store.load("old") == TURN
        assert await _redis_get(f"{prefix}schema_version") == b"1"
        assert await store.delete("old", fence=5) is True
        with pytest.raises(SessionFenced):
            await store.append("old", TURN, fence=4)
        assert (await store.list_sessions(), await store.info("old")) == ([], None)


async def test_redis_keys_newer_than_the_code_are_refused():
    async with redis_prefix() as prefix:
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        try:
            await client.set(f"{prefix}schema_version", 99)
        finally:
            await client.aclose()
        store = RedisStore(REDIS_URL, prefix=prefix)
        with pytest.raises(ConfigError, match="schema version 99, newer than the 1"):
            await store.setup()
        with pytest.raises(ConfigError):
            await store.ping()


# -- at the server's start-up ------------------------------------------------------------------


class SetupCountingStore(MemoryStore):
    """A memory store that counts its `setup()` calls (a custom store migrates only there)."""

    def __init__(self) -> None:
        super().__init__()
        self.setups = 0

    async def setup(self) -> None:
        self.setups += 1
        await super().setup()


def test_the_server_migrates_its_store_once_at_start_up():
    store = SetupCountingStore()
    app = create_app(Agent(OfflineChatModel(token_delay=0), store=store))
    assert store.setups == 0
    with TestClient(app) as client:
        assert store.setups == 1  # before the first request
        assert client.post("/invoke", json={"prompt": "hi"}).json()["outcome"] == "success"
        assert client.get("/readyz").status_code == 200
    assert store.setups == 1


def test_serve_refuses_a_store_from_a_newer_agentcast_in_one_line(tmp_path, capsys):
    path = tmp_path / "s.db"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(sqlite_module.MIGRATIONS) + 1}")
    assert main(["serve", "--store", f"sqlite:///{path}", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("agentcast: ")
    assert "newer than" in err
