"""`agentcast.testing`: the tools a source or store author tests their own code with."""

from __future__ import annotations

import subprocess
import sys
import threading

import msgspec
import pytest
from langchain_core.messages import AIMessageChunk

from agentcast.events import AgentEnd, AgentStart, LLMToken
from agentcast.sources import RunRequest, RunSink
from agentcast.sources.runnable import RunnableSource
from agentcast.testing import InvariantViolation, RecordingSink, ScriptedChatModel, check_invariants

pytestmark = pytest.mark.anyio


def test_recording_sink_has_every_run_sink_member():
    members = {n for n in vars(RunSink) if not n.startswith("_")}
    assert members == {
        "run_id",
        "emit",
        "emit_token",
        "emit_threadsafe",
        "message",
        "set_output",
        "interrupt",
        "track_text",
        "wait_for_events",
    }
    assert all(hasattr(RecordingSink(), name) for name in members)


async def test_recording_sink_records_what_a_source_pushes():
    model = ScriptedChatModel(turns=[[AIMessageChunk(content="hel"), AIMessageChunk(content="lo")]])
    sink = RecordingSink("r1", session_id="s1")
    async for _ in RunnableSource(model).stream(RunRequest(input="hi"), sink):
        pass
    tokens = [e.token for e in sink.events if isinstance(e, LLMToken)]
    assert "".join(tokens) == "hello"
    assert [e.seq for e in sink.events] == list(range(len(sink.events)))
    assert {(e.run_id, e.session_id) for e in sink.events} == {("r1", "s1")}
    assert sink.messages == [{"role": "assistant", "content": "hello"}]
    assert sink.types[-1] == "agent_step"
    assert sink.output == "hello"
    # Framed by the runtime's first and last events, the source's events keep the invariants.
    framed = RecordingSink("r1")
    framed.emit(AgentStart())
    for event in sink.events:
        framed.emit(event)
    framed.emit(AgentEnd(outcome="success"))
    check_invariants(framed.events)


async def test_recording_sink_keeps_the_order_of_a_threads_emits():
    sink = RecordingSink()
    sink.bind()
    done = threading.Event()

    def worker():
        for i in range(50):
            sink.emit_threadsafe(LLMToken(call_id="c", token=str(i)))
        done.set()

    thread = threading.Thread(target=worker)
    thread.start()
    while len(sink.events) < 50:
        await sink.wait_for_events(())
    thread.join()
    assert [e.token for e in sink.events] == [str(i) for i in range(50)]


def test_check_invariants_names_the_broken_invariant():
    sink = RecordingSink()
    sink.emit(AgentStart())
    sink.emit(LLMToken(call_id="c", token=""))
    sink.emit(AgentEnd(outcome="success"))
    with pytest.raises(InvariantViolation, match="empty or non-str token"):
        check_invariants(sink.events)
    gap = [sink.events[0], msgspec.structs.replace(sink.events[2], seq=5)]
    with pytest.raises(InvariantViolation, match="gap in seq"):
        check_invariants(gap)
    check_invariants(gap, contiguous=False)


def test_check_invariants_runs_under_python_O():
    code = (
        "from agentcast.testing import check_invariants, InvariantViolation\n"
        "try:\n    check_invariants([])\nexcept InvariantViolation as e:\n    print('raised', e)\n"
    )
    result = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "raised no events", result.stderr


def test_importing_agentcast_testing_does_not_import_pytest():
    code = "import sys, agentcast.testing; print('pytest' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
