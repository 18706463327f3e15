"""API keys and their owners.

Every key has one owner, the name its sessions and runs belong to. An explicit `NAME=KEY` gives
the name; a bare `KEY` is owned by a name derived from the key itself (`key-` and the start of
a SHA-256 digest), never from its position in a list, so adding, removing or reordering keys
never hands one key's sessions to another. Names follow the id rule (`agentcast.ids`) and must
be unique: two keys with one owner, or one key with two, is a start-up error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from agentcast.errors import ConfigError, InvalidInput
from agentcast.ids import check_id

__all__ = ["check_api_keys", "derived_owner", "parse_api_keys"]

_DOMAIN = b"agentcast api key owner\x00"
"""Separates this digest from any other use of the key."""


def derived_owner(key: str) -> str:
    """Return the owner name of an unnamed key: stable, unique per key, not revealing it."""
    digest = hashlib.sha256(_DOMAIN + key.encode("utf-8")).hexdigest()
    return f"key-{digest[:24]}"


def parse_api_keys(items: Iterable[str]) -> dict[str, str]:
    """Return `{key: owner}` from `NAME=KEY` or `KEY` items (`--api-key`, `AGENTCAST_API_KEYS`).

    Raises:
        ConfigError: a key is empty or given twice, or a name is malformed or given twice.
    """
    keys: dict[str, str | None] = {}
    for item in items:
        name, sep, key = item.partition("=")
        if not sep:
            name, key = "", item
        if key in keys:
            raise ConfigError("an API key is given twice; give each key once")
        keys[key] = name if sep else None
    return check_api_keys(keys)


def check_api_keys(keys: Mapping[str, str | None]) -> dict[str, str]:
    """Return `{key: owner}`, deriving the owner of keys mapped to None.

    Raises:
        ConfigError: a key is empty or has spaces, or an owner is malformed or not unique.
    """
    owners: dict[str, str] = {}
    seen: set[str] = set()
    for key, name in keys.items():
        if not key or key != key.strip() or " " in key:
            raise ConfigError("an API key is empty or contains spaces")
        owner = derived_owner(key) if name is None else name
        try:
            check_id(owner, "an API key's owner name")
        except InvalidInput as exc:
            raise ConfigError(exc.message) from None
        if owner in seen:
            raise ConfigError(f"two API keys have the owner {owner!r}; owner names must be unique")
        seen.add(owner)
        owners[key] = owner
    return owners
