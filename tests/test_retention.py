"""Finished runs are retained for resume within a time, a count and a byte budget."""

from __future__ import annotations

import anyio
import pytest
from langchain_core.messages import AIMessageChunk

from agentcast import Agent, default_agent
from agentcast.models import OfflineChatModel
from agentcast.runtime import RunManager
from agentcast.server import create_app
from agentcast.sessions import MemoryStore
from agentcast.testing import ScriptedChatModel

pytestmark = pytest.mark.anyio


def offline_manager(**limits) -> RunManager:
    agent = Agent(OfflineChatModel(token_delay=0), store=MemoryStore())
    return RunManager(agent.start, **limits)


async def finish(manager: RunManager, prompt: str = "hello") -> str:
    managed = manager.start(prompt, session_id=None)
    await managed.run.wait()
    assert managed.task is not None
    await managed.task  # the manager has recorded the end
    return managed.run.run_id


async def test_retained_runs_are_capped_by_count_oldest_first():
    manager = offline_manager(max_retained_runs=3)
    ids = [await finish(manager) for _ in range(6)]
    kept = [run_id for run_id in ids if manager.get(run_id) is not None]
    assert kept == ids[-3:]


async def test_retained_runs_are_capped_by_bytes_oldest_first():
    # The case: big prompts. Each run's events hold its 50 KB prompt at least once.
    manager = offline_manager(max_retained_bytes=250_000)
    ids = [await finish(manager, "x" * 50_000 + " hello") for _ in range(8)]
    kept = [run_id for run_id in ids if manager.get(run_id) is not None]
    assert 1 <= len(kept) < len(ids)
    assert kept == ids[-len(kept) :]
    assert sum(manager.get(run_id).size for run_id in kept) <= 250_000  # type: ignore[union-attr]
    assert all(manager.get(run_id).size >= 50_000 for run_id in kept)  # type: ignore[union-attr]


async def test_a_running_run_and_a_run_being_read_are_never_evicted():
    release = anyio.Event()

    async def gate(call: int, index: int) -> None:
        if index == 1:
            await release.wait()

    model = ScriptedChatModel(turns=[[AIMessageChunk(content="a"), AIMessageChunk(content="b")]])
    gated = ScriptedChatModel(
        turns=[[AIMessageChunk(content="a"), AIMessageChunk(content="b")]], before_chunk=gate
    )
    fast, slow = Agent(model, store=MemoryStore()), Agent(gated, store=MemoryStore())

    def start(prompt, **options):
        return (slow if prompt == "slow" else fast).start(prompt, **options)

    manager = RunManager(start, max_retained_runs=1)
    running = manager.start("slow", session_id=None)
    read = manager.start("fast", session_id=None)
    await read.run.wait()
    manager.attach(read)  # a reader is still streaming it
    others = [await finish(manager, "fast") for _ in range(3)]
    assert manager.get(running.run.run_id) is running
    assert manager.get(read.run.run_id) is read
    manager.detach(read)
    await finish(manager, "fast")
    assert manager.get(read.run.run_id) is None  # evicted once its reader left
    assert all(manager.get(run_id) is None for run_id in others)
    release.set()
    await running.run.wait()


def test_the_server_config_sets_the_retention_caps():
    app = create_app(default_agent(), max_retained_runs=7, max_retained_bytes=1234)
    manager = app.state.agentcast.manager
    assert (manager.max_retained_runs, manager.max_retained_bytes) == (7, 1234)


async def test_idle_and_wait_made_on_first_use_still_tell_the_runs_state():
    # Neither asyncio.Event exists until something asks for it (memory per stream, issue 10).
    manager = offline_manager(disconnect="continue")
    managed = manager.start("hello", session_id=None)
    manager.attach(managed)
    manager.detach(managed)  # the last reader left before anyone looked at `idle`
    assert managed.idle.is_set()
    manager.attach(managed)
    assert not managed.idle.is_set()
    result = await managed.run.wait()
    assert await managed.run.wait() is result  # once ended, at once
    manager.detach(managed)
    await managed.idle.wait()
