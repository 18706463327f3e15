"""Session stores: the conformance suite for every backend, plus backend-only and open_store checks.

The conformance suite is `agentcast.testing.store_conformance` (store authors run it too). To
add a backend, add a `_Backend` subclass whose `backend` is an async context manager factory
taking `tmp_path` that yields a fresh, empty store and removes what it wrote on exit.

The Postgres and Redis backends run against the real servers on 127.0.0.1 (`scripts/test` starts
them). They are required: when one is not reachable its tests fail, they are never skipped. Each
test gets its own table prefix (Postgres) or key prefix (Redis), dropped afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import ClassVar

import anyio
import anyio.to_thread
import psycopg
import pytest
import redis.asyncio
from psycopg import sql

import agentcast
from agentcast.errors import (
    ConfigError,
    MissingDependency,
    SessionError,
    StoreUnavailable,
)
from agentcast.events import Message
from agentcast.models.demo_tools import demo_tools
from agentcast.sessions import (
    MemoryStore,
    SessionStore,
    open_store,
    redact_url,
)
from agentcast.sessions.postgres import PostgresStore
from agentcast.sessions.redis import RedisStore
from agentcast.sessions.sqlite import SQLiteStore
from agentcast.testing.store_conformance import TURN, StoreConformance, turn

pytestmark = pytest.mark.anyio

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


async def _require_postgres() -> None:
    try:
        conn = await psycopg.AsyncConnection.connect(POSTGRES_URL, connect_timeout=5)
        await conn.close()
        return
    except psycopg.Error as exc:
        error = str(exc)
    pytest.fail(
        f"PostgreSQL is required at {POSTGRES_URL} and is not reachable: {error}\n"
        "start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        " (scripts/test does)",
        pytrace=False,
    )


async def _require_redis() -> None:
    client = redis.asyncio.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
    try:
        await client.ping()
        return
    except redis.RedisError as exc:
        error = str(exc)
    finally:
        await client.aclose()
    pytest.fail(
        f"Redis is required at {REDIS_URL} and is not reachable: {error}\n"
        "start it: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 ..."
        " (scripts/test does)",
        pytrace=False,
    )


@contextlib.asynccontextmanager
async def postgres_prefix() -> AsyncIterator[str]:
    """A fresh table prefix in the test database; its tables are dropped on exit."""
    await _require_postgres()
    prefix = f"test_{uuid.uuid4().hex[:12]}_"
    try:
        yield prefix
    finally:
        names = ("messages", "sessions", "schema")
        tables = [sql.Identifier(f"{prefix}{name}") for name in names]
        conn = await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True)
        try:
            await conn.execute(
                sql.SQL("DROP TABLE IF EXISTS {}").format(sql.SQL(", ").join(tables))
            )
        finally:
            await conn.close()


async def _redis_keys(prefix: str) -> list[bytes]:
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        return sorted([key async for key in client.scan_iter(match=f"{prefix}*", count=1000)])
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def redis_prefix() -> AsyncIterator[str]:
    """A fresh key prefix; its keys are deleted on exit."""
    await _require_redis()
    prefix = f"agentcast-test:{uuid.uuid4().hex}:"
    try:
        yield prefix
    finally:
        keys = await _redis_keys(prefix)
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        try:
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


@contextlib.asynccontextmanager
async def _memory(tmp_path: Path) -> AsyncIterator[SessionStore]:
    yield MemoryStore()


@contextlib.asynccontextmanager
async def _sqlite(tmp_path: Path) -> AsyncIterator[SessionStore]:
    yield SQLiteStore(tmp_path / "s.db")


@contextlib.asynccontextmanager
async def _postgres(tmp_path: Path) -> AsyncIterator[SessionStore]:
    async with postgres_prefix() as prefix:
        yield PostgresStore(POSTGRES_URL, table_prefix=prefix)


@contextlib.asynccontextmanager
async def _redis(tmp_path: Path) -> AsyncIterator[SessionStore]:
    async with redis_prefix() as prefix:
        yield RedisStore(REDIS_URL, prefix=prefix)


class _Backend(StoreConformance):
    """The conformance suite over one of agentcast's own backends."""

    backend: ClassVar[Callable[[Path], AbstractAsyncContextManager[SessionStore]]]

    @pytest.fixture
    async def store(self, tmp_path):
        async with type(self).backend(tmp_path) as backend:
            yield backend
            await backend.aclose()


class TestMemoryStore(_Backend):
    backend = staticmethod(_memory)


class TestSQLiteStore(_Backend):
    backend = staticmethod(_sqlite)


class TestPostgresStore(_Backend):
    backend = staticmethod(_postgres)


class TestRedisStore(_Backend):
    backend = staticmethod(_redis)


SERVER_BACKENDS = ["postgres", "redis"]


@pytest.fixture(params=SERVER_BACKENDS)
async def new_store(request) -> AsyncIterator[Callable[[], SessionStore]]:
    """Make store instances over one fresh namespace on a real server, like separate processes."""
    if request.param == "postgres":
        async with postgres_prefix() as prefix:
            yield lambda: PostgresStore(POSTGRES_URL, table_prefix=prefix)
    else:
        async with redis_prefix() as prefix:
            yield lambda: RedisStore(REDIS_URL, prefix=prefix)


# -- SQLite only -----------------------------------------------------------------------------------


async def test_sqlite_data_survives_a_new_store_instance(tmp_path):
    path = tmp_path / "s.db"
    first = SQLiteStore(path)
    await first.append("s", TURN, actor_id="alice")
    await first.aclose()

    second = SQLiteStore(path)
    assert await second.load("s") == TURN
    [info] = await second.list_sessions(actor_id="alice")
    assert (info.session_id, info.message_count, info.title) == (
        "s",
        5,
        " ".join(TURN[0]["content"].split()),
    )
    await second.append("s", turn("later", 1))
    assert await SQLiteStore(path).load("s") == [*TURN, *turn("later", 1)]


async def test_sqlite_creates_the_folder(tmp_path):
    path = tmp_path / "deep" / "er" / "sessions.db"
    assert not path.parent.exists()
    store = SQLiteStore(path)
    await store.append("s", turn("x"))
    assert path.is_file()
    assert await store.load("s") == turn("x")


async def test_sqlite_expands_user(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    store = SQLiteStore("~/db/s.db")
    assert store.path == tmp_path / "db" / "s.db"
    await store.append("s", turn("x"))
    assert (tmp_path / "db" / "s.db").is_file()


async def test_sqlite_path_under_a_regular_file_is_session_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    path = blocker / "sub" / "s.db"
    store = SQLiteStore(path)
    for call in (store.load("s"), store.append("s", turn("x")), store.list_sessions()):
        with pytest.raises(SessionError) as info:
            await call
        assert str(path) in str(info.value)
        assert "cannot open the session database" in str(info.value)
    assert blocker.read_text() == "not a folder"


async def _join_sqlite_worker_threads() -> None:
    # When aiosqlite.connect() fails, aiosqlite stops its worker thread without waiting for it;
    # the thread then reports to the event loop. Let it finish while the loop still runs, or it
    # hits a closed loop after the test ("Exception in thread ... Event loop is closed").
    for thread in threading.enumerate():
        if "_connection_worker_thread" in thread.name:
            await anyio.to_thread.run_sync(thread.join)


async def test_sqlite_path_that_is_a_folder_is_session_error(tmp_path):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(SessionError) as info:
        await SQLiteStore(folder).load("s")
    await _join_sqlite_worker_threads()
    assert str(folder) in str(info.value)


async def test_sqlite_file_that_is_not_a_database_is_session_error(tmp_path):
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not sqlite " * 100)
    with pytest.raises(SessionError) as info:
        await SQLiteStore(path).load("s")
    assert str(path) in str(info.value)


async def test_sqlite_failed_turn_leaves_nothing_behind(tmp_path):
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    await store.append("s", turn("ok"))
    bad: list = [{"role": "user", "content": "fine"}, {"role": "user", "content": object()}]
    with pytest.raises(TypeError):
        await store.append("new", bad)
    with pytest.raises(TypeError):
        await store.append("s", bad)
    assert await store.load("s") == turn("ok")
    assert await store.load("new") == []
    assert [i.session_id for i in await store.list_sessions()] == ["s"]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM messages").fetchone() == (3,)
        assert db.execute("SELECT COUNT(*) FROM sessions").fetchone() == (1,)


async def test_sqlite_concurrent_first_use(tmp_path):
    errors: list[SessionError] = []

    async def write(store: SQLiteStore, n: int) -> None:
        try:
            await store.append(f"s{n}", turn(f"t{n}"))
        except SessionError as exc:  # collected, so no sibling is cancelled mid-query
            errors.append(exc)

    for trial in range(20):
        store = SQLiteStore(tmp_path / f"fresh-{trial}.db")
        async with anyio.create_task_group() as tg:
            for n in range(4):
                tg.start_soon(write, store, n)
    assert errors == []


# -- Postgres and Redis: real servers on 127.0.0.1 -------------------------------------------------


async def test_server_data_survives_a_new_store_instance(new_store):
    first = new_store()
    await first.append("s", TURN, actor_id="alice")
    await first.aclose()

    second = new_store()
    assert await second.load("s") == TURN
    [info] = await second.list_sessions(actor_id="alice")
    assert (info.session_id, info.message_count, info.title) == (
        "s",
        5,
        " ".join(TURN[0]["content"].split()),
    )
    await second.append("s", turn("later", 1))
    assert await new_store().load("s") == [*TURN, *turn("later", 1)]


async def test_server_store_is_usable_after_aclose_and_on_another_event_loop(new_store):
    store = new_store()
    await store.append("s", turn("one"))
    await store.aclose()
    await store.append("s", turn("two", 1))
    await store.aclose()
    await store.aclose()

    # `Agent.invoke` runs each call on a new event loop: the same store must work there too.
    def on_a_new_loop() -> list[Message]:
        async def work() -> list[Message]:
            await store.append("s", turn("three", 1))
            return await store.load("s")

        return asyncio.run(work())

    expected = [*turn("one"), *turn("two", 1), *turn("three", 1)]
    assert await anyio.to_thread.run_sync(on_a_new_loop) == expected
    assert await store.load("s") == expected


async def test_server_concurrent_first_use(new_store):
    # Several store instances (as several processes would) and tasks hit a fresh namespace at
    # once: for Postgres, the tables are created exactly once without a catalog race.
    errors: list[SessionError] = []
    stores = [new_store() for _ in range(4)]

    async def write(store: SessionStore, n: int) -> None:
        try:
            await store.append(f"s{n}", turn(f"t{n}"))
        except SessionError as exc:  # collected, so no sibling is cancelled mid-query
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for n in range(12):
            tg.start_soon(write, stores[n % 4], n)
    assert errors == []
    for n in range(12):
        assert await stores[0].load(f"s{n}") == turn(f"t{n}")


async def test_postgres_concurrent_first_use_on_fresh_tables():
    errors: list[SessionError] = []

    async def write(store: SessionStore, n: int) -> None:
        try:
            await store.append(f"s{n}", turn(f"t{n}"))
        except SessionError as exc:
            errors.append(exc)

    for _ in range(8):
        async with postgres_prefix() as prefix:
            async with anyio.create_task_group() as tg:
                for n in range(6):
                    # A new instance each: none of them knows the tables exist.
                    tg.start_soon(write, PostgresStore(POSTGRES_URL, table_prefix=prefix), n)
            assert errors == []
            infos = await PostgresStore(POSTGRES_URL, table_prefix=prefix).list_sessions()
            assert len(infos) == 6


async def test_server_concurrent_appends_from_many_instances_keep_turns_contiguous(new_store):
    stores = [new_store() for _ in range(4)]
    await stores[0].load("warm-up")
    turns = {n: turn(f"turn-{n}", 2 + n % 3) for n in range(24)}
    started = anyio.Event()

    async def writer(n: int) -> None:
        await started.wait()  # all writers are parked here, then released together
        await stores[n % 4].append("shared", turns[n], actor_id="alice")

    async with anyio.create_task_group() as tg:
        for n in turns:
            tg.start_soon(writer, n)
        await anyio.wait_all_tasks_blocked()
        started.set()

    loaded = await stores[1].load("shared")
    assert len(loaded) == sum(len(t) for t in turns.values())
    seen = []
    at = 0
    while at < len(loaded):
        n = int(loaded[at]["content"].split()[0].split("-")[1])
        chunk = loaded[at : at + len(turns[n])]
        assert chunk == turns[n], f"turn {n} was interleaved with another: {chunk}"
        seen.append(n)
        at += len(turns[n])
    assert sorted(seen) == list(turns)
    [info] = await stores[2].list_sessions(actor_id="alice")
    assert info.message_count == len(loaded)
    assert info.title == f"turn-{seen[0]} question", "the title is the first turn's"


UNREACHABLE = [
    "postgresql://127.0.0.1:1/test",
    "postgres://agent:s3cret@127.0.0.1:1/test",
    "redis://127.0.0.1:1",
    "redis://:s3cret@127.0.0.1:1/0",
]


@pytest.mark.parametrize("url", UNREACHABLE)
async def test_server_unreachable_is_store_unavailable_with_the_url_masked(url):
    store = open_store(url)
    assert "s3cret" not in repr(store)
    calls = (
        store.ping(),
        store.load("s"),
        store.append("s", turn("x")),
        store.list_sessions(),
        store.list_sessions(actor_id="a"),
        store.delete("s"),
    )
    for call in calls:
        with pytest.raises(StoreUnavailable) as info:
            await call
        message = str(info.value)
        assert message.startswith(("cannot connect to the Postgres", "cannot connect to the Redis"))
        assert redact_url(url) in message
        assert "127.0.0.1:1" in message
        assert "s3cret" not in message
    await store.aclose()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://nobody-here:s3cret@127.0.0.1:5432/test",  # the server refuses the role
        "postgresql://postgres@127.0.0.1:5432/no_such_database_here",
        "postgresql://127.0.0.1:notaport/test",
        "redis://someone:s3cret@127.0.0.1:6379/0",  # no such user: AUTH fails
        "redis://127.0.0.1:notaport/0",
        "redis://127.0.0.1:6379/notadb",
    ],
)
async def test_server_bad_url_or_credentials_are_session_errors(url):
    if url.startswith("postgres"):
        await _require_postgres()
    else:
        await _require_redis()
    store = open_store(url)
    with pytest.raises(SessionError) as info:
        await store.load("s")
    message = str(info.value)
    assert redact_url(url) in message
    assert "s3cret" not in message


async def test_postgres_tables_are_named_by_the_prefix_and_rows_go_with_delete():
    async with postgres_prefix() as prefix:
        store = PostgresStore(POSTGRES_URL, table_prefix=prefix)
        await store.append("s", TURN, actor_id="alice")
        await store.append("t", turn("t"))
        conn = await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True)
        try:

            async def count(table: str) -> int:
                query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(prefix + table))
                row = await (await conn.execute(query)).fetchone()
                return row[0]

            assert (await count("sessions"), await count("messages")) == (2, 8)
            assert await store.delete("s") is True
            assert (await count("sessions"), await count("messages")) == (1, 3)
        finally:
            await conn.close()


@pytest.mark.parametrize("prefix", ["", "1abc", "bad-name", "x; DROP TABLE y", "a" * 41])
def test_postgres_table_prefix_must_be_an_identifier(prefix):
    with pytest.raises(ValueError, match="table_prefix"):
        PostgresStore(POSTGRES_URL, table_prefix=prefix)


async def test_postgres_failed_turn_leaves_nothing_behind():
    async with postgres_prefix() as prefix:
        store = PostgresStore(POSTGRES_URL, table_prefix=prefix)
        await store.append("s", turn("ok"))
        [before] = await store.list_sessions()
        bad: list = [{"role": "user", "content": "fine"}, {"role": "user", "content": object()}]
        with pytest.raises(TypeError):
            await store.append("s", bad)
        # A failure inside the transaction, after the session row was upserted.
        store._insert = sql.SQL("SELECT %s, %s, %s, 1 / 0")
        with pytest.raises(SessionError, match="division by zero"):
            await store.append("s", turn("lost"))
        with pytest.raises(SessionError, match="division by zero"):
            await store.append("new", turn("lost"))
        fresh = PostgresStore(POSTGRES_URL, table_prefix=prefix)
        assert await fresh.load("s") == turn("ok")
        assert await fresh.load("new") == []
        assert await fresh.list_sessions() == [before]


async def test_redis_key_layout_and_delete_leaves_no_key_behind():
    async with redis_prefix() as prefix:
        store = RedisStore(REDIS_URL, prefix=prefix)
        await store.append("s", TURN, actor_id="alice")
        await store.append("s", turn("more"), actor_id="bob")  # the owner stays alice
        await store.append("anon", turn("x"))
        assert await _redis_keys(prefix) == sorted(
            f"{prefix}{key}".encode()
            for key in (
                "session:s:messages",
                "session:s:meta",
                "session:anon:messages",
                "session:anon:meta",
                "sessions",
                "actor:alice",
                "schema_version",
            )
        )
        assert [i.session_id for i in await store.list_sessions(actor_id="alice")] == ["s"]
        assert await store.list_sessions(actor_id="bob") == []
        assert await store.delete("s") is True
        assert await store.delete("anon") is True
        version = [f"{prefix}schema_version".encode()]
        assert await _redis_keys(prefix) == version, "a delete left a key or an index entry"
        # A session that had a fence leaves its tombstone: the meta hash, the fence alone.
        await store.append("f", turn("x"), actor_id="alice", fence=7)
        assert await store.delete("f", fence=9) is True
        assert await _redis_keys(prefix) == sorted([*version, f"{prefix}session:f:meta".encode()])
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        try:
            assert await client.hgetall(f"{prefix}session:f:meta") == {b"fence": b"9"}
        finally:
            await client.aclose()


async def test_redis_prefixes_isolate_stores():
    async with redis_prefix() as one, redis_prefix() as two:
        first, second = RedisStore(REDIS_URL, prefix=one), RedisStore(REDIS_URL, prefix=two)
        await first.append("s", turn("first"))
        assert await second.load("s") == []
        assert await second.list_sessions() == []
        assert await second.delete("s") is False
        assert await first.load("s") == turn("first")


async def test_redis_turn_larger_than_one_lua_unpack_is_appended_whole():
    async with redis_prefix() as prefix:
        store = RedisStore(REDIS_URL, prefix=prefix)
        big = turn("big", 10_000)  # Lua's unpack() fails beyond ~8,000 values
        await store.append("s", big)
        assert await store.load("s") == big
        [info] = await store.list_sessions()
        assert info.message_count == 10_000


# -- open_store ------------------------------------------------------------------------------------


async def test_open_store_default_is_sqlite_under_agentcast_home(tmp_path):
    home = tmp_path / "home"
    for url in (None, "sqlite", "sqlite://", "sqlite:///"):
        store = open_store(url)
        assert isinstance(store, SQLiteStore)
        assert store.path == home / "sessions.db"
    store = open_store()
    await store.append("s", turn("x"))
    assert (home / "sessions.db").is_file()
    assert await SQLiteStore(home / "sessions.db").load("s") == turn("x")


def test_open_store_memory():
    for url in ("memory", "memory://"):
        assert isinstance(open_store(url), MemoryStore)
    assert open_store("memory://") is not open_store("memory://")


def test_open_store_sqlite_urls(tmp_path):
    relative = open_store("sqlite:///x.db")
    assert isinstance(relative, SQLiteStore)
    assert relative.path == Path("x.db")
    absolute = open_store(f"sqlite:///{tmp_path}/y.db")
    assert isinstance(absolute, SQLiteStore)
    assert absolute.path == tmp_path / "y.db"


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("postgresql://u:p@localhost/db", PostgresStore),
        ("postgres://h/db", PostgresStore),
        ("postgresql://", PostgresStore),
        ("redis://localhost:6379/0", RedisStore),
        ("rediss://:pw@cache.example:6380/2", RedisStore),
    ],
)
def test_open_store_server_urls(url, kind):
    store = open_store(url)  # no I/O: connections are opened on first use
    assert type(store) is kind
    assert store.url == url
    assert isinstance(store, SessionStore)
    if kind is PostgresStore:
        assert store.table_prefix == "agentcast_"
    else:
        assert store.prefix == "agentcast:"
    assert open_store(url) is not store


@pytest.mark.parametrize(
    ("url", "driver", "extra"),
    [("postgresql://h/db", "psycopg", "postgres"), ("redis://h", "redis", "redis")],
)
def test_open_store_without_the_driver_is_missing_dependency(monkeypatch, url, driver, extra):
    monkeypatch.setitem(sys.modules, driver, None)  # None in sys.modules: its import fails
    monkeypatch.delitem(sys.modules, f"agentcast.sessions.{extra}", raising=False)
    with pytest.raises(MissingDependency) as info:
        open_store(url)
    assert f"pip install 'agentcast[{extra}]'" in str(info.value)
    assert isinstance(info.value, ConfigError)


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("postgresql://agent:s3cret@db:5432/app", "postgresql://agent:***@db:5432/app"),
        ("postgres://agent:s3cret@db", "postgres://agent:***@db"),
        (
            "postgresql://agent@db/app?password=s3cret&sslmode=require",
            "postgresql://agent@db/app?password=***&sslmode=require",
        ),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("rediss://user:s3cr@t@cache/0", "rediss://user:***@cache/0"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("postgresql://db/app", "postgresql://db/app"),
        ("not a url", "not a url"),
    ],
)
def test_redact_url_masks_the_password(url, redacted):
    assert redact_url(url) == redacted


@pytest.mark.parametrize(
    "url", ["", "mysql://localhost/db", "nonsense", "sqlite://x.db", "memory://extra", "file.db"]
)
def test_open_store_garbage_is_config_error(url):
    with pytest.raises(ConfigError) as info:
        open_store(url)
    message = str(info.value)
    assert "unknown session store" in message
    assert repr(url) in message
    assert "memory://" in message and "sqlite:///" in message


# -- end to end: the agent remembers across Agent instances through the SQLite file ----------------


async def test_agent_history_survives_a_new_agent_on_the_same_file(tmp_path):
    path = tmp_path / "agent.db"
    first = agentcast.Agent("offline", demo_tools(), store=SQLiteStore(path))
    told = await first.ainvoke("My name is Alice", session_id="s")
    assert told.outcome == "success"
    assert "Alice" in told.output

    second = agentcast.Agent("offline", demo_tools(), store=SQLiteStore(path))
    recalled = await second.ainvoke("What's my name?", session_id="s")
    assert recalled.outcome == "success"
    assert recalled.output == "Your name is Alice."

    # Control: another session, or another file, knows nothing about Alice.
    other_session = await second.ainvoke("What's my name?", session_id="other")
    assert "Alice" not in other_session.output
    other_file = agentcast.Agent("offline", demo_tools(), store=SQLiteStore(tmp_path / "o.db"))
    fresh = await other_file.ainvoke("What's my name?", session_id="s")
    assert "Alice" not in fresh.output

    history = await SQLiteStore(path).load("s")
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    assert history[0]["content"] == "My name is Alice"


@pytest.mark.parametrize("backend", SERVER_BACKENDS)
async def test_agent_history_survives_a_new_agent_on_the_same_server(backend):
    if backend == "postgres":
        await _require_postgres()
        url = POSTGRES_URL
    else:
        await _require_redis()
        url = REDIS_URL
    # open_store(url) uses the default table/key prefix: unique ids keep runs apart.
    sid, other = f"test-{uuid.uuid4().hex}", f"test-{uuid.uuid4().hex}"
    first_store, second_store = open_store(url), open_store(url)
    try:
        first = agentcast.Agent("offline", demo_tools(), store=first_store)
        told = await first.ainvoke("My name is Alice", session_id=sid)
        assert told.outcome == "success"
        assert "Alice" in told.output

        second = agentcast.Agent("offline", demo_tools(), store=second_store)
        recalled = await second.ainvoke("What's my name?", session_id=sid)
        assert recalled.outcome == "success"
        assert recalled.output == "Your name is Alice."

        # Control: another session knows nothing about Alice.
        other_session = await second.ainvoke("What's my name?", session_id=other)
        assert "Alice" not in other_session.output

        history = await open_store(url).load(sid)
        assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
        assert history[0]["content"] == "My name is Alice"
    finally:
        for session_id in (sid, other):
            await first_store.delete(session_id)
        await first_store.aclose()
        await second_store.aclose()
