"""Sessions in PostgreSQL: shared by every server process and host that reaches the database.

This module is the only importer of `psycopg`. Each turn is written in one transaction: the
session's row is upserted first, which locks it until the commit, so concurrent appends to one
session (from any number of tasks, processes or hosts) are serialized and every turn stays
contiguous. Messages are stored as the exact JSON bytes msgspec writes (`BYTEA`), not as
`JSONB`, which would reorder keys and reject the NUL character.

Schema (the table prefix defaults to `agentcast_`; pick a schema with the URL's `options`,
e.g. `?options=-csearch_path%3Dmyschema`):

```
{prefix}sessions  session_id PK, actor_id, title, created_at, updated_at (epoch ms),
                  message_count, touched (a sequence number: the update order, for ties),
                  fence (the highest fencing token that saved a turn; 0: none),
                  deleted (a tombstone: a deleted session's fence, listed nowhere)
{prefix}messages  (session_id, position) PK -> sessions ON DELETE CASCADE, body BYTEA
{prefix}schema    version PK, applied_at (epoch ms): one row per applied migration step
```

`setup()` (run on first use) applies the pending `MIGRATIONS`, each with its `schema` row, in
one transaction under an advisory lock: a second process starting at the same moment waits for
the lock, then reads the steps as applied (and the primary key would refuse a second row).
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import AsyncIterator, Sequence

import anyio
import msgspec
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow

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
    redact_url,
    title_of,
)

__all__ = ["MIGRATIONS", "PostgresStore"]

_SETUP_LOCK = 0x6167656E74636173  # "agentcas": the advisory lock taken while creating tables

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the tables of the first release. Tables from before versioning (no schema table:
    # version 0) already exist; IF NOT EXISTS lets this step record them as version 1 untouched.
    (
        "CREATE TABLE IF NOT EXISTS {sessions} ("
        " session_id TEXT PRIMARY KEY,"
        " actor_id TEXT,"
        " title TEXT NOT NULL DEFAULT '',"
        " created_at BIGINT NOT NULL,"
        " updated_at BIGINT NOT NULL,"
        " message_count INTEGER NOT NULL DEFAULT 0,"
        " touched BIGSERIAL NOT NULL)",
        "CREATE TABLE IF NOT EXISTS {messages} ("
        " session_id TEXT NOT NULL REFERENCES {sessions}(session_id) ON DELETE CASCADE,"
        " position INTEGER NOT NULL,"
        " body BYTEA NOT NULL,"
        " PRIMARY KEY (session_id, position))",
        "CREATE INDEX IF NOT EXISTS {sessions_by_update} ON {sessions}"
        " (updated_at DESC, touched DESC)",
        "CREATE INDEX IF NOT EXISTS {sessions_by_actor} ON {sessions}"
        " (actor_id, updated_at DESC, touched DESC)",
    ),
    # 2: the highest fencing token that saved on the session (`append(fence=)`); 0: none.
    ("ALTER TABLE {sessions} ADD COLUMN IF NOT EXISTS fence BIGINT NOT NULL DEFAULT 0",),
    # 3: a deleted session that had a fence keeps its row as a tombstone (`delete`).
    ("ALTER TABLE {sessions} ADD COLUMN IF NOT EXISTS deleted BOOLEAN NOT NULL DEFAULT false",),
)
"""The schema's migration steps, oldest first: step N brings the tables to version N.

Statements name relations as `{sessions}`, `{messages}`, `{sessions_by_update}`,
`{sessions_by_actor}` (the prefixed identifiers). A released step is never edited; a schema
change is a new step appended here.
"""

_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")


class PostgresStore:
    """Sessions in PostgreSQL tables, created on first use.

    Each operation opens its own short-lived connection, like `SQLiteStore`: a run touches the
    store twice (load, then save the turn), so nothing is left open to leak, to keep the
    process alive at exit, or to be tied to one event loop (`Agent.invoke` runs each call on a
    new loop). For many operations per second, put PgBouncer in front of the server.

    Args:
        url: a libpq URL, `postgresql://user:password@host:5432/database` (also `postgres://`).
        table_prefix: the start of the tables' names; letters, digits and `_`.
        timeout: seconds an operation may take, connecting included, before
            `StoreUnavailable` (the URL's `connect_timeout`, when set, bounds connecting).

    Raises:
        ValueError: the table prefix is not a plain identifier.
    """

    def __init__(
        self, url: str, *, table_prefix: str = "agentcast_", timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        if not _PREFIX.fullmatch(table_prefix):
            raise ValueError(
                f"table_prefix must be letters, digits and _ (at most 40), not {table_prefix!r}"
            )
        self.url = url
        self.table_prefix = table_prefix
        self.timeout = timeout
        self._ready = False
        self._names = {
            name: sql.Identifier(f"{table_prefix}{name}")
            for name in ("sessions", "messages", "sessions_by_update", "sessions_by_actor")
        }
        self._version_table = f"{table_prefix}schema"
        sessions, messages = self._names["sessions"], self._names["messages"]
        # A refused fence updates nothing and returns no row; the row is locked all the same.
        # On a tombstone (a deleted session's fence) the session starts afresh.
        self._upsert = sql.SQL(
            "INSERT INTO {s} AS s (session_id, actor_id, title, created_at, updated_at,"
            " message_count, fence) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (session_id) DO UPDATE SET"
            " updated_at = excluded.updated_at,"
            " touched = excluded.touched,"
            " message_count = CASE WHEN s.deleted THEN 0 ELSE s.message_count END"
            " + excluded.message_count,"
            " fence = GREATEST(s.fence, excluded.fence),"
            " title = CASE WHEN s.deleted OR s.title = '' THEN excluded.title ELSE s.title END,"
            " actor_id = CASE WHEN s.deleted THEN excluded.actor_id ELSE s.actor_id END,"
            " created_at = CASE WHEN s.deleted THEN excluded.created_at ELSE s.created_at END,"
            " deleted = false"
            " WHERE %s OR s.fence <= excluded.fence"
            " RETURNING s.message_count"
        ).format(s=sessions)
        self._insert = sql.SQL(
            "INSERT INTO {} (session_id, position, body) SELECT %s, %s + t.n - 1, t.body"
            " FROM unnest(%s::bytea[]) WITH ORDINALITY AS t(body, n)"
        ).format(messages)
        self._load = sql.SQL("SELECT body FROM {} WHERE session_id = %s ORDER BY position").format(
            messages
        )
        columns = sql.SQL(
            "SELECT session_id, actor_id, created_at, updated_at, message_count, title FROM {}"
        ).format(sessions)
        order = sql.SQL(" ORDER BY updated_at DESC, touched DESC LIMIT %s")
        live = sql.SQL(" WHERE NOT deleted")
        self._list_all = sql.Composed([columns, live, order])
        self._list_actor = sql.Composed([columns, live, sql.SQL(" AND actor_id = %s"), order])
        self._info = sql.Composed([columns, live, sql.SQL(" AND session_id = %s")])
        self._find = sql.SQL(
            "SELECT deleted, fence FROM {} WHERE session_id = %s FOR UPDATE"
        ).format(sessions)
        self._bury = sql.SQL(
            "UPDATE {} SET deleted = true, title = '', message_count = 0,"
            " fence = GREATEST(fence, %s) WHERE session_id = %s"
        ).format(sessions)
        self._forget = sql.SQL("DELETE FROM {} WHERE session_id = %s").format(messages)
        self._delete = sql.SQL("DELETE FROM {} WHERE session_id = %s").format(sessions)

    def __repr__(self) -> str:
        return f"PostgresStore({redact_url(self.url)!r}, table_prefix={self.table_prefix!r})"

    def _error(self, what: str, exc: BaseException) -> SessionError:
        message = str(exc).strip()
        with contextlib.suppress(psycopg.Error):
            password = conninfo_to_dict(self.url).get("password")
            if password:
                message = message.replace(str(password), "***")
        # An OperationalError is the connection's (refused, dropped, timed out), not the query's.
        kind = StoreUnavailable if isinstance(exc, psycopg.OperationalError) else SessionError
        return kind(f"{what} {redact_url(self.url)}: {message}")

    @contextlib.asynccontextmanager
    async def _connect(self) -> AsyncIterator[psycopg.AsyncConnection[TupleRow]]:
        with answer_within(self.timeout, redact_url(self.url)):
            async with self._open() as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[psycopg.AsyncConnection[TupleRow]]:
        try:
            params = conninfo_to_dict(self.url)
            if params.get("connect_timeout") is None:
                # psycopg rounds it up to whole seconds (and waits 130 s when it is unset)
                timeout = max(1, math.ceil(self.timeout))
                conn = await psycopg.AsyncConnection.connect(self.url, connect_timeout=timeout)
            else:
                conn = await psycopg.AsyncConnection.connect(self.url)
        except psycopg.Error as exc:
            raise self._error("cannot connect to the Postgres session store at", exc) from exc
        try:
            if not self._ready:
                await self._migrate(conn)
                self._ready = True
            yield conn
        except psycopg.Error as exc:
            raise self._error("Postgres session store error at", exc) from exc
        finally:
            # Closing without a commit rolls back whatever a failed or cancelled call began.
            with anyio.CancelScope(shield=True):
                await conn.close()

    async def _version(self, conn: psycopg.AsyncConnection[TupleRow]) -> int | None:
        """The recorded schema version; None when there is no schema table yet."""
        cursor = await conn.execute(
            "SELECT to_regclass(quote_ident(%s)) IS NOT NULL", (self._version_table,)
        )
        row = await cursor.fetchone()
        if row is None or not row[0]:
            return None
        query = sql.SQL("SELECT coalesce(max(version), 0) FROM {}").format(
            sql.Identifier(self._version_table)
        )
        row = await (await conn.execute(query)).fetchone()
        found = 0 if row is None else int(row[0])
        check_schema_version(found, len(MIGRATIONS), redact_url(self.url))
        return found

    async def _migrate(self, conn: psycopg.AsyncConnection[TupleRow]) -> None:
        latest = len(MIGRATIONS)
        if await self._version(conn) == latest:  # the usual case: no lock, no DDL
            await conn.rollback()
            return
        # Concurrent `CREATE TABLE IF NOT EXISTS` can fail with a unique violation in the
        # catalog, and two processes must not both apply a step: whoever holds the lock
        # migrates; the others then read (read committed) the version it committed.
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SETUP_LOCK,))
        await conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                " version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)"
            ).format(sql.Identifier(self._version_table))
        )
        version = await self._version(conn) or 0
        record = sql.SQL("INSERT INTO {} (version, applied_at) VALUES (%s, %s)").format(
            sql.Identifier(self._version_table)
        )
        for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in step:
                await conn.execute(sql.SQL(statement).format(**self._names))  # type: ignore[arg-type]
            await conn.execute(record, (number, time.time_ns() // 1_000_000))
        await conn.commit()

    async def setup(self) -> None:
        """Create the tables, or migrate them, to this version's schema.

        Raises:
            ConfigError: the tables were written by a newer agentcast.
            StoreUnavailable: the server cannot be reached.
        """
        async with self._connect():
            pass

    async def load(self, session_id: str) -> list[Message]:
        """Return the session's messages, oldest first."""
        check_session_key(session_id)
        async with self._connect() as conn, conn.cursor(binary=True) as cursor:
            await cursor.execute(self._load, (session_id,))
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
        bodies = [msgspec.json.encode(m) for m in messages]  # before any write: all or nothing
        now = time.time_ns() // 1_000_000
        async with self._connect() as conn:
            title = title_of(messages)  # without control characters: TEXT refuses NUL
            values = (session_id, actor_id, title, now, now, len(bodies), fence or 0)
            cursor = await conn.execute(self._upsert, (*values, fence is None))
            row = await cursor.fetchone()
            if row is None:  # the fence was refused: closing without a commit rolls back
                raise fenced()
            if bodies:
                # The session's row stays locked until the commit: turns cannot interleave.
                start = int(row[0]) - len(bodies)
                await conn.execute(self._insert, (session_id, start, bodies))
            await conn.commit()

    async def list_sessions(
        self, *, actor_id: str | None = None, limit: int = 100
    ) -> list[SessionInfo]:
        """Return sessions, most recently updated first."""
        check_actor(actor_id)
        limit = max(limit, 0)
        async with self._connect() as conn:
            if actor_id is None:
                cursor = await conn.execute(self._list_all, (limit,))
            else:
                cursor = await conn.execute(self._list_actor, (actor_id, limit))
            rows = await cursor.fetchall()
        return [SessionInfo(*row) for row in rows]

    async def info(self, session_id: str) -> SessionInfo | None:
        """Return one session's entry."""
        check_session_key(session_id)
        async with self._connect() as conn:
            cursor = await conn.execute(self._info, (session_id,))
            row = await cursor.fetchone()
        return None if row is None else SessionInfo(*row)

    async def delete(self, session_id: str, *, fence: int | None = None) -> bool:
        """Delete a session and its messages (its fence stays: `SessionStore.delete`)."""
        check_turn(session_id, None, fence)
        async with self._connect() as conn:
            # The row stays locked until the commit: no turn lands between read and write.
            row = await (await conn.execute(self._find, (session_id,))).fetchone()
            if row is not None and max(int(row[1]), fence or 0) > 0:
                await conn.execute(self._forget, (session_id,))
                await conn.execute(self._bury, (fence or 0, session_id))
            elif row is not None:
                await conn.execute(self._delete, (session_id,))  # messages by cascade
            await conn.commit()
            return row is not None and not row[0]

    async def aclose(self) -> None:
        """Nothing stays open between operations; the store stays usable."""

    async def ping(self) -> None:
        """Connect (creating the tables if needed) and run a query."""
        async with self._connect() as conn:
            await conn.execute("SELECT 1")
