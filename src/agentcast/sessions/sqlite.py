"""The default session store: one SQLite file, zero setup, survives restarts.

This module is the only importer of `aiosqlite`. Each turn is written in one transaction, so a
crash never leaves half a turn; WAL mode lets several processes read while one writes.

The schema's version is the file's `PRAGMA user_version`. `setup()` (run on first use) applies
the pending `MIGRATIONS` and the new version in one `BEGIN IMMEDIATE` transaction: a second
process starting at the same moment waits for the write lock, then finds the steps applied.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiosqlite
import anyio
import msgspec

from agentcast.errors import SessionError, StoreUnavailable
from agentcast.events import Message
from agentcast.ids import check_session_key
from agentcast.sessions._base import (
    DEFAULT_TIMEOUT,
    SessionInfo,
    answer_within,
    check_actor,
    check_schema_version,
    check_turn,
    fenced,
    title_of,
)

__all__ = ["MIGRATIONS", "SQLiteStore"]

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the tables of the first release. A database from before versioning (user_version 0)
    # already has them; IF NOT EXISTS lets this step stamp it as version 1 untouched.
    (
        "CREATE TABLE IF NOT EXISTS sessions ("
        " session_id TEXT PRIMARY KEY,"
        " actor_id   TEXT,"
        " title      TEXT NOT NULL DEFAULT '',"
        " created_at INTEGER NOT NULL,"
        " updated_at INTEGER NOT NULL)",
        "CREATE TABLE IF NOT EXISTS messages ("
        " id         INTEGER PRIMARY KEY AUTOINCREMENT,"
        " session_id TEXT NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,"
        " body       BLOB NOT NULL)",
        "CREATE INDEX IF NOT EXISTS messages_by_session ON messages(session_id, id)",
    ),
    # 2: `list_sessions` orders (and filters by actor) without scanning every session.
    (
        "CREATE INDEX IF NOT EXISTS sessions_by_update ON sessions(updated_at DESC)",
        "CREATE INDEX IF NOT EXISTS sessions_by_actor ON sessions(actor_id, updated_at DESC)",
    ),
    # 3: the highest fencing token that saved on the session (`append(fence=)`); 0: none.
    ("ALTER TABLE sessions ADD COLUMN fence INTEGER NOT NULL DEFAULT 0",),
    # 4: a deleted session that had a fence keeps its row as a tombstone (`delete`): 1.
    ("ALTER TABLE sessions ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0",),
)
"""The schema's migration steps, oldest first: step N brings the file to `user_version` N.

A released step is never edited; a schema change is a new step appended here.
"""


class SQLiteStore:
    """Sessions in a SQLite file.

    Each operation opens its own short-lived connection: a run touches the store twice (load,
    then save the turn), so the cost is negligible, and nothing is left open to leak, to keep
    the process alive at exit, or to be tied to one event loop.

    Args:
        path: the database file; its folder is created if missing.
        timeout: seconds to wait for another writer's lock before `StoreUnavailable`; an
            operation stuck on the file system itself fails after `2 * timeout + 1` s.
    """

    def __init__(self, path: str | Path, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.path = Path(path).expanduser()
        self.timeout = timeout
        self._ready = False
        self._setup_lock: anyio.Lock | None = None

    @contextlib.asynccontextmanager
    async def _connect(self) -> AsyncIterator[aiosqlite.Connection]:
        # Waiting for another writer's lock is bounded by SQLite itself (its busy timeout: a
        # clean "database is locked", no worker thread left running a statement); this outer
        # bound, later on purpose, only stops a file system that does not answer at all.
        with answer_within(2 * self.timeout + 1, str(self.path)):
            async with self._setup_and_open() as db:
                yield db

    @contextlib.asynccontextmanager
    async def _setup_and_open(self) -> AsyncIterator[aiosqlite.Connection]:
        if not self._ready:
            # One-time setup (folder, WAL, schema) must not run on several connections at
            # once: switching to WAL needs the database to itself.
            self._setup_lock = self._setup_lock or anyio.Lock()
            async with self._setup_lock:
                if not self._ready:
                    async with self._open() as db:
                        await self._migrate(db)
                    self._ready = True
        async with self._open() as db:
            yield db

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[aiosqlite.Connection]:
        try:
            # Checked first: a failed connect leaves aiosqlite's worker thread behind.
            if self.path.is_dir():
                raise IsADirectoryError(f"{self.path} is a folder")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Connect and close are shielded: a cancel landing inside either leaves aiosqlite's
            # worker thread calling back into a loop that may be closed by then (Ctrl-C).
            with anyio.CancelScope(shield=True):
                db = await aiosqlite.connect(self.path, timeout=self.timeout)
        except (OSError, aiosqlite.Error) as exc:
            message = f"cannot open the session database {self.path}: {exc}"
            raise StoreUnavailable(message) from exc
        try:
            await db.execute("PRAGMA foreign_keys=ON")
            yield db
        except aiosqlite.OperationalError as exc:
            # "database is locked": another writer held it for all of `timeout`.
            kind = StoreUnavailable if "locked" in str(exc) else SessionError
            raise kind(f"session database error in {self.path}: {exc}") from exc
        except aiosqlite.Error as exc:
            raise SessionError(f"session database error in {self.path}: {exc}") from exc
        finally:
            with anyio.CancelScope(shield=True):
                await db.close()

    async def _migrate(self, db: aiosqlite.Connection) -> None:
        latest = len(MIGRATIONS)
        try:
            await db.execute("PRAGMA journal_mode=WAL")  # not inside a transaction
        except aiosqlite.OperationalError as exc:
            # The switch needs the file to itself and may not wait for it: another store
            # object is using the file right now. WAL only lets readers run beside a writer;
            # the next store's first use switches it.
            if "locked" not in str(exc):
                raise
        if await self._version(db) == latest:  # the usual case: no write lock taken
            return
        # DDL and user_version are transactional in SQLite: the steps and the version that
        # records them commit together, and IMMEDIATE makes a concurrent setup wait here.
        await db.execute("BEGIN IMMEDIATE")
        try:
            version = await self._version(db)
            check_schema_version(version, latest, str(self.path))
            for step in MIGRATIONS[version:]:
                for statement in step:
                    await db.execute(statement)
            await db.execute(f"PRAGMA user_version = {latest}")
            await db.commit()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await db.rollback()
            raise

    async def _version(self, db: aiosqlite.Connection) -> int:
        async with db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        found = 0 if row is None else int(row[0])
        check_schema_version(found, len(MIGRATIONS), str(self.path))
        return found

    async def setup(self) -> None:
        """Create the file and its tables, or migrate them, to this version's schema.

        Raises:
            ConfigError: the file was written by a newer agentcast.
            StoreUnavailable: the file cannot be opened, or stays locked past the timeout.
        """
        async with self._connect():
            pass

    async def load(self, session_id: str) -> list[Message]:
        """Return the session's messages, oldest first."""
        check_session_key(session_id)
        async with (
            self._connect() as db,
            db.execute(
                "SELECT body FROM messages WHERE session_id = ? ORDER BY id", (session_id,)
            ) as cursor,
        ):
            rows = await cursor.fetchall()
        return [msgspec.json.decode(row[0]) for row in rows]

    async def append(
        self,
        session_id: str,
        messages: Sequence[Message],
        *,
        actor_id: str | None = None,
        fence: int | None = None,
    ) -> None:
        """Append one turn in a single transaction (`fence`: see `SessionStore.append`)."""
        check_turn(session_id, actor_id, fence)
        now = time.time_ns() // 1_000_000
        async with self._connect() as db:
            # The upsert takes the write lock and checks the fence in one statement; refused,
            # it changes no row, and the transaction is rolled back before anything else.
            # On a tombstone (a deleted session's fence) the session starts afresh.
            cursor = await db.execute(
                "INSERT INTO sessions(session_id, actor_id, title, created_at, updated_at,"
                " fence) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(session_id) DO UPDATE SET"
                " updated_at = excluded.updated_at,"
                " fence = max(sessions.fence, excluded.fence),"
                " title = CASE WHEN sessions.deleted OR sessions.title = '' THEN excluded.title"
                " ELSE sessions.title END,"
                " actor_id = CASE WHEN sessions.deleted THEN excluded.actor_id"
                " ELSE sessions.actor_id END,"
                " created_at = CASE WHEN sessions.deleted THEN excluded.created_at"
                " ELSE sessions.created_at END,"
                " deleted = 0"
                " WHERE ? OR sessions.fence <= excluded.fence",
                (session_id, actor_id, title_of(messages), now, now, fence or 0, fence is None),
            )
            if cursor.rowcount == 0:
                await db.rollback()
                raise fenced()
            await db.executemany(
                "INSERT INTO messages(session_id, body) VALUES (?, ?)",
                [(session_id, msgspec.json.encode(m)) for m in messages],
            )
            await db.commit()

    async def list_sessions(
        self, *, actor_id: str | None = None, limit: int = 100
    ) -> list[SessionInfo]:
        """Return sessions, most recently updated first."""
        check_actor(actor_id)
        query = (
            "SELECT s.session_id, s.actor_id, s.created_at, s.updated_at, s.title,"
            " (SELECT COUNT(*) FROM messages m WHERE m.session_id = s.session_id)"
            " FROM sessions s"
        )
        params: tuple[object, ...] = ()
        query += " WHERE NOT s.deleted"
        if actor_id is not None:
            query += " AND s.actor_id = ?"
            params = (actor_id,)
        query += " ORDER BY s.updated_at DESC, s.rowid DESC LIMIT ?"
        async with self._connect() as db, db.execute(query, (*params, limit)) as cursor:
            rows = await cursor.fetchall()
        return [SessionInfo(r[0], r[1], r[2], r[3], r[5], r[4]) for r in rows]

    async def info(self, session_id: str) -> SessionInfo | None:
        """Return one session's entry."""
        check_session_key(session_id)
        query = (
            "SELECT s.session_id, s.actor_id, s.created_at, s.updated_at, s.title,"
            " (SELECT COUNT(*) FROM messages m WHERE m.session_id = s.session_id)"
            " FROM sessions s WHERE s.session_id = ? AND NOT s.deleted"
        )
        async with self._connect() as db, db.execute(query, (session_id,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else SessionInfo(row[0], row[1], row[2], row[3], row[5], row[4])

    async def delete(self, session_id: str, *, fence: int | None = None) -> bool:
        """Delete a session and its messages (its fence stays: `SessionStore.delete`)."""
        check_turn(session_id, None, fence)
        async with self._connect() as db:
            # The first write takes the lock: the row read next cannot change before the commit.
            await db.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))
            async with db.execute(
                "SELECT deleted, fence FROM sessions WHERE session_id = ?", (session_id,)
            ) as cursor:
                row = await cursor.fetchone()
            if row is not None and max(int(row[1]), fence or 0) > 0:
                await db.execute(
                    "UPDATE sessions SET deleted = 1, title = '', fence = max(fence, ?)"
                    " WHERE session_id = ?",
                    (fence or 0, session_id),
                )
            elif row is not None:
                await db.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,))
            await db.commit()
            return row is not None and not row[0]

    async def aclose(self) -> None:
        """Nothing stays open between operations."""

    async def ping(self) -> None:
        """Open the database (creating it and its tables if needed) and run a query."""
        async with self._connect() as db, db.execute("SELECT 1") as cursor:
            await cursor.fetchone()
