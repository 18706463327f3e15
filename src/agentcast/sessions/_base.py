"""The `SessionStore` protocol: what every session backend provides.

History is a list of provider-neutral `Message` dicts. A run appends its whole turn (the user
message, every AI turn and tool result, and a repaired tail after a stop) in one call, so a
history is always made of whole turns and is valid input for the next model call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from agentcast.events import Message

__all__ = ["SessionInfo", "SessionStore"]


@dataclass(frozen=True)
class SessionInfo:
    """A session as listed by a store.

    Attributes:
        session_id: the session's id.
        actor_id: who owns it, when known.
        created_at: epoch milliseconds of the first turn.
        updated_at: epoch milliseconds of the latest turn.
        message_count: how many messages it holds.
        title: the start of its first user message.
    """

    session_id: str
    actor_id: str | None
    created_at: int
    updated_at: int
    message_count: int
    title: str


@runtime_checkable
class SessionStore(Protocol):
    """Loads and saves conversation history. Every method is safe to call concurrently."""

    async def load(self, session_id: str) -> list[Message]:
        """Return the session's messages, oldest first (empty for an unknown session)."""
        ...

    async def append(
        self, session_id: str, messages: Sequence[Message], *, actor_id: str | None = None
    ) -> None:
        """Append one turn's messages atomically, creating the session if needed."""
        ...

    async def list_sessions(
        self, *, actor_id: str | None = None, limit: int = 100
    ) -> list[SessionInfo]:
        """Return sessions, most recently updated first (only `actor_id`'s when given)."""
        ...

    async def info(self, session_id: str) -> SessionInfo | None:
        """Return one session's listing entry (owner, counts, title), None if unknown."""
        ...

    async def delete(self, session_id: str) -> bool:
        """Delete a session; return whether it existed."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def title_of(messages: Sequence[Message]) -> str:
    """Return a short title for a session: the start of its first user message."""
    for message in messages:
        if message.get("role") == "user":
            text = " ".join(str(message.get("content", "")).split())
            return text[:60] + ("..." if len(text) > 60 else "")
    return ""
