"""The Redis broker backend: every Redis command the broker sends.

The only importer of `redis` in the broker. Keys (the prefix defaults to `agentcast:`;
`?prefix=` in the URL sets it):

```
{prefix}run:{id}:events   stream  the run's events; entry id `{seq}-1` of its first event, one
                                  field `e`: the canonical JSON of each event, one per line
{prefix}run:{id}          hash    owner, worker, session_id, session_key, status, created,
                                  finished, outcome (the registry: GET /runs/{id} anywhere)
{prefix}running           hash    run id -> worker id, for every run not ended (the sweeper)
{prefix}worker:{id}       string  the worker's liveness lease (PX: the lease time)
{prefix}cancel            channel run ids to cancel, for whichever worker executes them
{prefix}readers           channel `{run id} {+1|-1}`: a reader attached or left on some worker
{prefix}lock:{session}    string  the session's lease lock: `{token} {worker} {run id|-}`
{prefix}fence             string  the counter the locks' fencing tokens come from
```

Explicit entry ids fence the stream: Redis refuses an id not above the stream's last, so a
worker declared dead that wakes up cannot append after the sweeper ended its run, and no seq
is ever written twice or out of order. The sweeper's end of a lost run is one Lua script that
checks the stream's last id first, so it never interleaves with a late append.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agentcast.broker._wire import END_LOST, IF_HELD, LOCK, decode, encode, entry_id
from agentcast.errors import BrokerUnavailable, ConfigError
from agentcast.events import BaseEvent
from agentcast.runtime import new_id

__all__ = ["BROKER_ERRORS", "Fenced", "RedisBroker"]

BROKER_ERRORS = (RedisError, OSError, BrokerUnavailable)
"""What a broker call may raise when Redis is unreachable or failing."""


class Fenced(Exception):
    """Redis refused an append: the stream already holds that seq.

    Another worker ended the run, declaring this one dead.
    """


class RedisBroker:
    """A Redis server every worker shares: run streams, the run registry, cancels, leases.

    Args:
        url: `redis://host:6379/0` (`?prefix=...` sets the key prefix).
        lease: seconds a worker's liveness lease lasts; it renews it every third of that.
        retention: seconds a run's stream and registry entry live after the run ended.
        maxlen: about how many entries a run's stream keeps (`MAXLEN ~`).
        per_event: one stream entry per event instead of one per batch (for measuring).
        timeout: seconds a command may take before `BrokerUnavailable`.
    """

    def __init__(
        self,
        url: str,
        *,
        lease: float = 10.0,
        retention: float = 600.0,
        maxlen: int = 100_000,
        per_event: bool = False,
        timeout: float = 5.0,
    ) -> None:
        parts = urlsplit(url)
        query = parse_qsl(parts.query)
        self.prefix = dict(query).get("prefix", "agentcast:")
        rest = urlencode([(k, v) for k, v in query if k != "prefix"])
        self.url = urlunsplit(parts._replace(query=rest))
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(f"the broker must be a redis:// URL, not {parts.scheme or url!r}")
        self.lease = lease
        self.retention = retention
        self.maxlen = maxlen
        self.per_event = per_event
        self.timeout = timeout
        self.worker_id = new_id("worker")
        self._client: Any = None
        self._blocking: Any = None  # a second pool for blocking reads (XREAD BLOCK)
        self._end_lost: Any = None
        self._lock: Any = None
        self._if_held: Any = None

    def _new_client(self, socket_timeout: float | None) -> Any:
        return redis.asyncio.Redis.from_url(
            self.url,
            socket_connect_timeout=self.timeout,
            socket_timeout=socket_timeout,
            driver_info=None,
            max_connections=10_000,
        )

    @property
    def client(self) -> Any:
        """The connection pool for ordinary commands (created on first use)."""
        if self._client is None:
            self._client = self._new_client(self.timeout)
            self._end_lost = self._client.register_script(END_LOST)
            self._lock = self._client.register_script(LOCK)
            self._if_held = self._client.register_script(IF_HELD)
        return self._client

    def key(self, *parts: str) -> str:
        """A key under the prefix: `key("run", id)` is `{prefix}run:{id}`."""
        return self.prefix + ":".join(parts)

    def unavailable(self, exc: BaseException) -> BrokerUnavailable:
        """The typed error for a Redis failure."""
        return BrokerUnavailable(f"the broker at {_redact(self.url)} is unavailable: {exc}")

    async def connect(self) -> None:
        """Check that Redis answers.

        Raises:
            BrokerUnavailable: it does not.
        """
        await self._do(self.client.ping())

    async def aclose(self) -> None:
        """Close the connection pools."""
        for client in (self._client, self._blocking):
            if client is not None:
                await client.aclose()
        self._client = self._blocking = None

    # -- run streams -------------------------------------------------------------------------

    async def append(self, run_id: str, events: Sequence[BaseEvent], *, last: bool) -> int:
        """Append events (in seq order) to the run's stream; return how many commands it took.

        `last`: the batch ends the run: then the stream and the registry entry get their TTL
        and the run leaves the running set (one more round trip, once the end is stored).
        An append retried after a lost reply finds its own entries there and sends only what
        is missing.

        Raises:
            Fenced: the stream was ended by another worker (it declared this one dead).
            BrokerUnavailable: Redis does not answer.
        """
        stream = self.key("run", run_id, "events")
        outcome = getattr(events[-1], "outcome", "") if events else ""
        commands = 0
        while events:
            pipe = self.client.pipeline(transaction=False)
            batches = [[e] for e in events] if self.per_event else [events]
            for batch in batches:
                pipe.xadd(
                    stream,
                    {"e": encode(batch)},
                    id=entry_id(batch[0].seq),
                    maxlen=self.maxlen,
                    approximate=True,
                )
            results = await self._execute(pipe, raise_on_error=False)
            commands += len(results)
            for result in results:
                if isinstance(result, (RedisConnectionError, RedisTimeoutError)):
                    raise self.unavailable(result)
            if not any(isinstance(r, ResponseError) for r in results):
                break
            events = await self._missing(stream, events)
        if last:
            ttl = int(self.retention * 1000)
            run = self.key("run", run_id)
            pipe = self.client.pipeline(transaction=False)
            pipe.hset(run, mapping={"status": "finished", "outcome": outcome, "finished": _now()})
            pipe.hdel(self.key("running"), run_id)
            pipe.pexpire(stream, ttl)
            pipe.pexpire(run, ttl)
            commands += len(await self._execute(pipe))
        return commands

    async def _missing(self, stream: str, events: Sequence[BaseEvent]) -> list[BaseEvent]:
        """The events of a refused append the stream does not hold yet.

        Only this worker appends to its runs' streams, except a sweeper, whose one entry ends
        the run: a stream ending with an `agent_end` this worker did not send is fenced.

        Raises:
            Fenced: another worker ended the run.
        """
        found = await self._do(self.client.xrevrange(stream, count=1))
        held = decode(found[0][1][b"e"]) if found else []
        if not held:
            return list(events)
        last = held[-1]
        mine = {e.seq: e for e in events}
        if last.type == "agent_end" and mine.get(last.seq) != last:
            raise Fenced(f"the stream of {last.run_id} was ended by another worker")
        return [e for e in events if e.seq > last.seq]

    async def read(
        self, run_id: str, after: bytes, *, block: float | None
    ) -> list[tuple[bytes, list[BaseEvent]]]:
        """The stream's entries after entry id `after`, decoded; wait up to `block` s for one.

        Raises:
            BrokerUnavailable: Redis does not answer.
        """
        stream = self.key("run", run_id, "events")
        try:
            if block is None:
                found = await self.client.xread({stream: after}, count=1_000)
            else:
                if self._blocking is None:
                    self._blocking = self._new_client(block + self.timeout)
                found = await self._blocking.xread(
                    {stream: after}, count=1_000, block=int(block * 1000)
                )
        except (RedisError, OSError) as exc:
            raise self.unavailable(exc) from exc
        if not found:
            return []
        return [(entry, decode(fields[b"e"])) for entry, fields in found[0][1]]

    async def ended(self, run_id: str) -> bool:
        """Whether the run's stream ends with its `agent_end`."""
        found = await self._do(self.client.xrevrange(self.key("run", run_id, "events"), count=1))
        return bool(found) and decode(found[0][1][b"e"])[-1].type == "agent_end"

    async def history(self, run_id: str) -> tuple[bytes, list[BaseEvent]]:
        """The stream's last entry id (`0-0`: empty) and every event it holds, in order."""
        after, events = b"0-0", []
        while batch := await self.read(run_id, after, block=None):
            after = batch[-1][0]
            for _, decoded in batch:
                events.extend(decoded)
        return after, events

    async def end_lost(
        self, run_id: str, expected_last: bytes, events: Sequence[BaseEvent]
    ) -> bool:
        """Append the events ending a lost run, unless the stream moved past `expected_last`.

        One script: the check, the entry, the registry's status, the TTLs. Returns whether it
        wrote (False: the run's worker appended meanwhile; it is alive after all).
        """
        keys = [self.key("run", run_id, "events"), self.key("run", run_id), self.key("running")]
        args = [
            expected_last,
            entry_id(events[0].seq),
            encode(events),
            int(self.retention * 1000),
            _now(),
            run_id,
        ]
        try:
            self.client  # noqa: B018 - registers the script
            return bool(await self._end_lost(keys=keys, args=args))
        except (RedisError, OSError) as exc:
            raise self.unavailable(exc) from exc

    # -- the registry ------------------------------------------------------------------------

    async def register(self, run_id: str, fields: dict[str, str]) -> None:
        """Record a run starting on this worker (registry hash, running set)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(
            self.key("run", run_id),
            mapping=dict(fields, worker=self.worker_id, status="running", created=_now()),
        )
        pipe.hset(self.key("running"), run_id, self.worker_id)
        await self._execute(pipe)

    async def lookup(self, run_id: str) -> dict[str, str] | None:
        """The run's registry entry (None: unknown, or expired)."""
        found = await self._do(self.client.hgetall(self.key("run", run_id)))
        return {k.decode(): v.decode() for k, v in found.items()} or None

    async def running(self) -> dict[str, str]:
        """Every run not ended, with the worker executing it."""
        found = await self._do(self.client.hgetall(self.key("running")))
        return {k.decode(): v.decode() for k, v in found.items()}

    # -- liveness ----------------------------------------------------------------------------

    async def renew(self) -> None:
        """Renew this worker's liveness lease."""
        try:
            await self.client.set(
                self.key("worker", self.worker_id), b"1", px=int(self.lease * 1000)
            )
        except (RedisError, OSError) as exc:
            raise self.unavailable(exc) from exc

    async def alive(self, workers: Sequence[str]) -> set[str]:
        """The workers among `workers` whose lease has not expired."""
        if not workers:
            return set()
        found = await self._do(self.client.mget([self.key("worker", w) for w in workers]))
        return {w for w, value in zip(workers, found, strict=True) if value is not None}

    async def claim(self, name: str, seconds: float) -> bool:
        """Take a short exclusive claim (`SET NX PX`), e.g. one sweeper per lost run."""
        try:
            taken = await self.client.set(
                self.key("claim", name), self.worker_id, nx=True, px=int(seconds * 1000)
            )
        except (RedisError, OSError) as exc:
            raise self.unavailable(exc) from exc
        return bool(taken)

    # -- session locks -----------------------------------------------------------------------

    async def lock(self, session_key: str, run_id: str | None) -> tuple[str, str]:
        """Try to take a session's lease lock: `(value, "")` when taken, `("", holder)` not.

        The value carries a fencing token (a counter incremented per lock taken), this
        worker, and the run (`-` until it is known). The lock expires after the lease unless
        renewed (`if_held`), so a dead worker cannot hold it forever.
        """
        try:
            self.client  # noqa: B018 - registers the scripts
            token = await self.client.incr(self.key("fence"))
            value = f"{token} {self.worker_id} {run_id or '-'}"
            holder = await self._lock(
                keys=[self.key("lock", session_key)], args=[value, int(self.lease * 1000)]
            )
        except (RedisError, OSError) as exc:
            raise self.unavailable(exc) from exc
        holder = holder.decode() if isinstance(holder, bytes) else str(holder)
        return (value, "") if holder == "" else ("", holder)

    async def holder(self, session_key: str) -> str:
        """The value of a session's lock (empty: free)."""
        value = await self._do(self.client.get(self.key("lock", session_key)))
        return value.decode() if value else ""

    async def token(self) -> int:
        """A new fencing token: above every token handed out before."""
        try:
            return int(await self.client.incr(self.key("fence")))
        except (RedisError, OSError) as exc:
            raise self.unavailable(exc) from exc

    async def if_held(self, session_key: str, value: str, action: str) -> bool:
        """Act on a session lock if it still holds `value`; return whether it did.

        `action`: `release`, `renew`, or a new value (the run holding it is now known).
        """
        try:
            self.client  # noqa: B018 - registers the scripts
            done = await self._if_held(
                keys=[self.key("lock", session_key)],
                args=[value, action, int(self.lease * 1000)],
            )
        except (RedisError, OSError) as exc:
            raise self.unavailable(exc) from exc
        return bool(done)

    # -- messages between workers ------------------------------------------------------------

    async def publish(self, channel: str, message: str) -> None:
        """Publish to `{prefix}{channel}` (`cancel`, `readers`)."""
        await self._do(self.client.publish(self.key(channel), message))

    async def subscribe(self, *channels: str) -> AsyncIterator[tuple[str, str]]:
        """Yield `(channel, message)` published on the channels, until cancelled."""
        pubsub = self._new_client(None).pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(*(self.key(c) for c in channels))
            strip = len(self.prefix)
            async for message in pubsub.listen():
                if message is not None and message.get("type") == "message":
                    yield message["channel"].decode()[strip:], message["data"].decode()
        except (RedisError, OSError) as exc:
            raise self.unavailable(exc) from exc
        finally:
            await pubsub.aclose()

    async def _do(self, awaitable: Any) -> Any:
        """Await one Redis call; a Redis failure becomes `BrokerUnavailable`."""
        try:
            return await awaitable
        except (RedisError, OSError) as exc:
            raise self.unavailable(exc) from exc

    async def _execute(self, pipe: Any, *, raise_on_error: bool = True) -> list[Any]:
        try:
            return list(await pipe.execute(raise_on_error=raise_on_error))
        except (RedisError, OSError) as exc:
            raise self.unavailable(exc) from exc


def _now() -> str:
    return str(int(time.time() * 1000))


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(parts.password, "***")
    return url
