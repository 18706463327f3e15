"""The server bench's `--trace-memory` attribution, in process (no server, no timing)."""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path

import pytest
import starlette

import agentcast
from agentcast.events import LLMToken
from agentcast.runtime._log import EventLog

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import _memory  # noqa: E402

AGENTCAST = str(Path(agentcast.__file__).with_name("runtime") / "_log.py")
STARLETTE = str(Path(starlette.__file__).with_name("routing.py"))


def test_the_innermost_owned_frame_decides_the_owner():
    trace = _memory.MemoryTrace()

    def owner(*frames: str) -> tuple[str, str]:  # innermost first, as tracemalloc stores them
        return trace.owner(tracemalloc.Traceback(tuple((f, 7) for f in frames)))

    assert owner("/usr/lib/python3/asyncio/locks.py", AGENTCAST, STARLETTE) == (
        "agentcast",
        "agentcast/runtime/_log.py:7",
    )
    assert owner(STARLETTE, AGENTCAST)[0] == "framework"
    assert owner("/usr/lib/python3/asyncio/tasks.py") == ("other", "tasks.py:7")
    assert owner(tracemalloc.__file__, AGENTCAST)[0] == "bench"  # its own snapshots: left out


@pytest.mark.skipif(tracemalloc.is_tracing(), reason="tracemalloc is already in use")
def test_the_event_log_is_split_out_of_whoever_allocated_its_events():
    trace = _memory.MemoryTrace()
    trace.trace()
    try:
        trace.start()
        log = EventLog()
        for seq in range(50):
            log.append(LLMToken(run_id="r", seq=seq, call_id="c", token=f"token {seq:>40}"))
        kept = [bytearray(1000) for _ in range(10)]  # allocated here: nobody's, so `other`
        result = trace.middle(streams=2)
    finally:
        tracemalloc.stop()
    assert len(kept) == 10 and log.next_seq == 50
    assert (result["logs"], result["events"], result["tokens"]) == (1, 50, 50)
    event = LLMToken(run_id="r", seq=1, call_id="c", token="t" * 46)
    assert result["bytes_per_token_event"] >= sys.getsizeof(event) + sys.getsizeof(event.token)
    per_stream = result["bytes_per_stream"]
    assert per_stream["log"] * 2 >= 50 * result["bytes_per_token_event"]
    # The events were made here (`other`): taking the log out leaves about the bytearrays.
    assert 10 * 1000 <= per_stream["other"] * 2 < 10 * 1000 + 4096
