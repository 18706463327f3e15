"""The run's open state has one owner: partial text is read from the call, closed one way."""

from __future__ import annotations

import msgspec
import pytest

from agentcast.events import LLMEnd, LLMStart
from agentcast.runtime import Run
from agentcast.sessions import MemoryStore
from agentcast.sources._base import RunRequest, RunSink, cut_llm_end

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
