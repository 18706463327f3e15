"""The `SessionStore` protocol: what every session backend provides.

Every store accepts and refuses the same ids: a session is named by a key, an id or `owner/id`
(`agentcast.ids.check_session_key`), an actor by an id; anything else is `InvalidInput` before
any I/O. Message values are stored as msgspec JSON, so any text (NUL included) round-trips.

History is a list of provider-neutral `Message` dicts. A run appends its whole turn (the user
message, every AI turn and tool result, and a repaired tail after a stop) in one call, so a
history is always made of whole turns and is valid input for the next model call.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import anyio

from agentcast.errors import ConfigError, InvalidInput, SessionFenced, StoreUnavailable
from agentcast.events import Message
from agentcast.ids import check_id, check_session_key

__all__ = [
    "DEFAULT_TIMEOUT",
    "SessionInfo",
    "SessionStore",
    "answer_within",
    "check_actor",
    "check_schema_version",
    "check_turn",
    "fenced",
    "title_of",
]

DEFAULT_TIMEOUT = 5.0
"""Seconds a store operation (connecting included) may take before `StoreUnavailable`."""

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


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

    async def setup(self) -> None:
        """Create or migrate the store's tables (or keys) to this version's schema.

        Idempotent and safe when several processes start at once: each migration step is
        applied once. Every other method runs it on first use, so calling it is optional; a
        server calls it at start-up to fail early.

        Raises:
            ConfigError: the store was written by a newer agentcast (its schema is ahead).
        """
        ...

    async def load(self, session_id: str) -> list[Message]:
        """Return the session's messages, oldest first (empty for an unknown session)."""
        ...

    async def append(
        self,
        session_id: str,
        messages: Sequence[Message],
        *,
        actor_id: str | None = None,
        fence: int | None = None,
    ) -> None:
        """Append one turn's messages atomically, creating the session if needed.

        `fence` is the fencing token of the session lock the run held (with a broker): the
        store refuses it when a higher one has saved on the session, else records it as the
        session's fence (the highest), in the same atomic step as the append. None (one
        process, no lock) is never refused and records nothing.

        Raises:
            SessionFenced: a higher fence has saved on the session; nothing was written.
        """
        ...

    async def list_sessions(
        self, *, actor_id: str | None = None, limit: int = 100
    ) -> list[SessionInfo]:
        """Return sessions, most recently updated first (only `actor_id`'s when given)."""
        ...

    async def info(self, session_id: str) -> SessionInfo | None:
        """Return one session's listing entry (owner, counts, title), None if unknown."""
        ...

    async def delete(self, session_id: str, *, fence: int | None = None) -> bool:
        """Delete a session; return whether it existed.

        A session that has a fence (`append(fence=)`) keeps it when deleted, raised to `fence`
        if that is higher (`fence`: the token of the session lock the delete held, with a
        broker): an invisible tombstone, so that a turn saved late under an older lock is
        refused (`SessionFenced`) instead of bringing the session back. A turn with a newer
        fence, or none, starts the session afresh. Without fences nothing is kept.

        Raises:
            InvalidInput: the key or the fence is malformed.
        """
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...

    async def ping(self) -> None:
        """Check the store answers (cheaply); raise `StoreUnavailable` if it does not."""
        ...


@contextlib.contextmanager
def answer_within(seconds: float, store: str) -> Iterator[None]:
    """Bound a store operation: past `seconds`, cancel it and raise `StoreUnavailable`.

    Drivers bound connecting, not a server that accepts and then never answers; this bounds
    the whole operation, whatever it waits on.

    Args:
        seconds: the time limit.
        store: how the error names the store (a redacted URL, a path).
    """
    with anyio.move_on_after(seconds) as scope:
        yield
    if scope.cancelled_caught:
        raise StoreUnavailable(f"the session store {store} did not answer within {seconds:g} s")


def check_schema_version(found: int, known: int, store: str) -> None:
    """Refuse a store whose schema is newer than the migrations this code knows.

    Args:
        found: the schema version the store records.
        known: the newest version this code migrates to.
        store: how the error names the store (a redacted URL, a path).

    Raises:
        ConfigError: `found` is ahead of `known`.
    """
    if found > known:
        raise ConfigError(
            f"the session store {store} has schema version {found}, newer than the {known}"
            " this agentcast knows: upgrade agentcast, or point it at another store"
        )


def check_turn(session_id: object, actor_id: object, fence: object = None) -> None:
    """Refuse a malformed session key, actor id or fence (what `append` checks).

    Raises:
        InvalidInput: an id breaks the id rule, or the fence is not a non-negative int.
    """
    check_session_key(session_id)
    check_actor(actor_id)
    if fence is not None and (type(fence) is not int or fence < 0):
        raise InvalidInput(f"fence must be a non-negative int or None, not {fence!r}")


def check_actor(actor_id: object) -> None:
    """Refuse a malformed actor id (None is no actor).

    Raises:
        InvalidInput: it breaks the id rule.
    """
    if actor_id is not None:
        check_id(actor_id, "actor_id")


def fenced() -> SessionFenced:
    """The error of a save refused for its fencing token (one wording in every store).

    It names neither the session nor the tokens: it reaches the run's reader, who needs to
    know only that the turn was not kept and why.
    """
    return SessionFenced("the turn was not saved: the session's lock was taken by a newer run")


def title_of(messages: Sequence[Message]) -> str:
    """Return a short title for a session: the start of its first user message.

    Control characters (NUL included) count as spaces, so every store, whatever its text type
    accepts, holds the same title.
    """
    for message in messages:
        if message.get("role") == "user":
            text = " ".join(_CONTROL.sub(" ", str(message.get("content", ""))).split())
            return text[:60] + ("..." if len(text) > 60 else "")
    return ""


def redact_url(url: str) -> str:
    """Return `url` with its password (in the user info or a `password=` parameter) as `***`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    ends = [at for at in (rest.find(c) for c in "/?#") if at >= 0]
    netloc, tail = rest[: min(ends, default=len(rest))], rest[min(ends, default=len(rest)) :]
    userinfo, at, host = netloc.rpartition("@")
    if ":" in userinfo:
        userinfo = userinfo.partition(":")[0] + ":***"
    tail = re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", tail)
    return f"{scheme}://{userinfo}{at}{host}{tail}"
