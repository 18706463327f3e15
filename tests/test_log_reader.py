"""One log reader: every consumer of a run's events follows the log with the same cursor."""

from __future__ import annotations

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
