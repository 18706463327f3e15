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
{prefix}worker:{id}:wake  stream  wakes the worker's follower's blocked XREAD (`wake`): a run
                                  to follow was added meanwhile (MAXLEN ~ 10)
{prefix}cancel            channel run ids to cancel, for whichever worker executes them
{prefix}readers           channel `{run id} {+1|-1}`: a reader attached or left on some worker
{prefix}locks             channel a session key whose lock was released or named its run
{prefix}lock:{session}    string  the session's lease lock: `{token} {worker} {run id|-}`
{prefix}fence             string  the counter the locks' fencing tokens come from (`TOKEN`)
```

A worker's replicator appends for all its runs in one pipeline (`append_many`). Explicit
entry ids fence the stream: Redis refuses an id not above the stream's last, so a worker
declared dead that wakes up cannot append after the sweeper ended its run, and no seq is ever
written twice or out of order. The sweeper's end of a lost run is one Lua script that
checks the stream's last id first, so it never interleaves with a late append.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio
from redis.exceptions import NoScriptError, RedisError, ResponseError

from agentcast.broker._wire import (
    APPEND,
    END_LOST,
    Appended,
    Batch,
    append_args,
    decode,
    encode,
    entry_id,
    refusals,
    unsent,
)
from agentcast.errors import BrokerUnavailable, ConfigError
from agentcast.events import BaseEvent
from agentcast.runtime import new_id

__all__ = ["BROKER_ERRORS", "Appended", "Batch", "RedisBroker"]

BROKER_ERRORS = (RedisError, OSError, BrokerUnavailable)
"""What a broker call may raise when Redis is unreachable or failing."""


class RedisBroker:
    """A Redis server every worker shares: run streams, the run registry, cancels, leases.

    Args:
        url: `redis://host:6379/0` (`?prefix=...` sets the key prefix).
        lease: seconds a worker's liveness lease lasts; it renews it every third of that.
        retention: seconds a run's stream and registry entry live after the run ended.
        maxlen: about how many entries a run's stream keeps (`MAXLEN ~`).
        per_event: one stream entry per event instead of one per batch (for measuring).
        flush_interval: seconds at least between two replication pipelines (`Replicator`).
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
        flush_interval: float = 0.005,
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
        self.flush_interval = flush_interval
        self.timeout = timeout
        self.worker_id = new_id("worker")
        self._client: Any = None
        self._blocking: Any = None  # the follower's connection (`read_many`: XREAD BLOCK)
        self._scripts: dict[str, Any] = {}  # Lua source -> the script registered on `client`

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
            self._scripts = {}
        return self._client

    def script(self, source: str) -> Any:
        """The Lua script `source` registered on `client` (`EVALSHA`, loaded when missing)."""
        client = self.client
        found = self._scripts.get(source)
        if found is None:
            found = self._scripts[source] = client.register_script(source)
        return found

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
        await self.do(self.client.ping())

    async def aclose(self) -> None:
        """Close the connection pools."""
        for client in (self._client, self._blocking):
            if client is not None:
                await client.aclose()
        self._client = self._blocking = None

    # -- run streams -------------------------------------------------------------------------

    async def append_many(self, batches: Sequence[Batch]) -> Appended:
        """Append several runs' events in one pipelined round trip (more only when refused).

        Per run, in pipeline order: its registration (`Batch.register`), its events (one
        entry, or one per event with `per_event`), its finishing commands (`Batch.finish`).
        A run whose entry is refused (a retry after a lost reply finds its own entries
        there) gets what its stream does not hold yet in one more round trip, unless another
        worker ended its stream: then it is in `Appended.fenced`.

        Raises:
            BrokerUnavailable: Redis does not answer, or failed a command; which commands it
                applied is unknown, so every batch is to be sent again (the explicit ids
                store each event once).
        """
        appended = Appended()
        reloaded = False
        while batches:
            pipe = self.client.pipeline(transaction=False)
            for batch in batches:
                if batch.register is not None:
                    self._register(pipe, batch.run_id, batch.register)
            at = len(pipe)  # the `APPEND`'s place in the pipeline
            owners = self._xadd(pipe, batches)  # one command: each entry's batch
            for batch in batches:
                if batch.finish is not None:
                    self._finish(pipe, batch.run_id, batch.finish)
            results = await self._execute(pipe, raise_on_error=False)
            appended.count(len(results))
            if owners and isinstance(results[at], NoScriptError) and not reloaded:
                # Redis lost its scripts (a restart): load it, send it all again (the
                # registrations and finishing commands are idempotent). Once per call: a
                # Redis that loses it again at once is failing, and gets the error below.
                await self.do(self.client.script_load(APPEND))
                reloaded = True
                continue
            failed = [r for r in results if isinstance(r, Exception)]
            if failed:  # a registration's, the script's or a finishing command's: not a fence
                raise self.unavailable(failed[0])
            refused = refusals(results[at], owners) if owners else []
            if not refused:
                break
            batches = await self._missing(refused, appended)
        return appended

    def _register(self, pipe: Any, run_id: str, fields: dict[str, str]) -> None:
        fields = dict(fields, worker=self.worker_id, status="running", created=_now())
        pipe.hset(self.key("run", run_id), mapping=fields)
        pipe.hset(self.key("running"), run_id, self.worker_id)

    def _xadd(self, pipe: Any, batches: Sequence[Batch]) -> list[Batch]:
        """Queue every batch's entries as one `APPEND`; return each entry's batch, in order."""
        streams, args, owners = append_args(batches, self.key("run", ""), self.per_event)
        if streams:
            # EVALSHA itself: a script queued through redis-py's `Script` makes the pipeline
            # ask `SCRIPT EXISTS` first, one more round trip per pipeline.
            pipe.evalsha(self.script(APPEND).sha, len(streams), *streams, self.maxlen, *args)
        return owners

    def _finish(self, pipe: Any, run_id: str, outcome: str) -> None:
        ttl = int(self.retention * 1000)
        run = self.key("run", run_id)
        pipe.hset(run, mapping={"status": "finished", "outcome": outcome, "finished": _now()})
        pipe.hdel(self.key("running"), run_id)
        pipe.pexpire(self.key("run", run_id, "events"), ttl)
        pipe.pexpire(run, ttl)

    async def _missing(self, refused: list[tuple[Batch, str]], appended: Appended) -> list[Batch]:
        """What the streams of refused appends (each with Redis's error) do not hold yet.

        One round trip for all of them.

        Raises:
            BrokerUnavailable: a refusal that is no retry (the stream holds none of the
                batch: Redis is out of memory, say).
        """
        pipe = self.client.pipeline(transaction=False)
        for batch, _ in refused:
            pipe.xrevrange(self.key("run", batch.run_id, "events"), count=1)
        found = await self._execute(pipe)
        appended.count(len(found))
        again = []
        for (batch, why), entries in zip(refused, found, strict=True):
            rest = unsent(batch.events, decode(entries[0][1][b"e"]) if entries else [])
            if rest is None:
                appended.fenced.add(batch.run_id)
            elif len(rest) == len(batch.events):
                raise self.unavailable(ResponseError(why))  # it holds none of it: no retry
            elif rest:
                again.append(Batch(batch.run_id, rest))
        return again

    async def read(self, run_id: str, after: bytes) -> list[tuple[bytes, list[BaseEvent]]]:
        """The stream's entries after entry id `after` (1,000 at most), decoded; no wait.

        Raises:
            BrokerUnavailable: Redis does not answer.
        """
        stream = self.key("run", run_id, "events")
        found = await self.do(self.client.xread({stream: after}, count=1_000))
        if not found:
            return []
        return [(entry, decode(fields[b"e"])) for entry, fields in found[0][1]]

    async def read_many(
        self, runs: dict[str, bytes], *, wake: bytes, block: float
    ) -> tuple[bytes, dict[str, list[tuple[bytes, list[BaseEvent]]]]]:
        """The entries of many runs' streams after each one's entry id, decoded, in one `XREAD`.

        `runs` maps run ids to entry ids. The read also covers this worker's wake stream
        after id `wake`, and waits up to `block` s for an entry on any of them (on a
        connection of its own: one follower per worker uses it). Returns the wake stream's
        last id read (`wake` when none) and the entries of each run that has some.

        Raises:
            BrokerUnavailable: Redis does not answer.
        """
        head, tail = self.key("run", ""), ":events"
        streams = {f"{head}{run_id}{tail}": after for run_id, after in runs.items()}
        wake_key = self.key("worker", self.worker_id, "wake")
        streams[wake_key] = wake
        if self._blocking is None:
            self._blocking = self._new_client(block + self.timeout)
        found = await self.do(self._blocking.xread(streams, count=1_000, block=int(block * 1000)))
        start, end = len(head), -len(tail)
        read: dict[str, list[tuple[bytes, list[BaseEvent]]]] = {}
        for stream, entries in found or ():
            name = stream.decode()
            if name == wake_key:
                wake = entries[-1][0]
            else:
                read[name[start:end]] = [(e, decode(fields[b"e"])) for e, fields in entries]
        return wake, read

    async def wake(self) -> None:
        """Append to this worker's wake stream: its follower's blocked `read_many` returns."""
        key = self.key("worker", self.worker_id, "wake")
        pipe = self.client.pipeline(transaction=False)
        pipe.xadd(key, {"w": b"1"}, maxlen=10, approximate=True)
        pipe.pexpire(key, int(self.retention * 1000))  # a dead worker's goes with its runs
        await self._execute(pipe)

    async def ended(self, run_id: str) -> bool:
        """Whether the run's stream ends with its `agent_end`."""
        found = await self.do(self.client.xrevrange(self.key("run", run_id, "events"), count=1))
        return bool(found) and decode(found[0][1][b"e"])[-1].type == "agent_end"

    async def history(self, run_id: str) -> tuple[bytes, list[BaseEvent]]:
        """The stream's last entry id (`0-0`: empty) and every event it holds, in order."""
        after, events = b"0-0", []
        while batch := await self.read(run_id, after):
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
        return bool(await self.do(self.script(END_LOST)(keys=keys, args=args)))

    # -- the registry ------------------------------------------------------------------------

    async def lookup(self, run_id: str) -> dict[str, str] | None:
        """The run's registry entry (None: unknown, or expired)."""
        found = await self.do(self.client.hgetall(self.key("run", run_id)))
        return {k.decode(): v.decode() for k, v in found.items()} or None

    async def known(self, run_ids: Sequence[str]) -> set[str]:
        """The runs among `run_ids` that have a registry entry (one round trip)."""
        pipe = self.client.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.exists(self.key("run", run_id))
        found = await self._execute(pipe)
        return {run_id for run_id, count in zip(run_ids, found, strict=True) if count}

    async def running(self) -> dict[str, str]:
        """Every run not ended, with the worker executing it."""
        found = await self.do(self.client.hgetall(self.key("running")))
        return {k.decode(): v.decode() for k, v in found.items()}

    # -- liveness ----------------------------------------------------------------------------

    async def renew(self) -> None:
        """Renew this worker's liveness lease."""
        lease = int(self.lease * 1000)
        await self.do(self.client.set(self.key("worker", self.worker_id), b"1", px=lease))

    async def alive(self, workers: Sequence[str]) -> set[str]:
        """The workers among `workers` whose lease has not expired."""
        if not workers:
            return set()
        found = await self.do(self.client.mget([self.key("worker", w) for w in workers]))
        return {w for w, value in zip(workers, found, strict=True) if value is not None}

    async def claim(self, name: str, seconds: float) -> bool:
        """Take a short exclusive claim (`SET NX PX`), e.g. one sweeper per lost run."""
        key, px = self.key("claim", name), int(seconds * 1000)
        return bool(await self.do(self.client.set(key, self.worker_id, nx=True, px=px)))

    # -- messages between workers ------------------------------------------------------------

    async def publish(self, channel: str, message: str) -> None:
        """Publish to `{prefix}{channel}` (`cancel`, `readers`)."""
        await self.do(self.client.publish(self.key(channel), message))

    async def subscribe(
        self, *channels: str, ready: Callable[[], None] = lambda: None
    ) -> AsyncIterator[tuple[str, str]]:
        """Yield `(channel, message)` published on the channels, until cancelled.

        `ready` is called once Redis confirmed every subscription: nothing published after
        that is missed.
        """
        pubsub = self._new_client(None).pubsub()
        try:
            await pubsub.subscribe(*(self.key(c) for c in channels))
            strip, confirmed = len(self.prefix), 0
            async for message in pubsub.listen():
                kind = message.get("type") if message is not None else None
                if kind == "message":
                    yield message["channel"].decode()[strip:], message["data"].decode()
                elif kind == "subscribe":
                    confirmed += 1
                    if confirmed == len(channels):
                        ready()
        except (RedisError, OSError) as exc:
            raise self.unavailable(exc) from exc
        finally:
            await pubsub.aclose()

    async def do(self, awaitable: Any) -> Any:
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
