"""Session stores: history that survives between runs.

`open_store(url)` picks a backend from a URL: `memory://`, `sqlite:///path/to/file.db` (the
default, a file under the agentcast home), with Postgres and Redis backends to come.
"""

from __future__ import annotations

import os
from pathlib import Path

from agentcast.errors import ConfigError
from agentcast.sessions._base import SessionInfo, SessionStore, title_of
from agentcast.sessions.memory import MemoryStore

__all__ = ("MemoryStore", "SessionInfo", "SessionStore", "agentcast_home", "open_store", "title_of")


def agentcast_home() -> Path:
    """Return the folder for agentcast's data: `$AGENTCAST_HOME`, else the user data dir."""
    override = os.environ.get("AGENTCAST_HOME")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("agentcast", appauthor=False))


def open_store(url: str | None = None) -> SessionStore:
    """Return the session store a URL names; None means the default SQLite file.

    Raises:
        ConfigError: the URL's scheme is unknown or not available.
    """
    if url is None or url in ("sqlite", "sqlite://", "sqlite:///"):
        from agentcast.sessions.sqlite import SQLiteStore

        return SQLiteStore(agentcast_home() / "sessions.db")
    if url in ("memory", "memory://"):
        return MemoryStore()
    if url.startswith("sqlite:///"):
        from agentcast.sessions.sqlite import SQLiteStore

        return SQLiteStore(url[len("sqlite:///") :])
    scheme = url.split("://", 1)[0] if "://" in url else url
    if scheme in ("postgres", "postgresql", "redis", "rediss"):
        raise ConfigError(
            f"the {scheme} session store is not available in this version yet;"
            " use sqlite:///path.db or memory://"
        )
    raise ConfigError(f"unknown session store {url!r}; use memory:// or sqlite:///path/to/file.db")
