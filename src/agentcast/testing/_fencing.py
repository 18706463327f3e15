"""The fencing part of the session-store conformance suite (`append(fence=)`, `delete(fence=)`).

With a broker, each run on a session holds the session's lock and saves its turn with the
lock's fencing token; a worker that stalled past its lease must not overwrite what a newer
lock's holder did, whether that was a turn or the session's deletion. `StoreConformance`
inherits these tests; they are here only to keep each module one job.
"""

from __future__ import annotations

from typing import Any

import pytest

from agentcast.errors import InvalidInput, SessionFenced
from agentcast.events import Message
from agentcast.sessions import SessionStore

__all__ = ["FencingConformance", "turn"]


def turn(tag: str, size: int = 3) -> list[Message]:
    """A turn: one user question and `size - 1` assistant messages, tagged `tag`."""
    messages: list[Message] = [{"role": "user", "content": f"{tag} question"}]
    messages += [{"role": "assistant", "content": f"{tag} part {i}"} for i in range(1, size)]
    return messages


class FencingConformance:
    """Fencing tests: a stalled worker's late turn is refused, a deleted session stays deleted.

    A mixin of `StoreConformance` (which supplies the `store` fixture and the anyio mark).
    """

    async def test_a_fence_below_the_sessions_is_refused_and_writes_nothing(
        self, store: SessionStore
    ) -> None:
        await store.append("s", turn("newer"), actor_id="ann", fence=7)
        before = await store.info("s")
        with pytest.raises(SessionFenced, match="newer run"):
            await store.append("s", turn("late"), actor_id="ann", fence=6)
        assert await store.load("s") == turn("newer")
        assert await store.info("s") == before, "a refused turn changes no metadata"
        with pytest.raises(SessionFenced):  # the recorded fence is the highest, not the last
            await store.append("s", turn("late"), fence=0)

    async def test_an_equal_or_higher_fence_is_accepted_and_raises_the_sessions(
        self, store: SessionStore
    ) -> None:
        await store.append("s", turn("one"), fence=3)
        await store.append("s", turn("two"), fence=3)
        await store.append("s", turn("three"), fence=9)
        with pytest.raises(SessionFenced):
            await store.append("s", turn("late"), fence=8)
        assert await store.load("s") == [*turn("one"), *turn("two"), *turn("three")]

    async def test_no_fence_is_never_refused_and_leaves_the_sessions_as_it_was(
        self, store: SessionStore
    ) -> None:
        await store.append("s", turn("unfenced"))
        await store.append("s", turn("fenced"), fence=5)
        await store.append("s", turn("one process"))  # None: no lock, never refused
        with pytest.raises(SessionFenced):
            await store.append("s", turn("late"), fence=4)
        expected = [*turn("unfenced"), *turn("fenced"), *turn("one process")]
        assert await store.load("s") == expected

    async def test_a_fence_on_one_session_does_not_affect_another(
        self, store: SessionStore
    ) -> None:
        await store.append("a", turn("A"), fence=100)
        await store.append("b", turn("B"), fence=1)
        await store.append("owner/a", turn("other owner"), fence=1)
        assert await store.load("b") == turn("B")
        assert await store.load("owner/a") == turn("other owner")

    @pytest.mark.parametrize("fence", [-1, 1.5, "3", True], ids=repr)
    async def test_a_malformed_fence_is_refused_before_any_io(
        self, store: SessionStore, fence: Any
    ) -> None:
        with pytest.raises(InvalidInput):
            await store.append("s", turn("x"), fence=fence)
        assert await store.list_sessions() == []

    # -- a delete keeps the session's fence: a late turn cannot bring the session back --------

    async def test_a_delete_under_a_lock_refuses_an_older_locks_late_turn(
        self, store: SessionStore
    ) -> None:
        await store.append("s", turn("kept"), actor_id="ann", fence=5)
        assert await store.delete("s", fence=8) is True
        # Worker A took the lock at 7, stalled past its lease, and wakes after the delete.
        with pytest.raises(SessionFenced):
            await store.append("s", turn("late"), actor_id="ann", fence=7)
        assert await store.load("s") == []
        assert await store.info("s") is None
        assert await store.list_sessions() == []
        assert await store.list_sessions(actor_id="ann") == []

    async def test_a_newer_lock_or_no_lock_starts_the_deleted_session_afresh(
        self, store: SessionStore
    ) -> None:
        await store.append("s", turn("old"), actor_id="ann", fence=5)
        await store.delete("s", fence=8)
        await store.append("s", turn("new"), actor_id="bob", fence=9)
        assert await store.load("s") == turn("new")
        info = await store.info("s")
        assert info is not None
        assert (info.actor_id, info.title, info.message_count) == ("bob", "new question", 3)
        assert [i.session_id for i in await store.list_sessions(actor_id="bob")] == ["s"]
        assert await store.list_sessions(actor_id="ann") == []
        with pytest.raises(SessionFenced):  # the fence kept through the delete still holds
            await store.append("s", turn("late"), fence=8)
        await store.delete("s", fence=10)
        await store.append("s", turn("one process"))  # no fence: never refused
        assert await store.load("s") == turn("one process")

    async def test_a_delete_without_a_fence_keeps_the_sessions_own(
        self, store: SessionStore
    ) -> None:
        await store.append("s", turn("fenced"), fence=5)
        assert await store.delete("s") is True
        with pytest.raises(SessionFenced):
            await store.append("s", turn("late"), fence=4)
        assert await store.info("s") is None
        await store.append("s", turn("next"), fence=5)
        assert await store.load("s") == turn("next")

    async def test_a_tombstone_is_no_session_and_a_missing_session_gets_none(
        self, store: SessionStore
    ) -> None:
        await store.append("s", turn("x"), fence=3)
        await store.delete("s", fence=4)
        assert await store.delete("s") is False, "a tombstone is not a session"
        assert await store.delete("s", fence=6) is False
        with pytest.raises(SessionFenced):  # ...but the higher fence was kept
            await store.append("s", turn("late"), fence=5)
        assert await store.delete("never", fence=9) is False
        await store.append("never", turn("first"), fence=1)  # nothing was kept for it
        assert await store.load("never") == turn("first")

    async def test_sessions_without_fences_leave_nothing_when_deleted(
        self, store: SessionStore
    ) -> None:
        await store.append("s", turn("plain"))
        assert await store.delete("s") is True
        await store.append("s", turn("again"), fence=1)  # no tombstone refuses it
        assert await store.load("s") == turn("again")

    @pytest.mark.parametrize("fence", [-1, 1.5, "3", True], ids=repr)
    async def test_a_malformed_delete_fence_is_refused_before_any_io(
        self, store: SessionStore, fence: Any
    ) -> None:
        await store.append("s", turn("x"))
        with pytest.raises(InvalidInput):
            await store.delete("s", fence=fence)
        assert await store.load("s") == turn("x")
