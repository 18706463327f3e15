"""The broker's parts in one process, on the real Redis: ending a lost run, fencing, retries.

A real demo run's log (the offline model, a tool call, tokens) is cut at every point a worker
could die, and ended as the sweeper ends it.
"""

from __future__ import annotations

import uuid

import pytest

from agentcast import Agent
from agentcast.errors import WorkerLost
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


@requires_services
async def test_an_append_after_another_worker_ended_the_run_is_fenced(broker, log):
    from agentcast.broker.redis import Fenced

    run_id = log[0].run_id
    await broker.append(run_id, log[:5], last=False)
    last, held = await broker.history(run_id)
    closing = close_lost_run(run_id, "s", held, WorkerLost("gone"))
    assert await broker.end_lost(run_id, last, closing)
    with pytest.raises(Fenced):  # the worker declared dead wakes up: refused
        await broker.append(run_id, log[5:9], last=False)
    _, stored = await broker.history(run_id)
    assert stored == [*log[:5], *closing]
    check_invariants(stored)


@requires_services
async def test_the_sweeper_does_not_end_a_run_whose_stream_moved_on(broker, log):
    run_id = log[0].run_id
    await broker.append(run_id, log[:5], last=False)
    last, held = await broker.history(run_id)
    await broker.append(run_id, log[5:7], last=False)  # the worker was alive after all
    closing = close_lost_run(run_id, "s", held, WorkerLost("gone"))
    assert not await broker.end_lost(run_id, last, closing)
    assert (await broker.history(run_id))[1] == log[:7]


@requires_services
@pytest.mark.parametrize("per_event", [False, True])
async def test_an_append_retried_after_a_lost_reply_stores_each_event_once(broker, log, per_event):
    broker.per_event = per_event
    run_id = log[0].run_id
    await broker.append(run_id, log[:6], last=False)
    # The reply was lost: the replicator retries the batch, grown meanwhile.
    await broker.append(run_id, log[:10], last=False)
    await broker.append(run_id, log[10:], last=True)
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
    await broker.append(run_id, log[:-1], last=False)  # running: the session is busy
    with pytest.raises(SessionBusy):
        await theirs.claim("k", "reject", print, ended)
    await broker.append(run_id, log[-1:], last=True)  # agent_end stored, lock not released
    taken = await theirs.claim("k", "reject", print, ended)
    assert taken.split(" ")[1] == other.worker_id
    await mine.release("k")  # the late release leaves the new holder's lock alone
    assert await broker.holder("k") == taken
    await other.aclose()


async def test_concurrent_replicators_count_every_command(broker, monkeypatch):
    # `stats.commands += await ...` read the counter before the await: replicators that
    # overlapped lost each other's counts (208 counted for 840 XADDs in a benchmark).
    import asyncio

    from agentcast.broker._replica import ReplicationStats, replicate
    from agentcast.runtime import ManagedRun

    monkeypatch.setenv("AGENTCAST_OFFLINE_DELAY", "0.001")  # appends of a few tokens each
    agent = Agent("offline", store=MemoryStore())
    stats = ReplicationStats()
    sent = []
    append = broker.append

    async def counting_append(*args, **kwargs):
        commands = await append(*args, **kwargs)
        sent.append(commands)
        return commands

    broker.append = counting_append
    runs = [agent.start("hi", session_id=f"s{i}") for i in range(8)]
    copies = []
    for run in runs:
        managed = ManagedRun(run=run, owner=None)
        registered = asyncio.get_running_loop().create_future()
        copies.append(replicate(broker, managed, registered, stats, lambda *_: None))
    await asyncio.gather(*copies, *(run.execute() for run in runs))
    assert len(sent) > len(runs)  # several appends per run, overlapping
    assert stats.commands == sum(sent)
