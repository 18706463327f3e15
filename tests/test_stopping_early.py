"""A consumer that stops early, and a store that fails: what the run still guarantees.

- leaving `async for` (break, raise; with or without `aclosing`; `astream` or `stream_agent`)
  and returning from `asyncio.run` is silent and saves a valid interrupted turn (subprocesses:
  the guarantee is about what Python does at `asyncio.run`'s exit);
- a tool that outlives the stop never adds a second result for its call;
- a failed save makes the outcome say the turn was not kept.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest
from langchain_core.messages import AIMessageChunk
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.tools import tool

from agentcast import Agent
from agentcast.errors import StoreUnavailable
from agentcast.sessions import MemoryStore
from agentcast.sessions.sqlite import SQLiteStore
from agentcast.testing import ScriptedChatModel, check_invariants


def without_metadata(message):
    return {k: v for k, v in message.items() if k != "metadata"}


pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]

# Stops a run in each of two places, deterministically, each in an `asyncio.run` of its own:
# inside a tool that emits a `custom` event and then never finishes, and mid-answer, after the
# first token, with the model blocked before the next chunk. Then reads both turns back.
SCRIPT = textwrap.dedent(
    """
    import asyncio, contextlib, json, sys

    from langchain_core.messages import AIMessageChunk
    from langchain_core.messages.tool import tool_call_chunk
    from langchain_core.tools import tool

    import agentcast
    from agentcast import Agent, stream_agent
    from agentcast.testing import ScriptedChatModel

    how, api, closing, db = sys.argv[1:]


    @tool
    async def hang(q: str) -> str:
        \"\"\"Emits a custom event, then never finishes.\"\"\"
        agentcast.emit("hanging", {"q": q})
        await asyncio.Event().wait()
        return "never"


    async def block_the_second_chunk(call, index):
        if index == 1:
            await asyncio.Event().wait()


    call = [
        AIMessageChunk(
            content="",
            tool_call_chunks=[tool_call_chunk(name="hang", args='{"q": "x"}', id="c1", index=0)],
        )
    ]
    answer = [AIMessageChunk(content="Hello"), AIMessageChunk(content=" world")]
    agents = {
        "tool": Agent(ScriptedChatModel(turns=[call, answer]), [hang], store=f"sqlite:///{db}"),
        "answer": Agent(
            ScriptedChatModel(turns=[answer], before_chunk=block_the_second_chunk),
            store=f"sqlite:///{db}",
        ),
    }
    stop_at = {"tool": "custom", "answer": "llm_token"}


    async def main(where):
        agent = agents[where]
        if api == "astream":
            events = agent.astream("go", session_id=where)
        else:
            events = stream_agent({"prompt": "go", "session_id": where}, agent)
        if closing == "aclosing":
            holder = contextlib.aclosing(events)
        else:
            holder = contextlib.nullcontext(events)
        async with holder as iterator:
            async for event in iterator:
                if event.type == stop_at[where]:
                    if how == "break":
                        break
                    raise RuntimeError("the consumer gave up")


    for where in agents:
        try:
            asyncio.run(main(where))
        except RuntimeError as exc:
            assert str(exc) == "the consumer gave up", exc
    store = agents["tool"].store
    print(json.dumps({where: asyncio.run(store.load(where)) for where in agents}))
    """
)


@pytest.mark.parametrize("closing", ["aclosing", "bare"])
@pytest.mark.parametrize("api", ["astream", "stream_agent"])
@pytest.mark.parametrize("how", ["break", "raise"])
def test_leaving_the_loop_then_asyncio_run_is_silent_and_saves_an_interrupted_turn(
    tmp_path, how, api, closing
):
    script = tmp_path / "consumer.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(script), how, api, closing, str(tmp_path / "s.db")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    history = json.loads(result.stdout)
    # The saved turn's display metadata (run id, timings) is checked in test_runtime.
    history = {key: [without_metadata(m) for m in turn] for key, turn in history.items()}
    assert history["tool"] == [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "c1", "name": "hang", "args": {"q": "x"}}],
        },
        {
            "role": "tool",
            "content": "the tool did not finish (cancelled)",
            "tool_call_id": "c1",
            "name": "hang",
            "status": "cancelled",
        },
    ]
    assert history["answer"] == [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "Hello", "status": "interrupted"},
    ]


# -- a tool that outlives the stop ------------------------------------------------------------


def _call(name: str, call_id: str = "c1") -> list[AIMessageChunk]:
    return [
        AIMessageChunk(
            content="",
            tool_call_chunks=[tool_call_chunk(name=name, args="{}", id=call_id, index=0)],
        )
    ]


@pytest.fixture
def runs(monkeypatch):
    """Every `Run` created during the test (to check the whole log of a run one left early)."""
    from agentcast.runtime import run as run_module

    created = []
    original = run_module.Run.__init__

    def record(self, *args, **kwargs):
        original(self, *args, **kwargs)
        created.append(self)

    monkeypatch.setattr(run_module.Run, "__init__", record)
    return created


class HeldStore(SQLiteStore):
    """A SQLite store whose saves wait until `proceed` is set, and say when they start/end."""

    def __init__(self, path) -> None:
        super().__init__(path)
        self.appending = asyncio.Event()
        self.proceed = anyio.Event()
        self.saved = anyio.Event()

    async def append(self, session_id, messages, *, actor_id=None):
        self.appending.set()
        await self.proceed.wait()
        await super().append(session_id, messages, actor_id=actor_id)
        self.saved.set()


class StubbornTool:
    """A tool that emits `custom`, and when cancelled still finishes, once released, with a
    real result (as a tool that catches the cancel to clean up and then returns does)."""

    def __init__(self) -> None:
        self.cancelled = asyncio.Event()
        self.release = anyio.Event()
        self.returned = anyio.Event()

        @tool
        async def stubborn() -> str:
            """Finishes even when cancelled."""
            import agentcast

            agentcast.emit("working", {})
            try:
                await anyio.sleep_forever()
            except BaseException:
                self.cancelled.set()
            with anyio.CancelScope(shield=True):
                await self.release.wait()
            self.returned.set()
            return "finished anyway"

        self.tool = stubborn


async def _finish_the_tool_during_the_save(store: HeldStore, stubborn: StubbornTool) -> None:
    """Let the tool return while the run is closing, holding the save until it returned."""
    waits = [asyncio.ensure_future(store.appending.wait())]
    waits.append(asyncio.ensure_future(stubborn.cancelled.wait()))
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    stubborn.release.set()
    await stubborn.returned.wait()
    await anyio.wait_all_tasks_blocked()
    store.proceed.set()
    await store.saved.wait()
    for wait in waits:
        wait.cancel()


def _assert_one_real_result(history, log) -> None:
    check_invariants(log)
    assert log[-1].outcome == "cancelled"
    results = [(m["tool_call_id"], m["content"]) for m in history if m["role"] == "tool"]
    assert results == [("c1", "finished anyway")]
    [tool_end] = [e for e in log if e.type == "tool_end"]
    assert (tool_end.status, tool_end.output) == ("ok", "finished anyway")


def _stubborn_agent(tmp_path) -> tuple[Agent, HeldStore, StubbornTool]:
    stubborn = StubbornTool()
    store = HeldStore(tmp_path / "s.db")
    model = ScriptedChatModel(turns=[_call("stubborn"), [AIMessageChunk(content="ok")]])
    return Agent(model, [stubborn.tool], store=store), store, stubborn


async def test_a_dropped_iterator_during_a_tool_saves_exactly_one_result_per_call(tmp_path, runs):
    """The issue's case: the consumer raises at the tool's `custom` event and leaves the
    iterator to the collector, and the tool's real result arrives while the run is closing."""
    agent, store, stubborn = _stubborn_agent(tmp_path)

    async def consume() -> None:
        async for event in agent.astream("go", session_id="s"):
            if event.type == "custom":
                raise RuntimeError("the consumer gave up")

    with pytest.raises(RuntimeError):
        await consume()
    gc.collect()
    await _finish_the_tool_during_the_save(store, stubborn)
    [run] = runs
    await run.wait()
    _assert_one_real_result(await store.load("s"), run.log.snapshot())


async def test_closing_the_iterator_waits_for_the_tools_before_saving(tmp_path, runs):
    agent, store, stubborn = _stubborn_agent(tmp_path)
    events = agent.astream("go", session_id="s")
    async for event in events:
        if event.type == "custom":
            break
    closing = asyncio.ensure_future(events.aclose())
    await _finish_the_tool_during_the_save(store, stubborn)
    await closing
    [run] = runs
    _assert_one_real_result(await store.load("s"), run.log.snapshot())


# -- a store that fails -----------------------------------------------------------------------


class DownStore(MemoryStore):
    """Loads fine, cannot save: the store went down during the run."""

    async def append(self, session_id, messages, *, actor_id=None):
        raise StoreUnavailable("the session store did not answer")


async def test_a_failed_save_ends_the_run_with_outcome_error():
    agent = Agent(ScriptedChatModel(turns=[[AIMessageChunk(content="Hi")]]), store=DownStore())
    events = [e async for e in agent.astream("go", session_id="s")]
    check_invariants(events)
    error = next(e for e in events if e.type == "error")
    assert (error.code, error.error) == ("store_unavailable", "the session store did not answer")
    end = events[-1]
    assert end.outcome == "error"
    assert events.index(error) < len(events) - 1
    result = await agent.ainvoke("go", session_id="s")
    assert (result.outcome, result.error_code) == ("error", "store_unavailable")
    assert result.output == "Hi"


async def test_a_failed_save_of_a_cancelled_run_is_an_error_too():
    gate = anyio.Event()

    async def block(call: int, index: int) -> None:
        if index == 1:
            await gate.wait()

    agent = Agent(
        ScriptedChatModel(
            turns=[[AIMessageChunk(content="Hel"), AIMessageChunk(content="lo")]],
            before_chunk=block,
        ),
        store=DownStore(),
    )
    run = agent.start("go", session_id="s")
    async with anyio.create_task_group() as group:
        group.start_soon(run.execute)
        async for event in run.events():
            if event.type == "llm_token":
                run.cancel()
    result = await run.wait()
    check_invariants(run.log.snapshot())
    assert (result.outcome, result.error_code) == ("error", "store_unavailable")
    assert run.log.snapshot()[-1].outcome == "error"


@pytest.mark.parametrize(
    "url", ["postgresql://postgres@127.0.0.1:1/test", "redis://127.0.0.1:1/0"], ids=["pg", "redis"]
)
async def test_a_real_store_that_is_down_at_save_time_gives_outcome_error(url, monkeypatch):
    """The store answers the load (patched to an empty history) but cannot be reached to save."""
    from agentcast.sessions import open_store

    store = open_store(url)

    async def empty(session_id):
        return []

    monkeypatch.setattr(store, "load", empty)
    agent = Agent(ScriptedChatModel(turns=[[AIMessageChunk(content="Hi")]]), store=store)
    events = [e async for e in agent.astream("go", session_id="s")]
    check_invariants(events)
    [error] = [e for e in events if e.type == "error"]
    assert error.code in ("store_unavailable", "session_error")
    assert events[-1].outcome == "error"
