"""The run's open state has one owner: partial text is read from the call, closed one way."""

from __future__ import annotations

import msgspec
import pytest

from agentcast.events import LLMEnd, LLMStart, LLMToken, to_json
from agentcast.runtime import Run
from agentcast.sessions import MemoryStore
from agentcast.sources._base import RunRequest, RunSink, cut_llm_end
from agentcast.testing import check_invariants

pytestmark = pytest.mark.anyio


class CutShort:
    """Opens an answer call whose text lives in the source only, then fails."""

    def __init__(self) -> None:
        self.text = "kept so far"

    async def stream(self, request: RunRequest, sink: RunSink):
        sink.track_text("c1", lambda: self.text)
        sink.emit(LLMStart(call_id="c1"))
        yield
        raise RuntimeError("provider went away")


async def test_a_cut_short_answer_keeps_the_text_its_call_holds():
    store = MemoryStore()
    run = Run(CutShort(), RunRequest(input="hi", session_id="s1"), store=store)
    result = await run.execute()
    assert result.outcome == "error"
    assert result.output == "kept so far"
    history = await store.load(run.session_key)
    assert history[-1]["content"] == "kept so far"
    assert history[-1]["status"] == "interrupted"


async def test_the_runtime_closes_an_open_call_with_the_sources_closer():
    run = Run(CutShort(), RunRequest(input="hi"))
    await run.execute()
    (closer,) = [e for e in run.log.snapshot() if isinstance(e, LLMEnd)]
    unstamped = msgspec.structs.replace(closer, run_id="", seq=-1, ts=0, session_id=None)
    assert unstamped == cut_llm_end("c1", 0, "error")


class TokensBothWays:
    """Emits the same tokens through `emit(LLMToken(...))` and through `emit_token`."""

    async def stream(self, request: RunRequest, sink: RunSink):
        sink.emit(LLMStart(call_id="c1"))
        sink.emit(LLMToken(call_id="c1", token="a", kind="text", depth=0))
        sink.emit_token("c1", "a", "text", 0)
        sink.emit(LLMToken(call_id="c1", token="r", kind="reasoning", depth=2))
        sink.emit_token("c1", "r", "reasoning", 2)
        sink.emit(cut_llm_end("c1", 0, "error"))
        yield


async def test_a_token_built_stamped_is_the_event_emit_would_log():
    run = Run(TokensBothWays(), RunRequest(input="hi", run_id="r1", session_id="s1"))
    result = await run.execute()
    tokens = [e for e in run.log.snapshot() if isinstance(e, LLMToken)]
    assert [e.seq for e in tokens] == [3, 4, 5, 6]  # after agent_start, agent_step, llm_start
    for emitted, built in (tokens[0:2], tokens[2:4]):
        assert (built.run_id, built.session_id) == ("r1", "s1")
        assert msgspec.structs.replace(built, seq=emitted.seq, ts=emitted.ts) == emitted
        # The wire differs only by seq and ts.
        again = msgspec.structs.replace(built, seq=emitted.seq, ts=emitted.ts)
        assert to_json(again) == to_json(emitted)
    assert result.metrics["tokens"] == 4  # counted both ways
    check_invariants(run.log.snapshot())
