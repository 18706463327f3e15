"""Sessions in Redis: shared by every server process and host that reaches the server.

This module is the only importer of `redis`. Keys (the prefix defaults to `agentcast:`):

```
{prefix}session:{id}:messages   list   the messages, oldest first, as msgspec JSON bytes
{prefix}session:{id}:meta       hash   created_at, updated_at (epoch ms), title, actor_id,
                                       fence (the highest fencing token that saved; absent: 0);
                                       fence alone: a deleted session's tombstone (`delete`)
{prefix}sessions                zset   every session id, scored by updated_at
{prefix}actor:{actor}           zset   the actor's session ids, scored by updated_at
{prefix}schema_version          string the last applied migration step (absent: none, 0)
```

The schema's version is the `schema_version` key. `setup()` (run on first use) applies each
pending step of `MIGRATIONS` as one Lua script that also checks and bumps the version, so a
step runs once however many processes start together. The layout of the first release is
version 0: it has no step, and a store never migrated writes no version key.

A turn is appended, and a session deleted, by one Lua script each: Redis runs a script
atomically, so a turn is never split or interleaved with another, and its metadata and indexes
always agree with its messages; the append's fence check (`append(fence=)`) is in the same
script, so no newer turn can land between the check and the write. A script rather than
MULTI/EXEC because the actor index to update is the one stored with the session (the first
turn's `actor_id`), which a transaction could only read with WATCH and retries. The scripts
compute the actor index key from the prefix, so the store needs a single Redis server (or a
primary), not Redis Cluster.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import cast
from urllib.parse import unquote, urlsplit

import anyio
import msgspec
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

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

__all__ = ["MIGRATIONS", "RedisStore"]

MIGRATIONS: tuple[str, ...] = (
    # 1: a deleted session that had a fence keeps its meta hash, with the fence alone (a
    # tombstone: `delete`). No key changes; the version tells an older agentcast, which would
    # read such a hash as a session, that the keys are newer than it.
    "",
)
"""The schema's migration steps, oldest first, as Lua: step N brings the keys to version N.

A step's script gets the key prefix as `ARGV[2]` and runs atomically with the version check
(`_MIGRATE`). A released step is never edited; a layout change is a new step appended here.
"""

_MIGRATE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current ~= tonumber(ARGV[1]) - 1 then
    return current
end
local function step()
%s
end
step()
redis.call('SET', KEYS[1], ARGV[1])
return tonumber(ARGV[1])
"""

_APPEND = """
local messages, meta, index = KEYS[1], KEYS[2], KEYS[3]
local session_id, now, has_actor, actor, title, actor_prefix, fence =
    ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
if fence ~= '' then
    local recorded = tonumber(redis.call('HGET', meta, 'fence') or '0')
    if tonumber(fence) < recorded then
        return 0
    end
    redis.call('HSET', meta, 'fence', fence)
end
if redis.call('HSETNX', meta, 'created_at', now) == 1 and has_actor == '1' then
    redis.call('HSET', meta, 'actor_id', actor)
end
redis.call('HSET', meta, 'updated_at', now)
if title ~= '' then
    redis.call('HSETNX', meta, 'title', title)
end
for first = 8, #ARGV, 1000 do
    redis.call('RPUSH', messages, unpack(ARGV, first, math.min(first + 999, #ARGV)))
end
redis.call('ZADD', index, now, session_id)
local owner = redis.call('HGET', meta, 'actor_id')
if owner then
    redis.call('ZADD', actor_prefix .. owner, now, session_id)
end
return 1
"""

_DELETE = """
local messages, meta, index = KEYS[1], KEYS[2], KEYS[3]
local session_id, actor_prefix, fence = ARGV[1], ARGV[2], ARGV[3]
local owner = redis.call('HGET', meta, 'actor_id')
local existed = redis.call('HEXISTS', meta, 'created_at')
local kept = redis.call('HGET', meta, 'fence') or '0'
if fence ~= '' and tonumber(fence) > tonumber(kept) then
    kept = fence
end
redis.call('DEL', messages)
if tonumber(kept) > 0 and redis.call('EXISTS', meta) == 1 then  -- a tombstone
    redis.call('DEL', meta)
    redis.call('HSET', meta, 'fence', kept)
else
    redis.call('DEL', meta)
end
redis.call('ZREM', index, session_id)
if owner then
    redis.call('ZREM', actor_prefix .. owner, session_id)
end
return existed
"""


class RedisStore:
    """Sessions in Redis lists, hashes and sorted sets.

    Each operation uses its own short-lived connection, like `SQLiteStore`: a run touches the
    store twice (load, then save the turn), and a connection to Redis costs under a
    millisecond, while a pooled one would be bound to the event loop that opened it
    (`Agent.invoke` runs each call on a new loop) and could keep sockets open at exit. So
    `aclose()` has nothing to release and the store stays usable after it.

    Commands are never retried: a retried append could store its turn twice.

    Args:
        url: a redis-py URL: `redis://[:password@]host:6379/0`, `rediss://` for TLS.
        prefix: the start of every key the store writes; give each application its own.
        timeout: seconds an operation may take, connecting included, before
            `StoreUnavailable`.
    """

    def __init__(
        self, url: str, *, prefix: str = "agentcast:", timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self._index = f"{prefix}sessions"
        self._version_key = f"{prefix}schema_version"
        self._ready = False
        self._actor_prefix = f"{prefix}actor:"

    def __repr__(self) -> str:
        return f"RedisStore({redact_url(self.url)!r}, prefix={self.prefix!r})"

    def _keys(self, session_id: str) -> tuple[str, str]:
        base = f"{self.prefix}session:{session_id}:"
        return base + "messages", base + "meta"

    def _error(
        self, what: str, exc: BaseException, kind: type[SessionError] = SessionError
    ) -> SessionError:
        message = str(exc)
        with contextlib.suppress(ValueError):
            password = urlsplit(self.url).password
            if password:
                message = message.replace(password, "***")
        return kind(f"{what} {redact_url(self.url)}: {message}")

    @contextlib.asynccontextmanager
    async def _connect(self) -> AsyncIterator[redis.asyncio.Redis]:
        with answer_within(self.timeout, redact_url(self.url)):
            async with self._open() as client:
                yield client

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[redis.asyncio.Redis]:
        try:
            database = unquote(urlsplit(self.url).path).strip("/")
            if self.url.startswith(("redis://", "rediss://")) and not (
                database == "" or database.isdigit()
            ):  # redis-py would silently use database 0
                raise ValueError(f"the database must be a number, not {database!r}")
            client = redis.asyncio.Redis.from_url(
                self.url,
                retry=Retry(NoBackoff(), 0),
                socket_connect_timeout=self.timeout,
                socket_timeout=self.timeout,
                # No CLIENT SETINFO: it halves the cost of a connection (and reads the
                # package metadata each time).
                driver_info=None,
            )
        except (ValueError, RedisError) as exc:  # a malformed URL
            raise self._error("bad Redis session store URL", exc) from exc
        try:
            if not self._ready:
                await self._migrate(client)
                self._ready = True
            yield client
        except (RedisConnectionError, RedisTimeoutError) as exc:
            what = "cannot connect to the Redis session store at"
            raise self._error(what, exc, StoreUnavailable) from exc
        except RedisError as exc:
            raise self._error("Redis session store error at", exc) from exc
        finally:
            with anyio.CancelScope(shield=True):
                await client.aclose()

    async def _migrate(self, client: redis.asyncio.Redis) -> None:
        latest = len(MIGRATIONS)
        raw = await client.get(self._version_key)
        version = 0 if raw is None else int(raw)
        check_schema_version(version, latest, redact_url(self.url))
        for number in range(version + 1, latest + 1):
            script = client.register_script(_MIGRATE % MIGRATIONS[number - 1])
            # Another process may have applied this step (and later ones) first: fine.
            found = int(await script(keys=[self._version_key], args=[number, self.prefix]))
            check_schema_version(found, latest, redact_url(self.url))

    async def setup(self) -> None:
        """Apply the pending migration steps (the first layout is version 0).

        Raises:
            ConfigError: the keys were written by a newer agentcast.
            StoreUnavailable: the server cannot be reached.
        """
        async with self._connect():
            pass

    async def load(self, session_id: str) -> list[Message]:
        """Return the session's messages, oldest first."""
        check_session_key(session_id)
        messages, _ = self._keys(session_id)
        async with self._connect() as client:
            raws = cast("list[bytes]", await client.lrange(messages, 0, -1))
        return [msgspec.json.decode(raw) for raw in raws]

    async def append(
        self,
        session_id: str,
        messages: Sequence[Message],
        *,
        actor_id: str | None = None,
        fence: int | None = None,
    ) -> None:
        """Append one turn atomically (one script, which also checks `fence`)."""
        check_turn(session_id, actor_id, fence)
        bodies = [msgspec.json.encode(m) for m in messages]  # before any write: all or nothing
        now = time.time_ns() // 1_000_000
        args: list[bytes | str | int] = [
            session_id,
            now,
            "0" if actor_id is None else "1",
            actor_id or "",
            title_of(messages),
            self._actor_prefix,
            "" if fence is None else fence,
            *bodies,
        ]
        async with self._connect() as client:
            script = client.register_script(_APPEND)
            saved = await script(keys=[*self._keys(session_id), self._index], args=args)
        if not int(saved):
            raise fenced()

    async def list_sessions(
        self, *, actor_id: str | None = None, limit: int = 100
    ) -> list[SessionInfo]:
        """Return sessions, most recently updated first (ties: larger id first)."""
        check_actor(actor_id)
        if limit <= 0:
            return []
        index = self._index if actor_id is None else f"{self._actor_prefix}{actor_id}"
        async with self._connect() as client:
            ids = cast("list[bytes]", await client.zrange(index, 0, limit - 1, desc=True))
            async with client.pipeline(transaction=True) as pipe:
                for raw_id in ids:
                    messages, meta = self._keys(raw_id.decode())
                    pipe.hgetall(meta)
                    pipe.llen(messages)
                replies = await pipe.execute()
        infos = []
        for raw_id, meta, count in zip(ids, replies[::2], replies[1::2], strict=True):
            if b"created_at" not in meta:  # deleted between the two reads
                continue
            actor = meta.get(b"actor_id")
            infos.append(
                SessionInfo(
                    session_id=raw_id.decode(),
                    actor_id=None if actor is None else actor.decode(),
                    created_at=int(meta[b"created_at"]),
                    updated_at=int(meta[b"updated_at"]),
                    message_count=int(count),
                    title=meta.get(b"title", b"").decode(),
                )
            )
        return infos

    async def info(self, session_id: str) -> SessionInfo | None:
        """Return one session's entry."""
        check_session_key(session_id)
        messages, meta_key = self._keys(session_id)
        async with self._connect() as client, client.pipeline(transaction=True) as pipe:
            pipe.hgetall(meta_key)
            pipe.llen(messages)
            meta, count = await pipe.execute()
        if b"created_at" not in meta:  # none, or a deleted session's tombstone
            return None
        actor = meta.get(b"actor_id")
        return SessionInfo(
            session_id=session_id,
            actor_id=None if actor is None else actor.decode(),
            created_at=int(meta[b"created_at"]),
            updated_at=int(meta[b"updated_at"]),
            message_count=int(count),
            title=meta.get(b"title", b"").decode(),
        )

    async def delete(self, session_id: str, *, fence: int | None = None) -> bool:
        """Delete a session, its messages and index entries (one script; the fence stays)."""
        check_turn(session_id, None, fence)
        async with self._connect() as client:
            script = client.register_script(_DELETE)
            existed = await script(
                keys=[*self._keys(session_id), self._index],
                args=[session_id, self._actor_prefix, "" if fence is None else fence],
            )
        return int(existed) > 0

    async def aclose(self) -> None:
        """Nothing stays open between operations; the store stays usable."""

    async def ping(self) -> None:
        """Send PING."""
        async with self._connect() as client:
            await client.ping()
