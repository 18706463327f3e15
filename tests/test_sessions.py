"""Session stores: one conformance suite for every backend, plus SQLite-only and open_store checks.

To add a backend (Postgres, Redis), add an entry to `BACKENDS`: a factory taking `tmp_path`
that returns a fresh, empty store. Every conformance test then runs against it.
"""

from __future__ import annotations

import copy
import itertools
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

import agentcast
from agentcast.errors import ConfigError, SessionError
from agentcast.events import Message
from agentcast.models.demo_tools import demo_tools
from agentcast.sessions import MemoryStore, SessionInfo, SessionStore, open_store
from agentcast.sessions.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio

BACKENDS: dict[str, Callable[[Path], SessionStore]] = {
    "memory": lambda tmp_path: MemoryStore(),
    "sqlite": lambda tmp_path: SQLiteStore(tmp_path / "s.db"),
}


@pytest.fixture(params=list(BACKENDS))
async def store(request, tmp_path):
    backend = BACKENDS[request.param](tmp_path)
    yield backend
    await backend.aclose()


@pytest.fixture
def clock(monkeypatch):
    """A wall clock that moves 1 ms forward on every read: ordering by time is deterministic."""
    ticks = itertools.count(1_700_000_000_000_000_000, 1_000_000)
    monkeypatch.setattr(time, "time_ns", lambda: next(ticks))


REASONING = [
    {"type": "thinking", "thinking": "Let me think… 🤔\nstep 2", "signature": "sig-ÄBC=="},
    {"type": "redacted_thinking", "data": "opaque\u0000bytes?"},
]

TURN: list[Message] = [
    {"role": "user", "content": "What is 25 * 4? 🧮\nAlso: data: x"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_1",
                "name": "multiply",
                "args": {"a": 25, "b": 4.5, "n": [1, {"x": None}]},
            },
            {"id": "call_2", "name": "add", "args": {}},
        ],
        "reasoning": REASONING,
    },
    {"role": "tool", "content": "112.5", "tool_call_id": "call_1", "name": "multiply"},
    {
        "role": "tool",
        "content": "cancelled",
        "tool_call_id": "call_2",
        "name": "add",
        "status": "cancelled",
    },
    {"role": "assistant", "content": "25 × 4.5 = 112.5 — 完了 ✅", "status": "interrupted"},
]


def turn(tag: str, size: int = 3) -> list[Message]:
    messages: list[Message] = [{"role": "user", "content": f"{tag} question"}]
    messages += [{"role": "assistant", "content": f"{tag} part {i}"} for i in range(1, size)]
    return messages


# -- conformance: every backend --------------------------------------------------------------------


async def test_store_satisfies_the_protocol(store):
    assert isinstance(store, SessionStore)


async def test_load_of_unknown_session_is_empty(store):
    assert await store.load("nobody") == []
    assert await store.list_sessions() == []


async def test_append_then_load_round_trips_messages_exactly(store):
    await store.append("s1", TURN)
    loaded = await store.load("s1")
    assert loaded == TURN
    assert [list(m) for m in loaded] == [list(m) for m in TURN], "keys changed"
    assert loaded[1]["reasoning"][0]["signature"] == "sig-ÄBC=="
    assert isinstance(loaded[1]["tool_calls"][0]["args"]["b"], float)


async def test_turns_append_in_order(store):
    await store.append("s1", turn("first"))
    await store.append("s1", turn("second", 2))
    await store.append("s1", TURN)
    assert await store.load("s1") == [*turn("first"), *turn("second", 2), *TURN]


async def test_appended_and_loaded_messages_are_copies(store):
    messages = copy.deepcopy(TURN)
    await store.append("s1", messages)
    messages[0]["content"] = "changed after append"
    messages[1]["tool_calls"][0]["args"]["a"] = -1
    loaded = await store.load("s1")
    assert loaded == TURN
    loaded[0]["content"] = "changed after load"
    loaded.append({"role": "user", "content": "extra"})
    assert await store.load("s1") == TURN


async def test_sessions_are_isolated(store):
    await store.append("a", turn("A"))
    await store.append("b", turn("B", 2))
    assert await store.load("a") == turn("A")
    assert await store.load("b") == turn("B", 2)
    assert await store.load("A") == [], "session ids are case-sensitive"
    await store.delete("a")
    assert await store.load("b") == turn("B", 2)


async def test_list_sessions_most_recent_first_with_count_and_title(store, clock):
    await store.append("old", turn("old one"), actor_id="alice")
    await store.append("mid", turn("middle", 2), actor_id="bob")
    await store.append("new", turn("newest", 4), actor_id="alice")
    infos = await store.list_sessions()
    assert all(isinstance(info, SessionInfo) for info in infos)
    assert [i.session_id for i in infos] == ["new", "mid", "old"]
    assert [i.message_count for i in infos] == [4, 2, 3]
    assert [i.title for i in infos] == ["newest question", "middle question", "old one question"]
    assert [i.actor_id for i in infos] == ["alice", "bob", "alice"]

    # Appending to the oldest session moves it to the top and grows its count.
    await store.append("old", turn("again", 2))
    infos = await store.list_sessions()
    assert [i.session_id for i in infos] == ["old", "new", "mid"]
    top = infos[0]
    assert top.message_count == 5
    assert top.title == "old one question", "the title is the FIRST user message"
    assert top.updated_at > top.created_at
    assert [i.session_id for i in await store.list_sessions(limit=2)] == ["old", "new"]


async def test_list_sessions_filters_by_actor(store, clock):
    await store.append("a1", turn("x"), actor_id="alice")
    await store.append("b1", turn("y"), actor_id="bob")
    await store.append("a2", turn("z"), actor_id="alice")
    await store.append("anon", turn("w"))
    assert [i.session_id for i in await store.list_sessions(actor_id="alice")] == ["a2", "a1"]
    assert [i.session_id for i in await store.list_sessions(actor_id="bob")] == ["b1"]
    assert await store.list_sessions(actor_id="carol") == []
    assert len(await store.list_sessions()) == 4


async def test_title_is_first_user_message_whitespace_collapsed_and_truncated(store):
    long = "Tell me\n\n  about   " + "the cat 🐈 " * 20
    await store.append(
        "s", [{"role": "system", "content": "be brief"}, {"role": "user", "content": long}]
    )
    [info] = await store.list_sessions()
    flat = " ".join(long.split())
    assert info.title == flat[:60] + "..."
    assert info.title.startswith("Tell me about the cat 🐈 the cat")


async def test_title_of_session_without_user_message_is_empty(store):
    await store.append("s", [{"role": "assistant", "content": "hello"}])
    [info] = await store.list_sessions()
    assert info.title == ""
    assert info.message_count == 1


async def test_title_comes_from_a_later_turn_when_the_first_had_no_user_message(store):
    await store.append("s", [{"role": "assistant", "content": "Welcome!"}])
    await store.append("s", [{"role": "user", "content": "hi there"}])
    [info] = await store.list_sessions()
    assert info.title == "hi there"


async def test_delete_returns_true_then_false_and_removes_messages(store):
    await store.append("s", TURN)
    await store.append("keep", turn("k"))
    assert await store.delete("s") is True
    assert await store.load("s") == []
    assert [i.session_id for i in await store.list_sessions()] == ["keep"]
    assert await store.delete("s") is False
    assert await store.delete("never-existed") is False
    # A deleted id starts afresh.
    await store.append("s", turn("fresh", 1))
    assert await store.load("s") == turn("fresh", 1)
    [info] = [i for i in await store.list_sessions() if i.session_id == "s"]
    assert info.message_count == 1
    assert info.title == "fresh question"


async def test_concurrent_appends_to_different_sessions(store):
    await store.load("warm-up")  # first use is covered by test_sqlite_concurrent_first_use
    async with anyio.create_task_group() as tg:
        for n in range(12):
            tg.start_soon(store.append, f"s{n}", turn(f"t{n}", 1 + n % 4))
    for n in range(12):
        assert await store.load(f"s{n}") == turn(f"t{n}", 1 + n % 4)
    assert len(await store.list_sessions()) == 12


async def test_concurrent_appends_to_one_session_keep_turns_whole(store):
    turns = {n: turn(f"turn-{n}", 4) for n in range(16)}
    await store.load("warm-up")  # first use is covered by test_sqlite_concurrent_first_use

    async def writer(n: int) -> None:
        await anyio.lowlevel.checkpoint()
        await store.append("shared", turns[n])

    async with anyio.create_task_group() as tg:
        for n in turns:
            tg.start_soon(writer, n)

    loaded = await store.load("shared")
    assert len(loaded) == 16 * 4
    seen = []
    for at in range(0, len(loaded), 4):
        chunk = loaded[at : at + 4]
        n = int(chunk[0]["content"].split()[0].split("-")[1])
        assert chunk == turns[n], f"turn {n} was interleaved with another: {chunk}"
        seen.append(n)
    assert sorted(seen) == list(turns)
    [info] = await store.list_sessions()
    assert info.message_count == 64


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
    "url", ["postgresql://u:p@localhost/db", "postgres://h/db", "redis://localhost:6379/0"]
)
def test_open_store_future_backends_are_config_errors(url):
    with pytest.raises(ConfigError) as info:
        open_store(url)
    message = str(info.value)
    assert url.split("://")[0] in message
    assert "not available" in message
    assert "sqlite:///" in message and "memory://" in message


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
