"""The behaviour every `SessionStore` must have, as a pytest suite a store author reuses.

Subclass `StoreConformance` in a test module (its name must start with `Test`) and override
the `store` fixture to yield a fresh, empty store, closing it and removing what it wrote
afterwards::

    from agentcast.testing.store_conformance import StoreConformance

    class TestMyStore(StoreConformance):
        @pytest.fixture
        async def store(self, tmp_path):
            store = MyStore(tmp_path / "db")
            yield store
            await store.aclose()

Every test then runs against it (with anyio's pytest plugin, which ships with anyio). agentcast
runs this suite for its memory, SQLite, Postgres and Redis stores. This module imports pytest:
import it from tests only (`import agentcast.testing` does not).
"""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from agentcast.errors import InvalidInput
from agentcast.events import Message
from agentcast.sessions import SessionInfo, SessionStore, title_of
from agentcast.testing._fencing import FencingConformance, turn

__all__ = ("BAD_KEYS", "TURN", "StoreConformance", "turn")

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


BAD_KEYS = [
    "",
    "a\x00b",  # NUL: Postgres TEXT refuses it, so every store does
    "漢",  # not ASCII: ids travel in HTTP headers
    "a b",
    "line\n",
    "a/b/c",  # at most owner/id
    "/a",
    "a/",
    "x" * 129,
    42,
    None,
]


@pytest.mark.anyio
class StoreConformance(FencingConformance):
    """The session-store conformance tests; subclass it and override the `store` fixture.

    The fencing tests (`append(fence=)`, `delete(fence=)`) come from `FencingConformance`.
    """

    @pytest.fixture
    async def store(self) -> AsyncIterator[SessionStore]:
        """Yield a fresh, empty store (override this)."""
        raise NotImplementedError("override the `store` fixture: yield a fresh, empty store")
        yield  # pragma: no cover - makes this an async generator, like an override

    @pytest.fixture
    def clock(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        """A wall clock moving 1 ms forward on every read: ordering by time is deterministic."""
        ticks = itertools.count(1_700_000_000_000_000_000, 1_000_000)
        monkeypatch.setattr(time, "time_ns", lambda: next(ticks))
        yield

    async def test_setup_is_idempotent_and_keeps_the_data(self, store: SessionStore) -> None:
        await store.setup()
        await store.append("s1", TURN)
        await store.setup()
        assert await store.load("s1") == TURN

    async def test_store_satisfies_the_protocol(self, store: SessionStore) -> None:
        assert isinstance(store, SessionStore)

    async def test_ping_answers_when_the_store_is_up(self, store: SessionStore) -> None:
        await store.ping()

    async def test_load_of_unknown_session_is_empty(self, store: SessionStore) -> None:
        assert await store.load("nobody") == []
        assert await store.list_sessions() == []

    async def test_display_metadata_round_trips_in_every_backend(self, store: SessionStore) -> None:
        # What the web page needs to redraw a finished turn (runtime/_display.py), kept verbatim.
        nested: list[dict[str, Any]] = [
            {
                "type": "custom",
                "name": "lookup",
                "data": {"place": "under the bed", "n": [1, None]},
            },
            {"type": "text", "kind": "text", "text": "socks, shoes — 🧦"},
        ]
        metrics = {"tokens": 38, "ttft_ms": 495.125, "tokens_per_s": None, "usage": None}
        messages: list[Message] = [
            TURN[0],
            TURN[1],
            {**TURN[2], "metadata": {"nested": nested}},
            TURN[3],
            {
                **TURN[4],
                "metadata": {"run_id": "run_1", "outcome": "cancelled", "metrics": metrics},
            },
        ]
        await store.append("s1", messages)
        assert await store.load("s1") == messages

    async def test_append_then_load_round_trips_messages_exactly(self, store: SessionStore) -> None:
        await store.append("s1", TURN)
        loaded = await store.load("s1")
        assert loaded == TURN
        assert [list(m) for m in loaded] == [list(m) for m in TURN], "keys changed"
        assert loaded[1]["reasoning"][0]["signature"] == "sig-ÄBC=="
        assert isinstance(loaded[1]["tool_calls"][0]["args"]["b"], float)

    async def test_turns_append_in_order(self, store: SessionStore) -> None:
        await store.append("s1", turn("first"))
        await store.append("s1", turn("second", 2))
        await store.append("s1", TURN)
        assert await store.load("s1") == [*turn("first"), *turn("second", 2), *TURN]

    async def test_appended_and_loaded_messages_are_copies(self, store: SessionStore) -> None:
        messages = copy.deepcopy(TURN)
        await store.append("s1", messages)
        messages[0]["content"] = "changed after append"
        messages[1]["tool_calls"][0]["args"]["a"] = -1
        loaded = await store.load("s1")
        assert loaded == TURN
        loaded[0]["content"] = "changed after load"
        loaded.append({"role": "user", "content": "extra"})
        assert await store.load("s1") == TURN

    async def test_sessions_are_isolated(self, store: SessionStore) -> None:
        await store.append("a", turn("A"))
        await store.append("b", turn("B", 2))
        assert await store.load("a") == turn("A")
        assert await store.load("b") == turn("B", 2)
        assert await store.load("A") == [], "session ids are case-sensitive"
        await store.delete("a")
        assert await store.load("b") == turn("B", 2)

    async def test_list_sessions_most_recent_first_with_count_and_title(
        self, store: SessionStore, clock: None
    ) -> None:
        await store.append("old", turn("old one"), actor_id="alice")
        await store.append("mid", turn("middle", 2), actor_id="bob")
        await store.append("new", turn("newest", 4), actor_id="alice")
        infos = await store.list_sessions()
        assert all(isinstance(info, SessionInfo) for info in infos)
        assert [i.session_id for i in infos] == ["new", "mid", "old"]
        assert [i.message_count for i in infos] == [4, 2, 3]
        assert [i.title for i in infos] == [
            "newest question",
            "middle question",
            "old one question",
        ]
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

    async def test_list_sessions_filters_by_actor(self, store: SessionStore, clock: None) -> None:
        await store.append("a1", turn("x"), actor_id="alice")
        await store.append("b1", turn("y"), actor_id="bob")
        await store.append("a2", turn("z"), actor_id="alice")
        await store.append("anon", turn("w"))
        assert [i.session_id for i in await store.list_sessions(actor_id="alice")] == ["a2", "a1"]
        assert [i.session_id for i in await store.list_sessions(actor_id="bob")] == ["b1"]
        assert await store.list_sessions(actor_id="carol") == []
        assert len(await store.list_sessions()) == 4

    async def test_title_is_first_user_message_whitespace_collapsed_and_truncated(
        self, store: SessionStore
    ) -> None:
        long = "Tell me\n\n  about   " + "the cat 🐈 " * 20
        await store.append(
            "s", [{"role": "system", "content": "be brief"}, {"role": "user", "content": long}]
        )
        [info] = await store.list_sessions()
        flat = " ".join(long.split())
        assert info.title == flat[:60] + "..."
        assert info.title.startswith("Tell me about the cat 🐈 the cat")

    async def test_title_of_session_without_user_message_is_empty(
        self, store: SessionStore
    ) -> None:
        await store.append("s", [{"role": "assistant", "content": "hello"}])
        [info] = await store.list_sessions()
        assert info.title == ""
        assert info.message_count == 1

    async def test_title_comes_from_a_later_turn_when_the_first_had_no_user_message(
        self, store: SessionStore
    ) -> None:
        await store.append("s", [{"role": "assistant", "content": "Welcome!"}])
        await store.append("s", [{"role": "user", "content": "hi there"}])
        [info] = await store.list_sessions()
        assert info.title == "hi there"

    async def test_delete_returns_true_then_false_and_removes_messages(
        self, store: SessionStore
    ) -> None:
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

    async def test_concurrent_appends_to_different_sessions(self, store: SessionStore) -> None:
        await store.load("warm-up")  # first use: test_sqlite_/test_server_concurrent_first_use
        async with anyio.create_task_group() as tg:
            for n in range(12):
                tg.start_soon(store.append, f"s{n}", turn(f"t{n}", 1 + n % 4))
        for n in range(12):
            assert await store.load(f"s{n}") == turn(f"t{n}", 1 + n % 4)
        assert len(await store.list_sessions()) == 12

    async def test_concurrent_appends_to_one_session_keep_turns_whole(
        self, store: SessionStore
    ) -> None:
        turns = {n: turn(f"turn-{n}", 4) for n in range(16)}
        await store.load("warm-up")  # first use: test_sqlite_/test_server_concurrent_first_use

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

    @pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
    async def test_every_store_refuses_the_same_malformed_keys_before_any_io(
        self, store: SessionStore, key: Any
    ) -> None:
        for call in (
            lambda: store.load(key),
            lambda: store.append(key, turn("x")),
            lambda: store.info(key),
            lambda: store.delete(key),
        ):
            with pytest.raises(InvalidInput):
                await call()
        assert await store.list_sessions() == []

    @pytest.mark.parametrize("actor", ["", "a\x00", "漢", "a/b", "x" * 129], ids=repr)
    async def test_every_store_refuses_the_same_malformed_actor_ids(
        self, store: SessionStore, actor: str
    ) -> None:
        with pytest.raises(InvalidInput):
            await store.append("s", turn("x"), actor_id=actor)
        with pytest.raises(InvalidInput):
            await store.list_sessions(actor_id=actor)
        assert await store.list_sessions() == []

    @pytest.mark.parametrize(
        "key", ["s", "A-z_0.9:@", "x" * 128, "owner/s", "key-0123abcd/" + "y" * 128], ids=repr
    )
    async def test_every_store_accepts_ids_and_owner_scoped_keys(
        self, store: SessionStore, key: str
    ) -> None:
        await store.append(key, turn("ok"), actor_id="alice")
        assert await store.load(key) == turn("ok")
        info = await store.info(key)
        assert info is not None and info.session_id == key
        assert [i.session_id for i in await store.list_sessions(actor_id="alice")] == [key]
        assert await store.delete(key)

    async def test_nul_and_control_characters_in_values_round_trip_with_one_title_everywhere(
        self, store: SessionStore
    ) -> None:
        messages: list[Message] = [
            {"role": "user", "content": "a\u0000b\u0007c\u009fd"},
            {"role": "assistant", "content": "\u0000", "reasoning": [{"x": "\u0000\u0001"}]},
        ]
        await store.append("s", messages)
        assert await store.load("s") == messages
        info = await store.info("s")
        assert info is not None and info.title == "a b c d"

    async def test_info_returns_one_session_or_none(self, store: SessionStore) -> None:
        assert await store.info("missing") is None
        await store.append("s", turn("hello"), actor_id="ann")
        info = await store.info("s")
        assert info is not None
        assert (info.session_id, info.actor_id, info.message_count) == (
            "s",
            "ann",
            len(turn("hello")),
        )
        assert info.title == title_of(turn("hello"))
        await store.delete("s")
        assert await store.info("s") is None
