"""One log reader: every consumer of a run's events follows the log with the same cursor."""

from __future__ import annotations

import re

import anyio
import pytest

from agentcast import Agent
from agentcast.errors import InvalidInput
from agentcast.events import LLMToken
from agentcast.runtime import HEARTBEAT, EventLog, LogReader, ResumeGap
from agentcast.server._stream import read_events
from agentcast.testing import ScriptedChatModel
from tests.test_runtime import text

pytestmark = pytest.mark.anyio


def token(seq: int) -> LLMToken:
    return LLMToken(token=str(seq), call_id="c", seq=seq)


async def test_every_consumer_reads_the_log_through_one_reader():
    run = Agent(ScriptedChatModel(turns=[text("a")])).start("hi")
    server_reader = read_events(run.log, after=-1, heartbeat=10.0)
    assert isinstance(run.events(), LogReader)
    assert isinstance(run.iterate(), LogReader)
    assert isinstance(server_reader, LogReader)


async def test_run_events_refuses_a_resume_gap_at_once():
    log = EventLog(limit=2)
    for seq in range(6):
        log.append(token(seq))
    assert log.first_seq > 1
    with pytest.raises(ResumeGap):
        LogReader(log, after=0)


async def test_a_cursor_past_the_end_of_an_ended_run_is_refused_by_every_reader():
    run = Agent(ScriptedChatModel(turns=[text("a")])).start("hi")
    await run.execute()
    last = run.log.next_seq - 1
    assert [e async for e in run.events(after=last)] == []
    with pytest.raises(InvalidInput):
        run.events(after=last + 1)
    with pytest.raises(InvalidInput):
        read_events(run.log, after=last + 1, heartbeat=10.0)


async def test_the_token_filter_leaves_out_tokens_for_every_reader():
    run = Agent(ScriptedChatModel(turns=[text("a", "b")])).start("hi")
    await run.execute()
    everything = [e async for e in LogReader(run.log)]
    without = [e async for e in LogReader(run.log, tokens=False)]
    assert any(e.type == "llm_token" for e in everything)
    assert without == [e for e in everything if e.type != "llm_token"]


async def test_a_silent_log_yields_a_heartbeat_then_the_next_event():
    log = EventLog()
    reader = LogReader(log, heartbeat=0.01)
    assert await reader.__anext__() is HEARTBEAT
    log.append(token(0))
    assert (await reader.__anext__()).seq == 0
    log.close()
    with pytest.raises(StopAsyncIteration):
        await reader.__anext__()


async def test_a_reader_waiting_on_the_log_wakes_at_the_append():
    log = EventLog()
    seen = []

    async def read():
        async for event in LogReader(log):
            seen.append(event.seq)

    async with anyio.create_task_group() as group:
        group.start_soon(read)
        await anyio.wait_all_tasks_blocked()
        log.append(token(0))
        log.close()
    assert seen == [0]


async def test_take_ready_returns_what_is_logged_without_waiting_and_moves_the_cursor():
    from agentcast.events import LLMStart

    log = EventLog()
    log.append(LLMStart(call_id="c", seq=0))
    for seq in range(1, 4):
        log.append(token(seq))
    reader = LogReader(log, after=0, tokens=False)
    assert reader.take_ready() == []  # only tokens were logged after the cursor: filtered
    assert reader.take_ready() == []  # and the cursor moved past them
    everything = LogReader(log)
    first = await everything.__anext__()
    assert [first, *everything.take_ready()] == log.snapshot()
    log.append(token(4))
    assert everything.take_ready() == [token(4)]


async def test_take_ready_refuses_a_reader_that_fell_behind():
    log = EventLog(limit=2)
    reader = LogReader(log)
    for seq in range(6):
        log.append(token(seq))
    with pytest.raises(ResumeGap):
        reader.take_ready()


async def test_one_write_carries_every_event_a_wake_up_found():
    # A model that never suspends logs its whole answer before the reader wakes: the server
    # sends those frames in one body chunk, and they are all there, in order.
    import httpx

    from agentcast.server import create_app
    from agentcast.sessions import MemoryStore

    app = create_app(Agent(ScriptedChatModel(turns=[text(*"abcdefgh")]), store=MemoryStore()))
    chunks: list[bytes] = []

    async def recording(scope, receive, send):  # type: ignore[no-untyped-def]
        async def keep(message):  # type: ignore[no-untyped-def]
            body = message["type"] == "http.response.body" and message.get("body")
            if body and scope["path"] == "/invoke":
                chunks.append(message["body"])
            await send(message)

        await app(scope, receive, keep)

    transport = httpx.ASGITransport(app=recording)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/invoke", json={"prompt": "hi", "stream": True})
        metrics = (await client.get("/metrics")).text
    frames = [f for f in response.text.split("\n\n") if f.startswith("event:")]
    counted = {
        name: float(value)
        for name, value in re.findall(r"^agentcast_stream_(\w+)_total (\S+)$", metrics, re.M)
    }
    assert counted == {"writes": len(chunks), "events": len(frames), "direct": 0}  # /metrics
    assert frames[-1].startswith("event: agent_end")
    ids = [int(f.rsplit("\nid: ", 1)[1]) for f in frames]
    assert ids == list(range(len(frames)))
    per_chunk = [chunk.count(b"\nid: ") for chunk in chunks]
    assert sum(per_chunk) == len(frames)
    assert max(per_chunk) > 1, per_chunk


async def test_a_heartbeat_reader_arms_one_timer_per_idle_period_not_one_per_token():
    import asyncio

    loop = asyncio.get_running_loop()
    armed = []
    call_at = loop.call_at

    def counting(when, callback, *args, **kwargs):  # type: ignore[no-untyped-def]
        armed.append(when)
        return call_at(when, callback, *args, **kwargs)

    loop.call_at = counting  # type: ignore[method-assign]
    try:
        log = EventLog()
        reader = LogReader(log, heartbeat=30.0)

        async def write() -> None:
            for seq in range(500):
                log.append(token(seq))
                await asyncio.sleep(0)  # one token per loop iteration: the reader waits each time
            log.close()

        writer = asyncio.create_task(write())
        seen = [event async for event in reader]
        await writer
    finally:
        del loop.call_at
    assert [e.seq for e in seen] == list(range(500))
    assert len(armed) <= 2, f"{len(armed)} timers for 500 tokens"


async def test_a_listener_is_told_each_append_until_it_declines_and_of_the_close():
    class Listener:
        def __init__(self, keep: int) -> None:
            self.seen: list[int] = []
            self.keep = keep
            self.closed = 0

        def on_append(self, event) -> bool:  # type: ignore[no-untyped-def]
            self.seen.append(event.seq)
            return len(self.seen) < self.keep

        def on_close(self) -> None:
            self.closed += 1

    log = EventLog()
    short, long = Listener(keep=2), Listener(keep=100)
    log.listen(short)
    log.listen(long)
    for seq in range(4):
        log.append(token(seq))
    assert short.seen == [0, 1] and long.seen == [0, 1, 2, 3]  # the first declined at 2
    log.unlisten(long)
    log.append(token(4))
    assert long.seen == [0, 1, 2, 3]
    log.listen(long)
    log.close()
    assert (short.closed, long.closed) == (0, 1)
    late = Listener(keep=100)
    log.listen(late)  # a closed log says so at once, and keeps nobody
    assert late.closed == 1 and late.seen == []
