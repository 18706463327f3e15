"""Session stores: history that survives between runs.

`open_store(url)` picks a backend from a URL: `memory://`, `sqlite:///path/to/file.db` (the
default, a file under the agentcast home), `postgresql://...` (or `postgres://`) and `redis://...`
(or `rediss://`). The Postgres and Redis backends need the `postgres` and `redis` extras.
"""

from __future__ import annotations

import os
from pathlib import Path

from agentcast.errors import ConfigError, MissingDependency
from agentcast.sessions._base import (
    DEFAULT_TIMEOUT,
    SessionInfo,
    SessionStore,
    redact_url,
    title_of,
)
from agentcast.sessions.memory import MemoryStore

__all__ = (
    "MemoryStore",
    "SessionInfo",
    "SessionStore",
    "agentcast_home",
    "open_store",
    "redact_url",
    "title_of",
)


def agentcast_home() -> Path:
    """Return the folder for agentcast's data: `$AGENTCAST_HOME`, else the user data dir."""
    override = os.environ.get("AGENTCAST_HOME")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("agentcast", appauthor=False))


def open_store(url: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> SessionStore:
    """Return the session store a URL names; None means the default SQLite file.

    Connections are opened on first use, so a store for an unreachable server is returned
    fine and its first operation (`ping()` checks) raises `StoreUnavailable`, as does an
    operation that takes over `timeout` seconds.

    Raises:
        ConfigError: the URL's scheme is unknown.
        MissingDependency: the backend's driver is not installed (the message names the extra).
    """
    if url is None or url in ("sqlite", "sqlite://", "sqlite:///"):
        from agentcast.sessions.sqlite import SQLiteStore

        return SQLiteStore(agentcast_home() / "sessions.db", timeout=timeout)
    if url in ("memory", "memory://"):
        return MemoryStore()
    if url.startswith("sqlite:///"):
        from agentcast.sessions.sqlite import SQLiteStore

        return SQLiteStore(url[len("sqlite:///") :], timeout=timeout)
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from agentcast.sessions.postgres import PostgresStore
        except ModuleNotFoundError as exc:
            if not (exc.name or "").startswith("psycopg"):
                raise
            raise MissingDependency(
                "the Postgres session store needs psycopg: pip install 'agentcast[postgres]'"
            ) from None
        return PostgresStore(url, timeout=timeout)
    if url.startswith(("redis://", "rediss://")):
        try:
            from agentcast.sessions.redis import RedisStore
        except ModuleNotFoundError as exc:
            if not (exc.name or "").startswith("redis"):
                raise
            raise MissingDependency(
                "the Redis session store needs redis-py: pip install 'agentcast[redis]'"
            ) from None
        return RedisStore(url, timeout=timeout)
    raise ConfigError(
        f"unknown session store {url!r}; use memory://, sqlite:///path/to/file.db,"
        " postgresql://user@host/database or redis://host:6379/0"
    )
