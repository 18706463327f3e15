"""An in-process session store: for tests and short-lived programs."""

from __future__ import annotations

import time
from collections.abc import Sequence

import msgspec

from agentcast.events import Message
from agentcast.ids import check_session_key
from agentcast.sessions._base import SessionInfo, check_actor, check_turn, fenced, title_of

__all__ = ["MemoryStore"]


class MemoryStore:
    """Keeps sessions in a dict; nothing survives the process."""

    def __init__(self) -> None:
        # Stored encoded, like every other backend: a caller can never mutate stored history,
        # and encoding is far cheaper than a deep copy.
        self._messages: dict[str, list[bytes]] = {}
        self._meta: dict[str, tuple[str | None, int, int]] = {}
        self._fences: dict[str, int] = {}  # the highest fencing token that saved, per session

    async def setup(self) -> None:
        """Nothing to create: a dict has no schema."""

    async def load(self, session_id: str) -> list[Message]:
        """Return a copy of the session's messages."""
        check_session_key(session_id)
        return [msgspec.json.decode(raw) for raw in self._messages.get(session_id, ())]

    async def append(
        self,
        session_id: str,
        messages: Sequence[Message],
        *,
        actor_id: str | None = None,
        fence: int | None = None,
    ) -> None:
        """Append one turn (refused for a fence below the session's: `SessionStore.append`)."""
        check_turn(session_id, actor_id, fence)
        bodies = [msgspec.json.encode(m) for m in messages]  # before any write: all or nothing
        if fence is not None:
            # No await between the check and the write: atomic on the event loop.
            if fence < self._fences.get(session_id, 0):
                raise fenced()
            self._fences[session_id] = fence
        now = time.time_ns() // 1_000_000
        actor, created, _ = self._meta.get(session_id, (actor_id, now, now))
        self._messages.setdefault(session_id, []).extend(bodies)
        self._meta[session_id] = (actor, created, now)

    async def list_sessions(
        self, *, actor_id: str | None = None, limit: int = 100
    ) -> list[SessionInfo]:
        """Return sessions, most recent first."""
        check_actor(actor_id)
        infos = [
            SessionInfo(
                sid,
                actor,
                created,
                updated,
                len(self._messages[sid]),
                self._title(sid),
            )
            for sid, (actor, created, updated) in self._meta.items()
            if actor_id is None or actor == actor_id
        ]
        infos.sort(key=lambda info: info.updated_at, reverse=True)
        return infos[:limit]

    async def info(self, session_id: str) -> SessionInfo | None:
        """Return one session's entry."""
        check_session_key(session_id)
        meta = self._meta.get(session_id)
        if meta is None:
            return None
        actor, created, updated = meta
        count = len(self._messages[session_id])
        return SessionInfo(session_id, actor, created, updated, count, self._title(session_id))

    def _title(self, session_id: str) -> str:
        for raw in self._messages[session_id]:
            message = msgspec.json.decode(raw)
            if message.get("role") == "user":
                return title_of([message])
        return ""

    async def delete(self, session_id: str, *, fence: int | None = None) -> bool:
        """Delete a session (its fence stays: `SessionStore.delete`)."""
        check_turn(session_id, None, fence)
        self._meta.pop(session_id, None)
        kept = max(self._fences.get(session_id, 0), fence or 0)
        existed = self._messages.pop(session_id, None) is not None
        if kept and (existed or session_id in self._fences):
            self._fences[session_id] = kept
        return existed

    async def aclose(self) -> None:
        """Nothing to release."""

    async def ping(self) -> None:
        """Always answers: it lives in this process."""
