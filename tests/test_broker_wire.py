"""The broker's parts in one process, on the real Redis: ending a lost run, fencing, retries.

Fencing is also the session store's: a worker that lost its session lock has its late turn
refused by the (real Postgres) store once the next lock's run saved.

A real demo run's log (the offline model, a tool call, tokens) is cut at every point a worker
could die, and ended as the sweeper ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import msgspec
import pytest

from agentcast import Agent
from agentcast.errors import BrokerUnavailable, WorkerLost
from agentcast.models.demo_tools import demo_tools
from agentcast.runtime import close_lost_run
from agentcast.sessions import MemoryStore
from agentcast.testing import check_invariants
from tests.test_broker import requires_services

pytestmark = pytest.mark.anyio

PROMPT = "What items are located where the cat is hiding?"


@pytest.fixture
async def log(monkeypatch):
    monkeypatch.setenv("AGENTCAST_OFFLINE_DELAY", "0")
    agent = Agent("offline", demo_tools(), store=MemoryStore())
    run = agent.start(PROMPT, session_id="s")
    await run.execute()
    events = run.log.snapshot()
    assert {"tool_start", "llm_token", "tool_call_start"} <= {e.type for e in events}
    return events


async def test_a_lost_run_cut_anywhere_is_ended_with_closers_and_worker_lost(log):
    failure = WorkerLost("gone")
    for cut in range(len(log)):  # every point the worker could have died at
        head = log[:cut]
        closing = close_lost_run(log[0].run_id, "s", head, failure)
        whole = [*head, *closing]
        check_invariants(whole)
        assert [e.seq for e in closing] == list(range(cut, cut + len(closing)))
        errors = [e for e in closing if e.type == "error"]
        assert len(errors) == 1 and errors[0].code == "worker_lost"
        assert closing[-1].type == "agent_end" and closing[-1].outcome == "error"
    assert close_lost_run(log[0].run_id, "s", log, failure) == []  # it had ended


@pytest.fixture
async def broker():
    from agentcast.broker import open_broker

    broker = open_broker(f"redis://127.0.0.1:6379/13?prefix=w{uuid.uuid4().hex[:10]}:")
    yield broker
    keys = [k async for k in broker.client.scan_iter(f"{broker.prefix}*")]
    if keys:
        await broker.client.delete(*keys)
    await broker.aclose()


async def _append(broker, run_id, events, *, last=False) -> set[str]:
    """Append one run's events (then, with `last`, its finishing commands); the runs fenced."""
    from agentcast.broker.redis import Batch

    fenced = (await broker.append_many([Batch(run_id, events)])).fenced
    if last and not fenced:
        await broker.append_many([Batch(run_id, finish=events[-1].outcome)])
    return fenced


@requires_services
async def test_an_append_after_another_worker_ended_the_run_is_fenced(broker, log):
    run_id = log[0].run_id
    await _append(broker, run_id, log[:5])
    last, held = await broker.history(run_id)
    closing = close_lost_run(run_id, "s", held, WorkerLost("gone"))
    assert await broker.end_lost(run_id, last, closing)
    # The worker declared dead wakes up: refused.
    assert await _append(broker, run_id, log[5:9]) == {run_id}
    _, stored = await broker.history(run_id)
    assert stored == [*log[:5], *closing]
    check_invariants(stored)


@requires_services
async def test_the_sweeper_does_not_end_a_run_whose_stream_moved_on(broker, log):
    run_id = log[0].run_id
    await _append(broker, run_id, log[:5])
    last, held = await broker.history(run_id)
    await _append(broker, run_id, log[5:7])  # the worker was alive after all
    closing = close_lost_run(run_id, "s", held, WorkerLost("gone"))
    assert not await broker.end_lost(run_id, last, closing)
    assert (await broker.history(run_id))[1] == log[:7]


@requires_services
async def test_an_append_after_redis_lost_its_scripts_loads_it_and_stores_each_event_once(
    broker, log
):
    # All of a pipeline's entries go in one EVALSHA; a Redis restarted (or SCRIPT FLUSH)
    # answers NOSCRIPT: the script is loaded and the pipeline sent again, nothing lost.
    run_id = log[0].run_id
    await _append(broker, run_id, log[:6])
    await broker.client.script_flush()
    await _append(broker, run_id, log[6:], last=True)
    assert (await broker.history(run_id))[1] == log
    info = await broker.lookup(run_id)
    assert info is not None and info["status"] == "finished"


@requires_services
async def test_a_redis_that_keeps_losing_the_script_is_an_error_not_a_loop(
    broker, log, monkeypatch
):
    # Before: every NOSCRIPT answer loaded the script and sent the pipeline again, for ever,
    # while a Redis that drops it each time (a scripting-disabled proxy, a flush loop) never
    # ran it. Now one reload per append; a second NOSCRIPT is the broker's error.
    run_id = log[0].run_id
    await broker.client.script_flush()
    loads = 0

    async def load_nothing(script):
        nonlocal loads
        loads += 1
        assert loads < 3, "append_many reloaded the script again and again"
        return "0" * 40

    monkeypatch.setattr(broker.client, "script_load", load_nothing)
    with pytest.raises(BrokerUnavailable):
        await _append(broker, run_id, log[:6])
    assert loads == 1


@requires_services
@pytest.mark.parametrize("per_event", [False, True])
async def test_an_append_retried_after_a_lost_reply_stores_each_event_once(broker, log, per_event):
    broker.per_event = per_event
    run_id = log[0].run_id
    await _append(broker, run_id, log[:6])
    # The reply was lost: the replicator retries the batch, grown meanwhile.
    assert not await _append(broker, run_id, log[:10])
    await _append(broker, run_id, log[10:], last=True)
    _, stored = await broker.history(run_id)
    assert stored == log
    info = await broker.lookup(run_id)
    assert info is not None and info["status"] == "finished" and info["outcome"] == "success"
    assert await broker.client.pttl(broker.key("run", run_id, "events")) > 0


@requires_services
async def test_a_session_whose_run_logged_its_end_is_free_before_its_lock_is_released(broker, log):
    from agentcast.broker._sessions import SessionLocks
    from agentcast.broker.redis import RedisBroker
    from agentcast.errors import SessionBusy

    other = RedisBroker(f"redis://127.0.0.1:6379/13?prefix={broker.prefix}")
    mine, theirs = SessionLocks(broker), SessionLocks(other)
    run_id = log[0].run_id

    async def ended(run: str) -> bool:
        return await other.ended(run)

    await mine.claim("k", "reject", print, ended)
    await mine.bind("k", run_id)
    await _append(broker, run_id, log[:-1])  # running: the session is busy
    with pytest.raises(SessionBusy):
        await theirs.claim("k", "reject", print, ended)
    await _append(broker, run_id, log[-1:], last=True)  # agent_end stored, lock not released
    token = await theirs.claim("k", "reject", print, ended)
    taken = await mine.holder("k")
    assert taken.split(" ")[:2] == [str(token), other.worker_id]  # taken over: a new token
    await mine.release("k")  # the late release leaves the new holder's lock alone
    assert await mine.holder("k") == taken
    await other.aclose()


class _Waiting:
    """Two workers' session locks on one Redis, the waiter's lock changes relayed as its node
    relays them; its lease, and the old code's poll, are 60 s: only a published change can
    wake it within a test's hang guard. `tried` is set once the waiter's first try failed."""

    def __init__(self, broker, monkeypatch) -> None:
        from agentcast.broker import _sessions
        from agentcast.broker._sessions import SessionLocks
        from agentcast.broker.redis import RedisBroker

        monkeypatch.setattr(_sessions, "POLL", 60.0, raising=False)
        self.other = RedisBroker(f"redis://127.0.0.1:6379/13?prefix={broker.prefix}", lease=60.0)
        self.mine, self.theirs = SessionLocks(broker), SessionLocks(self.other)
        self.tried = asyncio.Event()
        take = self.theirs._take  # noqa: SLF001

        async def take_once_tried(session_key):
            taken = await take(session_key)
            self.tried.set()
            return taken

        self.theirs._take = take_once_tried  # type: ignore[method-assign]  # noqa: SLF001

    async def __aenter__(self):
        subscribed = asyncio.Event()

        async def relay() -> None:  # what `BrokerNode._listen` does with the channel
            async for _, session_key in self.other.subscribe("locks", ready=subscribed.set):
                self.theirs.changed(session_key)

        self.listening = asyncio.create_task(relay())
        await asyncio.wait_for(subscribed.wait(), 10)
        return self

    async def __aexit__(self, *exc) -> None:
        self.listening.cancel()
        await asyncio.gather(self.listening, return_exceptions=True)
        await self.other.aclose()


async def _never_ended(run: str) -> bool:
    return False


@requires_services
async def test_an_enqueued_claim_is_woken_by_the_holders_release_not_by_a_poll(broker, monkeypatch):
    async with _Waiting(broker, monkeypatch) as locks:
        await locks.mine.claim("k", "reject", print, _never_ended)
        waiting = asyncio.create_task(locks.theirs.claim("k", "enqueue", print, _never_ended))
        await asyncio.wait_for(locks.tried.wait(), 10)
        assert not waiting.done(), "the session is busy: the claim waits"
        await locks.mine.release("k")
        token = await asyncio.wait_for(waiting, 10)  # a hang guard: a lease or a poll is 60 s
        holder = (await locks.mine.holder("k")).split(" ")[:2]
        assert holder == [str(token), locks.other.worker_id]
        assert not locks.theirs._waiting, "no waiter is left behind"  # noqa: SLF001


@requires_services
async def test_an_interrupt_cancels_the_holders_run_as_soon_as_its_lock_names_it(
    broker, monkeypatch
):
    # The lock is taken before its run is known (`-`): an `interrupt` arriving then cannot
    # cancel anything yet, and must be woken when the lock names its run, not a lease later.
    cancelled: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    async with _Waiting(broker, monkeypatch) as locks:
        await locks.mine.claim("k", "reject", print, _never_ended)
        waiting = asyncio.create_task(
            locks.theirs.claim("k", "interrupt", cancelled.set_result, _never_ended)
        )
        await asyncio.wait_for(locks.tried.wait(), 10)
        assert not cancelled.done(), "no run named yet: nothing to cancel"
        await locks.mine.bind("k", "run_a")
        assert await asyncio.wait_for(cancelled, 10) == "run_a"  # a hang guard, as above
        await locks.mine.release("k")  # the cancelled run ends: the interrupt takes the lock
        await asyncio.wait_for(waiting, 10)


# -- the replicator: one pipeline for every run executing on the worker ------------------------


class _Run:
    """What the replicator reads of a run: its id, session, log; `cancel()` is recorded."""

    def __init__(self, events) -> None:
        from agentcast.runtime import EventLog

        self.run_id = f"run_{uuid.uuid4().hex[:12]}"
        self.session_id = self.session_key = None
        self.log = EventLog()
        self.cancelled = False
        # The demo run's events, as this run's.
        self.events = [msgspec.structs.replace(e, run_id=self.run_id) for e in events]

    def emit(self, upto: int) -> None:
        """Log the events up to seq `upto` (excluded); the log closes after `agent_end`."""
        for event in self.events[self.log.next_seq : upto]:
            self.log.append(event)
        if self.log.next_seq == len(self.events):
            self.log.close()

    def cancel(self) -> None:
        self.cancelled = True


class _Replication:
    """A replicator on the real Redis, its flusher running, each pipeline it sent recorded."""

    def __init__(self, broker) -> None:
        from agentcast.broker._replicator import ReplicationStats, Replicator

        self.broker = broker
        self.stats = ReplicationStats()
        self.lost: list[str] = []
        self.replicated: list[str] = []
        self.pipelines: list[dict[str, list[int]]] = []  # run id -> the seqs sent, per call
        self.answered = self.failures = 0
        self.gate: asyncio.Event | None = None  # when set here: replies wait for it
        self._flushes = asyncio.Condition()
        self.replicator = Replicator(
            broker,
            self.stats,
            lambda managed, _: self.lost.append(managed.run.run_id),
            lambda managed: self.replicated.append(managed.run.run_id),
        )
        append_many = broker.append_many

        async def recorded(batches):
            self.pipelines.append({b.run_id: [e.seq for e in b.events] for b in batches})
            try:
                sent = await append_many(batches)
            except Exception:
                self.failures += 1
                raise
            finally:
                self.answered += 1
                async with self._flushes:
                    self._flushes.notify_all()
            if self.gate is not None:  # the reply is in; the replicator has not seen it
                await self.gate.wait()
            return sent

        broker.append_many = recorded

    def attach(self, run):
        from agentcast.runtime import ManagedRun

        return self.replicator.attach(ManagedRun(run=run, owner=None))

    async def flushes(self, count: int) -> None:
        """Wait until `count` pipelines were answered (or failed)."""
        async with self._flushes:
            await asyncio.wait_for(self._flushes.wait_for(lambda: self.answered >= count), 10)

    async def stored(self, run) -> list:
        return (await self.broker.history(run.run_id))[1]

    async def __aenter__(self):
        self.task = asyncio.create_task(self.replicator.run())
        return self

    async def __aexit__(self, *exc) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@requires_services
async def test_many_runs_go_in_one_pipeline_and_each_stream_equals_its_log(broker, log):
    # Eight runs attached at once share the first pipeline; what they log while it is in
    # flight (its reply held) goes in the second, all eight again; their finishing commands
    # in the third. One replicator per run sent a pipeline per run per wake-up.
    runs = [_Run(log) for _ in range(8)]
    for run in runs:
        run.emit(3)
    async with _Replication(broker) as replication:
        replication.gate = asyncio.Event()
        registered = [replication.attach(run) for run in runs]
        await replication.flushes(1)
        for run in runs:
            run.emit(len(log))  # to its end, while the first round trip is in flight
        replication.gate.set()
        await asyncio.gather(*registered)
        await asyncio.wait_for(replication.replicator.flushed(), 10)
    ids = sorted(run.run_id for run in runs)
    assert [sorted(p) for p in replication.pipelines] == [ids, ids, ids]
    assert all(p[r.run_id] == [0, 1, 2] for p in replication.pipelines[:1] for r in runs)
    assert all(
        p[r.run_id] == list(range(3, len(log))) for p in replication.pipelines[1:2] for r in runs
    )
    stats = replication.stats
    assert stats.round_trips == 3 and stats.events == len(runs) * len(log)
    assert sorted(replication.replicated) == ids
    for run in runs:
        assert await replication.stored(run) == run.log.snapshot()
        info = await broker.lookup(run.run_id)
        assert info is not None and info["status"] == "finished"
    assert await broker.running() == {}
    # The counter took every command (`+=` across an await lost the concurrent updates).
    keys = [k async for k in broker.client.scan_iter(f"{broker.prefix}run:*:events")]
    entries = sum([await broker.client.xlen(k) for k in keys])
    assert entries == 2 * len(runs)  # one entry per run per pipeline with events
    # One `APPEND` for all the entries of a pipeline, + registrations and finishing commands.
    assert stats.commands == 2 + len(runs) * (2 + 4)


@requires_services
async def test_between_two_pipelines_the_flush_interval_gathers_what_is_logged(broker, log):
    # At a low load, each pipeline (a round trip's worth of a worker's CPU) carries what was
    # logged during the interval after the previous one; a new run's registration does not
    # wait for it (its start waits for the registration).
    broker.flush_interval = 3600.0
    first, second = _Run(log), _Run(log)
    async with _Replication(broker) as replication:
        await replication.attach(first)  # the registration goes at once
        first.emit(4)  # logged in the interval: held
        await asyncio.sleep(0)  # a loop turn: enough for a flusher without an interval to send
        await replication.flushes(len(replication.pipelines))  # none is left in flight
        assert len(replication.pipelines) == 1
        await replication.attach(second)  # no wait: and the first's events come along
        assert replication.pipelines == [
            {first.run_id: []},
            {first.run_id: [0, 1, 2, 3], second.run_id: []},
        ]
        replication.task.cancel()


@requires_services
@pytest.mark.parametrize("per_event", [False, True])
async def test_events_logged_while_a_round_trip_is_in_flight_go_in_the_next(broker, log, per_event):
    broker.per_event = per_event
    run = _Run(log)
    run.emit(3)  # logged before the run is attached: taken from the log
    async with _Replication(broker) as replication:
        replication.gate = asyncio.Event()
        registered = replication.attach(run)
        run.emit(5)
        await replication.flushes(1)
        assert not registered.done()  # in flight: the replicator waits for its reply
        run.emit(9)  # meanwhile
        replication.gate.set()
        await registered
        await replication.flushes(2)
        run.emit(len(log))
        await asyncio.wait_for(replication.replicator.flushed(), 10)
    sent = [p[run.run_id] for p in replication.pipelines if p.get(run.run_id)]
    assert sent[:2] == [[0, 1, 2, 3, 4], [5, 6, 7, 8]]
    assert [seq for seqs in sent for seq in seqs] == list(range(len(log)))
    stored = await replication.stored(run)
    assert [e.seq for e in stored] == list(range(len(log)))
    assert stored == run.log.snapshot()
    ids = [i for i, _ in await broker.client.xrange(broker.key("run", run.run_id, "events"))]
    first = [s for seqs in sent for s in (seqs if per_event else seqs[:1])]
    assert ids == [f"{s}-1".encode() for s in first]
    assert replication.stats.events == len(log)
    assert replication.replicated == [run.run_id]


@requires_services
async def test_a_fenced_run_is_cancelled_while_the_others_in_its_pipeline_go_on(broker, log):
    fenced, other = _Run(log), _Run(log)
    async with _Replication(broker) as replication:
        for run in (fenced, other):
            replication.attach(run)
            run.emit(5)
        await replication.flushes(1)
        # Another worker declared this one dead and ended `fenced` in its stream.
        last, held = await broker.history(fenced.run_id)
        closing = close_lost_run(fenced.run_id, None, held, WorkerLost("gone"))
        assert await broker.end_lost(fenced.run_id, last, closing)
        for run in (fenced, other):
            run.emit(9)
        await replication.flushes(2)
        assert replication.pipelines[1].keys() == {fenced.run_id, other.run_id}
        assert fenced.cancelled and not other.cancelled
        assert replication.replicated == [fenced.run_id]
        fenced.emit(len(log))  # its own ending, after the cancel: not sent
        other.emit(len(log))
        await asyncio.wait_for(replication.replicator.flushed(), 10)
    assert await replication.stored(fenced) == [*fenced.events[:5], *closing]
    assert await replication.stored(other) == other.log.snapshot()
    assert replication.replicated == [fenced.run_id, other.run_id]
    assert not replication.lost


@requires_services
async def test_a_failing_finish_callback_skips_none_of_the_other_runs(broker, log, caplog):
    # The node's callback fails for one run (a bug): the runs ending in the same pipeline
    # after it are still detached and told. Raised inside the flush's loop, it left them
    # attached for ever, and `flushed()` never returned.
    runs = [_Run(log) for _ in range(4)]
    async with _Replication(broker) as replication:
        told = replication.replicator._on_replicated  # noqa: SLF001

        def failing_for_the_first(managed) -> None:
            told(managed)
            if managed.run is runs[0]:
                raise RuntimeError("a bug in a finishing callback")

        replication.replicator._on_replicated = failing_for_the_first  # noqa: SLF001
        for run in runs:
            replication.attach(run)
            run.emit(len(log))
        await asyncio.wait_for(replication.replicator.flushed(), 10)
    assert sorted(replication.replicated) == sorted(run.run_id for run in runs)
    assert "a broker replication callback failed" in caplog.text
    for run in runs:
        assert await replication.stored(run) == run.log.snapshot()


class _Relay:
    """A TCP relay to Redis that can lose Redis: the reply to the next `XADD` is dropped (it
    was applied), then every connection is refused until `restore()`."""

    def __init__(self) -> None:
        self.down = False
        self.lose_next_xadd = False

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    async def _relay(self, reader, writer) -> None:
        if self.down:
            writer.close()
            return
        upstream_reader, upstream = await asyncio.open_connection("127.0.0.1", 6379)
        losing = False

        async def requests() -> None:
            nonlocal losing
            while data := await reader.read(65536):
                if self.lose_next_xadd and (b"XADD" in data or b"EVALSHA" in data):
                    self.lose_next_xadd, losing = False, True
                upstream.write(data)
            upstream.close()

        async def replies() -> None:
            while data := await upstream_reader.read(65536):
                if losing or self.down:  # Redis applied it; its reply is lost with Redis
                    self.down = True
                    break
                writer.write(data)
            writer.close()
            upstream.close()

        await asyncio.gather(requests(), replies(), return_exceptions=True)

    def restore(self) -> None:
        self.down = False


@requires_services
async def test_redis_lost_mid_batch_then_back_stores_every_event_once(log, monkeypatch):
    from agentcast.broker import _replicator, open_broker

    monkeypatch.setattr(_replicator, "RETRY", 0.01)
    async with _Relay() as relay:
        prefix = f"w{uuid.uuid4().hex[:10]}:"
        broker = open_broker(f"redis://127.0.0.1:{relay.port}/13?prefix={prefix}", timeout=2)
        runs = [_Run(log), _Run(log)]
        try:
            async with _Replication(broker) as replication:
                for run in runs:
                    replication.attach(run)
                    run.emit(5)
                await replication.flushes(1)
                relay.lose_next_xadd = True
                for run in runs:
                    run.emit(9)  # applied by Redis, but its reply is lost
                await replication.flushes(3)  # that one, and a retry refused
                assert replication.failures == 2 and relay.down
                assert sorted(replication.lost) == sorted(r.run_id for r in runs)  # told once
                for run in runs:
                    run.emit(12)  # while Redis is away
                late = _Run(log)  # started while Redis is away: its start fails (503)
                registered = replication.attach(late)
                late.emit(4)
                await replication.flushes(4)
                with pytest.raises(BrokerUnavailable):
                    await registered
                runs.append(late)
                relay.restore()
                for run in runs:
                    run.emit(len(log))
                await asyncio.wait_for(replication.replicator.flushed(), 10)
            for run in runs:
                stored = await replication.stored(run)
                assert [e.seq for e in stored] == list(range(len(log)))  # no gap, no duplicate
                assert stored == run.log.snapshot()
                info = await broker.lookup(run.run_id)
                assert info is not None and info["status"] == "finished"
            assert sorted(replication.lost) == sorted(r.run_id for r in runs)  # once each
            assert replication.stats.events == len(runs) * len(log)
        finally:
            await broker.client.delete(*[k async for k in broker.client.scan_iter(f"{prefix}*")])
            await broker.aclose()


@requires_services
async def test_fencing_tokens_keep_increasing_after_redis_lost_its_counter(broker):
    from agentcast.broker._sessions import SessionLocks, token_of

    locks = SessionLocks(broker)
    value, _ = await locks._take("k")  # noqa: SLF001
    before = [token_of(value), await locks.token()]
    # A Redis restarted empty: the stores still hold the tokens handed out before.
    await broker.client.delete(broker.key("fence"), broker.key("lock", "k"))
    value, _ = await locks._take("k")  # noqa: SLF001
    after = [token_of(value), await locks.token(), await locks.token()]
    assert before == sorted(before) and after == sorted(after)
    assert min(after) > max(before) and len(set(before + after)) == 5


@contextlib.asynccontextmanager
async def _two_workers(model_a, model_b):
    """Workers A and B (`ServerState`s, running) on one broker and one Postgres store; yields
    `(a, b, store)`, the store being a third client of the same tables."""
    from agentcast.server._config import ServerConfig
    from agentcast.server._state import ServerState
    from agentcast.sessions.postgres import PostgresStore
    from tests.test_sessions import POSTGRES_URL, postgres_prefix

    url = f"redis://127.0.0.1:6379/13?prefix=f{uuid.uuid4().hex[:10]}:"
    config = ServerConfig(broker=url, tune_gc=False)
    async with postgres_prefix() as tables:

        def worker(model) -> ServerState:
            store = PostgresStore(POSTGRES_URL, table_prefix=tables)
            return ServerState(Agent(model, store=store), config=config)

        a, b = worker(model_a), worker(model_b)
        assert a.node is not None and b.node is not None
        broker = a.node.broker
        try:
            async with a.lifespan(), b.lifespan():
                yield a, b, PostgresStore(POSTGRES_URL, table_prefix=tables)
        finally:
            keys = [k async for k in broker.client.scan_iter(f"{broker.prefix}*")]
            if keys:
                await broker.client.delete(*keys)
            await broker.aclose()


async def _lease_runs_out(worker, key: str) -> None:
    """Worker A's lease on the session's lock runs out while it stalls: the lock is gone."""
    broker = worker.node.broker
    await broker.client.delete(broker.key("lock", key))


@requires_services
async def test_a_stalled_worker_that_lost_its_session_lock_cannot_save_its_turn_late():
    from langchain_core.messages import AIMessageChunk

    from agentcast.testing import ScriptedChatModel

    resume_a = asyncio.Event()

    async def stall(call: int, index: int) -> None:
        await resume_a.wait()  # worker A's run stalls (a GC pause, a partition) mid-answer

    answer = [[AIMessageChunk(content="from "), AIMessageChunk(content="me")]]
    model_a = ScriptedChatModel(turns=answer, before_chunk=stall)
    async with _two_workers(model_a, ScriptedChatModel(turns=answer)) as (a, b, store):
        on_a = await a.start_run("asked on A", session_id="s", owner=None)
        key = a.session_key("s", None)
        token_a = int((await a.node.locks.holder(key)).split(" ")[0])
        await _lease_runs_out(a, key)
        on_b = await b.start_run("asked on B", session_id="s", owner=None)  # takes the lock
        assert int((await a.node.locks.holder(key)).split(" ")[0]) > token_a
        saved = await on_b.run.wait()
        assert saved.outcome == "success"
        resume_a.set()
        late = await on_a.run.wait()
        history = await store.load(key)
    assert (late.outcome, late.error_code) == ("error", "session_fenced")
    assert late.error is not None and "newer run" in late.error
    [error] = [e for e in on_a.run.log.snapshot() if e.type == "error"]
    assert (error.code, error.error_type) == ("session_fenced", "SessionFenced")
    assert [m["content"] for m in history] == ["asked on B", "from me"], "B's turn only"


@requires_services
async def test_a_stalled_worker_cannot_bring_back_a_session_deleted_meanwhile():
    # Before: the delete took no lock and the store forgot the session's fence with its row,
    # so A's late save (its lock long expired) created the deleted session again. Now the
    # delete holds the lock, and the store keeps the lock's token as the session's fence.
    from langchain_core.messages import AIMessageChunk

    from agentcast.testing import ScriptedChatModel

    resume_a = asyncio.Event()

    async def stall(call: int, index: int) -> None:
        if call == 1:  # the second turn's model call: A stalls mid-answer
            await resume_a.wait()

    answer = [[AIMessageChunk(content="first")], [AIMessageChunk(content="late")]]
    model_a = ScriptedChatModel(turns=answer, before_chunk=stall)
    async with _two_workers(model_a, ScriptedChatModel(turns=answer)) as (a, b, store):
        first = await a.start_run("one", session_id="s", owner=None)
        assert (await first.run.wait()).outcome == "success"
        key = a.session_key("s", None)
        stalled = await a.start_run("two", session_id="s", owner=None)
        await _lease_runs_out(a, key)
        await b.delete_session("s", None)
        assert await store.info(key) is None
        resume_a.set()
        late = await stalled.run.wait()
        kept = (await store.load(key), await store.info(key))
    assert (late.outcome, late.error_code) == ("error", "session_fenced")
    assert kept == ([], None), "the deleted session stays deleted"


@requires_services
async def test_a_delete_holds_the_sessions_lock_so_no_run_starts_meanwhile(monkeypatch):
    from langchain_core.messages import AIMessageChunk

    from agentcast.errors import SessionBusy
    from agentcast.testing import ScriptedChatModel

    answer = [[AIMessageChunk(content="hi")]]
    model = ScriptedChatModel(turns=answer)
    async with _two_workers(model, ScriptedChatModel(turns=answer)) as (a, b, store):
        done = await a.start_run("one", session_id="s", owner=None)
        await done.run.wait()
        assert a.node is not None
        await asyncio.wait_for(a.node.replicator.flushed(), 10)  # its end is in its stream
        key = a.session_key("s", None)
        deleting = asyncio.Event()
        go_on = asyncio.Event()
        delete = store.delete

        async def slow_delete(session_id, **kwargs):  # B's store answers slowly
            deleting.set()
            await go_on.wait()
            return await delete(session_id, **kwargs)

        monkeypatch.setattr(b.session_store(), "delete", slow_delete)
        task = asyncio.create_task(b.delete_session("s", None))
        # Only the delete sets `deleting`: one that fails (SessionBusy while A's end was not
        # in its stream yet) must fail the test here, not leave it waiting forever.
        reached = asyncio.ensure_future(deleting.wait())
        await asyncio.wait({task, reached}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            reached.cancel()
            task.result()
        with pytest.raises(SessionBusy):  # the delete holds the lock: A refuses the run
            await a.start_run("two", session_id="s", owner=None, policy="reject")
        go_on.set()
        await task
        assert await store.info(key) is None
        again = await a.start_run("three", session_id="s", owner=None)  # then it is free
        assert (await again.run.wait()).outcome == "success"


# -- the follower: one blocking read for every replica on the worker ---------------------------


@contextlib.asynccontextmanager
async def _reading_worker(url: str, **options):
    """Worker B: a broker node (no server) whose replicas are runs executing on worker A.

    Its follower's `read_many` calls are recorded (`node.reads`: the run ids asked, per call;
    `node.read_failures`, notified on `node.failed`); `node.read_out` is set while a read is
    out.
    """
    from agentcast.broker import attach, open_broker
    from agentcast.runtime import RunManager

    broker = open_broker(url, **options)
    node = attach(broker, RunManager(lambda *args, **kwargs: None))
    node.reads, node.read_failures, node.read_out = [], 0, asyncio.Event()
    node.failed = asyncio.Condition()
    read_many = getattr(broker, "read_many", None)  # None: one blocking read per replica

    async def recorded(runs, **kwargs):
        node.reads.append(set(runs))
        node.read_out.set()
        try:
            return await read_many(runs, **kwargs)
        except Exception:
            node.read_out.clear()
            node.read_failures += 1
            async with node.failed:
                node.failed.notify_all()
            raise
        finally:
            node.read_out.clear()

    if read_many is not None:
        broker.read_many = recorded
    try:
        yield node
    finally:
        await node.aclose()


def _url(broker) -> str:
    """The URL of another worker's broker on the same Redis and prefix as `broker`."""
    return f"{broker.url}?prefix={broker.prefix}"


async def _collect(log) -> list:
    """What one local reader of a replica's log gets, to the log's end."""
    from agentcast.runtime import LogReader

    return [event async for event in LogReader(log)]


async def _reached(log, seq: int) -> None:
    """Wait until a replica's log holds the events before `seq` (or is closed)."""
    while log.next_seq < seq and not log.closed:
        await log.waiter()


def _following_tasks() -> list[asyncio.Task]:
    """The tasks reading replicas' streams: the follower (before: one per replica)."""
    return [t for t in asyncio.all_tasks() if "follow" in t.get_name()]


@requires_services
async def test_many_replicas_share_one_follower_task_and_one_blocking_connection(broker, log):
    # 50 runs executing on worker A, each read live on worker B: one task and one blocked
    # connection on B read them all (one per replica before), and every reader gets every
    # event once, in order.
    import anyio

    runs = [_Run(log) for _ in range(50)]
    for run in runs:
        run.emit(3)
    with anyio.fail_after(30):
        async with _Replication(broker) as on_a, _reading_worker(_url(broker)) as b:
            await asyncio.gather(*[on_a.attach(run) for run in runs])
            replicas = [await b.find(run.run_id, None) for run in runs]
            readers = [asyncio.create_task(_collect(m.run.log)) for m in replicas]
            [follower] = _following_tasks()
            assert sorted(b.follower.following) == sorted(run.run_id for run in runs)
            for upto in (10, 20, 40, len(log)):
                for run in runs:
                    run.emit(upto)
                for managed in replicas:
                    await _reached(managed.run.log, upto)
            delivered = await asyncio.gather(*readers)
            await follower  # it ends with the last run it follows
            pool = b.broker._blocking.connection_pool
            assert len(pool._available_connections) + len(pool._in_use_connections) == 1
            assert max(len(asked) for asked in b.reads) == len(runs)  # all in one XREAD
            assert b.follower.following == [] and b.follower.task is None  # all ended
    for run, events in zip(runs, delivered, strict=True):
        check_invariants(events)
        assert events == run.log.snapshot()


@requires_services
async def test_a_run_added_while_the_follower_is_blocked_is_read_at_once(broker, log, monkeypatch):
    # The follower's read, out for the first replica alone, would block 30 s: the second
    # replica, added meanwhile, wakes it (its worker's wake stream), so the second run's
    # live events arrive at once. A hang guard, not a timing.
    import anyio

    from agentcast.broker import _followers

    monkeypatch.setattr(_followers, "BLOCK", 30.0)
    idle, live = _Run(log), _Run(log)
    for run in (idle, live):
        run.emit(3)
    async with _Replication(broker) as on_a, _reading_worker(_url(broker)) as b:
        for run in (idle, live):
            await on_a.attach(run)
        with anyio.fail_after(5):
            await b.find(idle.run_id, None)
            await b.read_out.wait()  # blocked for `idle` alone
            replica = await b.find(live.run_id, None)
            live.emit(len(log))
            await replica.run.wait()
        assert b.reads[0] == {idle.run_id}
        assert b.reads[-1] == {idle.run_id}  # `live` ended: no longer asked for
    assert replica.run.log.snapshot() == live.log.snapshot()


@requires_services
async def test_a_discarded_replica_is_no_longer_followed_nor_after_the_node_closed(
    broker, log, monkeypatch
):
    # Each step is prompt though a read blocks 30 s: a discarded run's read is answered by
    # its next entries, and the node's close ends the follower at once (the close's cancel
    # lands right after the follower sent its read: redis-py on Python 3.11 can lose it).
    import anyio

    from agentcast.broker import _followers

    monkeypatch.setattr(_followers, "BLOCK", 30.0)
    first, second = _Run(log), _Run(log)
    for run in (first, second):
        run.emit(3)
    async with _Replication(broker) as on_a:
        with anyio.fail_after(5):
            async with _reading_worker(_url(broker)) as b:
                for run in (first, second):
                    await on_a.attach(run)
                replica = await b.find(first.run_id, None)
                follower = b.follower.task
                await b.read_out.wait()
                b.follower.discard(first.run_id)  # while its read is out
                first.emit(len(log))  # that read brings these: dropped
                await follower  # nothing is followed: the task ends
                assert replica.run.log.next_seq == 3 and not replica.run.log.closed
                assert b.follower.following == [] and _following_tasks() == []
                # Followed again by another replica, until the node closes.
                other = await b.find(second.run_id, None)
                [follower] = _following_tasks()
        assert follower.done() and _following_tasks() == []
        second.emit(len(log))
        await asyncio.wait_for(on_a.replicator.flushed(), 10)
    assert other.run.log.next_seq == 3


@requires_services
async def test_replicas_wait_while_redis_is_lost_and_continue_with_no_gap(log, monkeypatch):
    import anyio

    from agentcast.broker import _followers

    monkeypatch.setattr(_followers, "RETRY", 0.01)
    prefix = f"w{uuid.uuid4().hex[:10]}:"
    from agentcast.broker import open_broker

    on_a_broker = open_broker(f"redis://127.0.0.1:6379/13?prefix={prefix}")
    runs = [_Run(log) for _ in range(3)]
    for run in runs:
        run.emit(3)
    try:
        async with _Relay() as relay, _Replication(on_a_broker) as on_a:
            url = f"redis://127.0.0.1:{relay.port}/13?prefix={prefix}"
            async with _reading_worker(url, timeout=2) as b:  # B reaches Redis by the relay
                for run in runs:
                    await on_a.attach(run)
                replicas = [await b.find(run.run_id, None) for run in runs]
                readers = [asyncio.create_task(_collect(m.run.log)) for m in replicas]
                with anyio.fail_after(20):
                    for run in runs:
                        run.emit(10)
                    for managed in replicas:
                        await _reached(managed.run.log, 10)
                    relay.down = True
                    for run in runs:
                        run.emit(20)  # the read's reply is lost with Redis; then refused
                    async with b.failed:  # lost mid-read, then refused twice
                        await b.failed.wait_for(lambda: b.read_failures >= 3)
                    assert all(m.run.log.next_seq == 10 for m in replicas)
                    for run in runs:
                        run.emit(len(log))
                    relay.restore()
                    delivered = await asyncio.gather(*readers)
    finally:
        await on_a_broker.client.delete(
            *[k async for k in on_a_broker.client.scan_iter(f"{prefix}*")]
        )
        await on_a_broker.aclose()
    for run, events in zip(runs, delivered, strict=True):
        check_invariants(events)
        assert events == run.log.snapshot()  # no gap, no duplicate


@requires_services
async def test_a_replica_whose_run_is_gone_from_redis_is_closed(broker, log, monkeypatch):
    import anyio

    from agentcast.broker import _followers

    monkeypatch.setattr(_followers, "BLOCK", 0.05)
    gone, idle = _Run(log), _Run(log)
    for run in (gone, idle):
        run.emit(3)
    async with _Replication(broker) as on_a, _reading_worker(_url(broker)) as b:
        for run in (gone, idle):
            await on_a.attach(run)
        replicas = [await b.find(run.run_id, None) for run in (gone, idle)]
        # Expired (or a Redis restarted empty): its readers end rather than wait forever.
        await broker.client.delete(
            broker.key("run", gone.run_id), broker.key("run", gone.run_id, "events")
        )
        with anyio.fail_after(5):
            await _collect(replicas[0].run.log)
        assert b.follower.following == [idle.run_id]  # quiet, but still registered
        assert not replicas[1].run.log.closed
        assert await b.find(gone.run_id, None) is None, "gone: a 404 now, not an empty stream"
        for run in (gone, idle):
            run.emit(len(log))
        with anyio.fail_after(5):
            await replicas[1].run.wait()
