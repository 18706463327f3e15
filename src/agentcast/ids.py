"""The one rule for ids, and how a session is keyed within its owner's namespace.

An id (a session, run or actor id, an API key's owner name) is 1 to 128 ASCII letters, digits
and `_ - . : @`. Nothing else: no `/` (ids are URL path segments), no NUL or other control
characters (Postgres text refuses NUL), no spaces and nothing outside ASCII (ids travel in HTTP
headers such as `X-Session-Id`, which are latin-1 at best). The library, every server entry
point and every session store apply this rule through `check_id`, so an id is accepted or
refused the same way everywhere, before anything runs or is stored.

With API keys, a session id names a session *within its owner's namespace*: the store keeps it
under `session_key(session_id, owner)` = `owner/session_id`, so two keys that pick the same id
get two sessions and never see each other's rows, runs or locks. A key without an owner (no
authentication) is the session id itself; since ids never contain `/`, the two kinds of keys
cannot collide.

This module imports only the standard library and `agentcast.errors`.
"""

from __future__ import annotations

import re

from agentcast.errors import InvalidInput

__all__ = (
    "ID_ALPHABET",
    "ID_PATTERN",
    "MAX_ID_LENGTH",
    "check_id",
    "check_session_key",
    "session_id_in",
    "session_key",
)

MAX_ID_LENGTH = 128
"""The longest id accepted."""

ID_ALPHABET = "A-Z a-z 0-9 _ - . : @"
"""The characters an id may hold, as documented."""

_ID = r"[A-Za-z0-9_.:@-]{1,128}"
ID_PATTERN = f"^{_ID}$"
"""The id rule as a regular expression (for schemas; `check_id` applies it)."""
_ID_RE = re.compile(_ID)
_KEY_RE = re.compile(rf"(?:{_ID}/)?{_ID}")
_SEPARATOR = "/"


def check_id(value: object, what: str = "session_id") -> str:
    """Return `value` if it is a valid id.

    Args:
        value: the id to check.
        what: how to name it in the error (`session_id`, `run_id`, `actor_id`...).

    Raises:
        InvalidInput: `value` is not a string of 1-128 allowed characters.
    """
    if isinstance(value, str) and _ID_RE.fullmatch(value):
        return value
    raise InvalidInput(
        f"{what} must be 1-{MAX_ID_LENGTH} characters of {ID_ALPHABET}, got {_show(value)}"
    )


def session_key(session_id: str, owner: str | None) -> str:
    """Return where a session is stored: `owner/session_id`, or the id itself without owner."""
    return session_id if owner is None else f"{owner}{_SEPARATOR}{session_id}"


def session_id_in(key: str, owner: str | None) -> str | None:
    """Return the session id a stored key names within `owner`'s namespace, None if outside."""
    head, separator, tail = key.rpartition(_SEPARATOR)
    if owner is None:
        return None if separator else key
    return tail if separator and head == owner else None


def check_session_key(value: object) -> str:
    """Return `value` if it is a valid store key: an id, or `owner/id` (two ids).

    Raises:
        InvalidInput: it is not.
    """
    if isinstance(value, str) and _KEY_RE.fullmatch(value):
        return value
    raise InvalidInput(
        f"a session key must be an id or owner/id (ids: 1-{MAX_ID_LENGTH} characters of"
        f" {ID_ALPHABET}), got {_show(value)}"
    )


def _show(value: object) -> str:
    """Describe a refused value without echoing an unbounded amount of it."""
    if not isinstance(value, str):
        return f"a {type(value).__name__}"
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:50]}... ({len(value)} characters)"
