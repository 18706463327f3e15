"""The AG-UI encoder: golden fixtures, and any valid agentcast stream encodes to valid AG-UI.

The rules are checked twice: by a Python checker written from @ag-ui/core 1.0's schemas and
@ag-ui/client 1.0's `verifyEvents` (`tests/_agui_rules.py`), and by the real client's own
pipeline under Node (`tests/js/agui/verify.mjs`: SSE parser, zod schemas, `verifyEvents`, no
warning allowed) over a few hundred generated runs, including cancelled, failed, interrupted
and cut-short ones.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentcast.encoders.agui import AGUIEncoder, frame
from agentcast.events import (
    AgentEnd,
    AgentStart,
    BaseEvent,
    Custom,
    Error,
    LLMEnd,
    LLMStart,
    LLMToken,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolEnd,
    ToolStart,
)
from agentcast.runtime import Run
from agentcast.sources import RunRequest
from agentcast.testing import check_invariants
from tests._agui_rules import RuleViolation, check_stream

JS = Path(__file__).parent / "js" / "agui"


def stamped(*events: BaseEvent) -> list[BaseEvent]:
    """Give hand-written events the envelope a run would: seq from 0, ts = 1000 + seq."""
    import msgspec

    return [
        msgspec.structs.replace(e, run_id="run-1", seq=i, ts=1000 + i) for i, e in enumerate(events)
    ]


def encode(events: list[BaseEvent], *, timestamps: bool = False) -> list[dict[str, Any]]:
    chunks = list(AGUIEncoder("thread-1", "run-1").encode_all(events))
    check_stream(chunks, thread_id="thread-1", run_id="run-1")
    if not timestamps:
        for chunk in chunks:
            chunk.pop("timestamp", None)
    return chunks


def E(kind: str, **fields: Any) -> dict[str, Any]:
    """One expected AG-UI event."""
    return {"type": kind, **fields}


START = E("RUN_STARTED", threadId="thread-1", runId="run-1", protocolVersion="1.0")
IDS = {"threadId": "thread-1", "runId": "run-1"}


def finished(result: Any = None, **extra: Any) -> dict[str, Any]:
    chunk = E("RUN_FINISHED", **IDS)
    if result is not None:
        chunk["result"] = result
    return chunk | {"outcome": {"type": "success"}} | extra


# -- golden fixtures --------------------------------------------------------------------------


def test_plain_text_with_usage_and_timestamps_from_the_events():
    events = stamped(
        AgentStart(input="hi"),
        LLMStart(call_id="c1", model="m"),
        LLMToken(call_id="c1", token="Hel"),
        LLMToken(call_id="c1", token="lo"),
        LLMEnd(call_id="c1", usage={"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}),
        AgentEnd(outcome="success", output="Hello", metrics={"tokens": 2, "ttft_ms": None}),
    )
    assert encode(events, timestamps=True) == [
        START | {"timestamp": 1000},
        E("TEXT_MESSAGE_START", messageId="c1", role="assistant", timestamp=1002),
        E("TEXT_MESSAGE_CONTENT", messageId="c1", delta="Hel", timestamp=1002),
        E("TEXT_MESSAGE_CONTENT", messageId="c1", delta="lo", timestamp=1003),
        E("TEXT_MESSAGE_END", messageId="c1", timestamp=1004),
        finished(
            "Hello",
            usage=[{"model": "m", "inputTokens": 3, "outputTokens": 2, "totalTokens": 5}],
            metadata={"metrics": {"tokens": 2}},  # None is left out, never sent as null
            timestamp=1005,
        ),
    ]


def test_parallel_tool_calls_stay_open_together_under_one_message():
    events = stamped(
        AgentStart(input="2+3 and 4*5"),
        LLMStart(call_id="c1"),
        ToolCallStart(call_id="c1", tool_call_id="t1", name="add"),
        ToolCallDelta(tool_call_id="t1", delta='{"a":'),
        ToolCallStart(call_id="c1", tool_call_id="t2", name="multiply", index=1),
        ToolCallDelta(tool_call_id="t2", delta='{"a":4,"b":5}'),
        ToolCallDelta(tool_call_id="t1", delta='2,"b":3}'),
        ToolCallEnd(tool_call_id="t1", name="add", args={"a": 2, "b": 3}),
        ToolCallEnd(tool_call_id="t2", name="multiply", args={"a": 4, "b": 5}),
        LLMEnd(call_id="c1", role="tool_use"),
        ToolStart(tool_call_id="t1", name="add", input={"a": 2, "b": 3}, call_id="c1"),
        ToolStart(tool_call_id="t2", name="multiply", input={"a": 4, "b": 5}, call_id="c1"),
        ToolEnd(tool_call_id="t2", name="multiply", output=20),
        ToolEnd(tool_call_id="t1", name="add", output=5),
        LLMStart(call_id="c2"),
        LLMToken(call_id="c2", token="5 and 20."),
        LLMEnd(call_id="c2"),
        AgentEnd(outcome="success", output="5 and 20."),
    )
    assert encode(events) == [
        START,
        E("TEXT_MESSAGE_START", messageId="c1", role="assistant"),
        E("TOOL_CALL_START", toolCallId="t1", toolCallName="add", parentMessageId="c1"),
        E("TOOL_CALL_ARGS", toolCallId="t1", delta='{"a":'),
        E("TOOL_CALL_START", toolCallId="t2", toolCallName="multiply", parentMessageId="c1"),
        E("TOOL_CALL_ARGS", toolCallId="t2", delta='{"a":4,"b":5}'),
        E("TOOL_CALL_ARGS", toolCallId="t1", delta='2,"b":3}'),
        E("TOOL_CALL_END", toolCallId="t1"),
        E("TOOL_CALL_END", toolCallId="t2"),
        E("TEXT_MESSAGE_END", messageId="c1"),
        E("TOOL_CALL_RESULT", messageId="t2-result", toolCallId="t2", content="20", role="tool"),
        E("TOOL_CALL_RESULT", messageId="t1-result", toolCallId="t1", content="5", role="tool"),
        E("TEXT_MESSAGE_START", messageId="c2", role="assistant"),
        E("TEXT_MESSAGE_CONTENT", messageId="c2", delta="5 and 20."),
        E("TEXT_MESSAGE_END", messageId="c2"),
        finished("5 and 20."),
    ]


def test_reasoning_is_its_own_message_closed_when_the_text_begins():
    events = stamped(
        AgentStart(input="hi"),
        LLMStart(call_id="c1"),
        LLMToken(call_id="c1", token="Think", kind="reasoning"),
        LLMToken(call_id="c1", token="ing.", kind="reasoning"),
        LLMToken(call_id="c1", token="Answer."),
        LLMToken(call_id="c1", token="More thought.", kind="reasoning"),
        LLMEnd(call_id="c1"),
        AgentEnd(outcome="success", output="Answer."),
    )
    assert encode(events) == [
        START,
        E("REASONING_START", messageId="c1-reasoning"),
        E("REASONING_MESSAGE_START", messageId="c1-reasoning", role="reasoning"),
        E("REASONING_MESSAGE_CONTENT", messageId="c1-reasoning", delta="Think"),
        E("REASONING_MESSAGE_CONTENT", messageId="c1-reasoning", delta="ing."),
        E("REASONING_MESSAGE_END", messageId="c1-reasoning"),
        E("REASONING_END", messageId="c1-reasoning"),
        E("TEXT_MESSAGE_START", messageId="c1", role="assistant"),
        E("TEXT_MESSAGE_CONTENT", messageId="c1", delta="Answer."),
        E("REASONING_START", messageId="c1-reasoning-1"),
        E("REASONING_MESSAGE_START", messageId="c1-reasoning-1", role="reasoning"),
        E("REASONING_MESSAGE_CONTENT", messageId="c1-reasoning-1", delta="More thought."),
        E("REASONING_MESSAGE_END", messageId="c1-reasoning-1"),
        E("REASONING_END", messageId="c1-reasoning-1"),
        E("TEXT_MESSAGE_END", messageId="c1"),
        finished("Answer."),
    ]


def test_an_llm_inside_a_tool_is_a_subagent_never_answer_text():
    sub = "t1-subagent"
    events = stamped(
        AgentStart(input="cat?"),
        LLMStart(call_id="c1"),
        ToolCallStart(call_id="c1", tool_call_id="t1", name="get_items"),
        ToolCallDelta(tool_call_id="t1", delta="{}"),
        ToolCallEnd(tool_call_id="t1", name="get_items", args={}),
        LLMEnd(call_id="c1", role="tool_use"),
        ToolStart(tool_call_id="t1", name="get_items", input={}, call_id="c1"),
        Custom(name="lookup", data={"place": "bed"}, tool_call_id="t1"),
        LLMStart(call_id="n1", parent_id="t1", depth=1),
        LLMToken(call_id="n1", token="socks", depth=1),
        LLMEnd(call_id="n1", role="internal"),
        ToolEnd(tool_call_id="t1", name="get_items", output="socks"),
        AgentEnd(outcome="success", output="socks"),
    )
    assert encode(events) == [
        START,
        E("TEXT_MESSAGE_START", messageId="c1", role="assistant"),
        E("TOOL_CALL_START", toolCallId="t1", toolCallName="get_items", parentMessageId="c1"),
        E("TOOL_CALL_ARGS", toolCallId="t1", delta="{}"),
        E("TOOL_CALL_END", toolCallId="t1"),
        E("TEXT_MESSAGE_END", messageId="c1"),
        E("CUSTOM", name="lookup", value={"place": "bed"}),
        E("SUBAGENT_STARTED", subagentRunId=sub, name="get_items", parentToolCallId="t1"),
        E("TEXT_MESSAGE_START", messageId="n1", role="assistant", subagentRunId=sub),
        E("TEXT_MESSAGE_CONTENT", messageId="n1", delta="socks", subagentRunId=sub),
        E("TEXT_MESSAGE_END", messageId="n1", subagentRunId=sub),
        E("SUBAGENT_FINISHED", subagentRunId=sub),
        E("TOOL_CALL_RESULT", messageId="t1-result", toolCallId="t1", content="socks", role="tool"),
        finished("socks"),
    ]


def test_a_cancelled_run_finishes_with_the_cancelled_outcome():
    events = stamped(
        AgentStart(input="hi"),
        LLMStart(call_id="c1"),
        LLMToken(call_id="c1", token="Hel"),
        LLMEnd(call_id="c1", finish_reason="cancelled"),  # the runtime's closer
        AgentEnd(outcome="cancelled", output="Hel"),
    )
    assert encode(events)[-2:] == [
        E("TEXT_MESSAGE_END", messageId="c1"),
        {"type": "RUN_FINISHED", **IDS, "outcome": {"type": "cancelled"}},
    ]


def test_an_error_is_run_error_with_its_message_and_code_and_a_retry_is_told():
    events = stamped(
        AgentStart(input="hi"),
        Error(error="rate limited (retrying, attempt 2)", code="retrying", retryable=True),
        LLMStart(call_id="c1"),
        ToolCallStart(call_id="c1", tool_call_id="t1", name="add"),
        ToolCallDelta(tool_call_id="t1", delta='{"a"'),
        ToolCallEnd(tool_call_id="t1", name="add", error="not completed (error)", raw=""),
        LLMEnd(call_id="c1", finish_reason="error"),
        Error(error="the provider failed", error_type="ProviderError", code="provider_error"),
        AgentEnd(outcome="error"),
    )
    assert encode(events) == [
        START,
        E(
            "CUSTOM",
            name="error",
            value={
                "message": "rate limited (retrying, attempt 2)",
                "code": "retrying",
                "retryable": True,
            },
        ),
        E("TEXT_MESSAGE_START", messageId="c1", role="assistant"),
        E("TOOL_CALL_START", toolCallId="t1", toolCallName="add", parentMessageId="c1"),
        E("TOOL_CALL_ARGS", toolCallId="t1", delta='{"a"'),
        E("TOOL_CALL_END", toolCallId="t1"),
        E("TEXT_MESSAGE_END", messageId="c1"),
        E("RUN_ERROR", message="the provider failed", code="provider_error"),
    ]


def test_an_interrupt_is_the_interrupt_outcome_with_its_payload():
    events = stamped(
        AgentStart(input="Book me a trip"),
        AgentEnd(outcome="interrupted", output=[{"question": "Which city?"}, "Really?"]),
    )
    assert encode(events)[-1] == {
        "type": "RUN_FINISHED",
        **IDS,
        "outcome": E(
            "interrupt",
            interrupts=[
                {
                    "id": "run-1-interrupt-0",
                    "reason": "input",
                    "metadata": {"value": {"question": "Which city?"}},
                },
                {
                    "id": "run-1-interrupt-1",
                    "reason": "input",
                    "message": "Really?",
                    "metadata": {"value": "Really?"},
                },
            ],
        ),
    }


def test_a_failed_tool_with_a_nested_llm_ends_its_subagent_with_an_error():
    events = stamped(
        AgentStart(input="go"),
        LLMStart(call_id="c1"),
        ToolCallStart(call_id="c1", tool_call_id="t1", name="lookup"),
        ToolCallEnd(tool_call_id="t1", name="lookup", args={}),
        LLMEnd(call_id="c1"),
        ToolStart(tool_call_id="t1", name="lookup", call_id="c1"),
        LLMStart(call_id="n1", parent_id="t1", depth=1),
        LLMToken(call_id="n1", token="partial", depth=1),
        # The runtime's closers on cancel: tools before LLM calls, so the nested call is
        # still open when its tool ends.
        ToolEnd(tool_call_id="t1", name="lookup", status="cancelled", error="did not finish"),
        LLMEnd(call_id="n1", finish_reason="cancelled"),
        AgentEnd(outcome="cancelled"),
    )
    sub = "t1-subagent"
    assert encode(events)[-4:] == [
        E("TEXT_MESSAGE_END", messageId="n1", subagentRunId=sub),
        E("SUBAGENT_ERROR", subagentRunId=sub, message="did not finish", code="cancelled"),
        E(
            "TOOL_CALL_RESULT",
            messageId="t1-result",
            toolCallId="t1",
            content="did not finish",
            role="tool",
            metadata={"status": "cancelled"},
        ),
        {"type": "RUN_FINISHED", **IDS, "outcome": {"type": "cancelled"}},
    ]


def test_a_stream_cut_short_is_closed_then_ended_with_run_error():
    encoder = AGUIEncoder("thread-1", "run-1")
    chunks = []
    for event in stamped(
        AgentStart(input="hi"),
        LLMStart(call_id="c1"),
        LLMToken(call_id="c1", token="Hel"),
        ToolCallStart(call_id="c1", tool_call_id="t1", name="add"),
    ):
        chunks += encoder.encode(event)
    chunks += encoder.close()
    check_stream(chunks)
    assert [c["type"] for c in chunks[-3:]] == ["TOOL_CALL_END", "TEXT_MESSAGE_END", "RUN_ERROR"]
    assert chunks[-1]["code"] == "stream_ended"
    assert encoder.close() == [] and encoder.encode(LLMToken(call_id="c1", token="x")) == []


def test_a_stream_read_from_the_middle_still_opens_with_run_started():
    chunks = list(AGUIEncoder("t", "r").encode_all([LLMStart(call_id="c1")]))
    assert [c["type"] for c in chunks] == ["RUN_STARTED", "RUN_ERROR"]


def test_a_tool_call_that_was_never_streamed_is_announced_whole_before_its_result():
    events = stamped(
        AgentStart(input="go"),
        ToolStart(tool_call_id="t9", name="search", input={"q": "cats"}),
        ToolEnd(tool_call_id="t9", name="search", status="error", error="offline"),
        AgentEnd(outcome="success"),
    )
    assert encode(events)[1:-1] == [
        E("TOOL_CALL_START", toolCallId="t9", toolCallName="search"),
        E("TOOL_CALL_ARGS", toolCallId="t9", delta='{"q":"cats"}'),
        E("TOOL_CALL_END", toolCallId="t9"),
        E(
            "TOOL_CALL_RESULT",
            messageId="t9-result",
            toolCallId="t9",
            content="offline",
            role="tool",
            metadata={"status": "error"},
        ),
    ]


def test_framing_is_one_data_line_with_lf_only():
    chunk = E("TEXT_MESSAGE_CONTENT", messageId="m", delta="a\nb\r\n\ndata: x\u2028")
    framed = frame(chunk)
    assert framed.startswith(b"data: ") and framed.endswith(b"\n\n")
    assert framed.count(b"\n") == 2 and b"\r" not in framed
    assert json.loads(framed[6:-2]) == chunk


def test_the_checker_can_fail():
    with pytest.raises(RuleViolation, match="still open"):
        check_stream([START, E("TEXT_MESSAGE_START", messageId="m"), finished()])
    with pytest.raises(RuleViolation, match="unknown field"):
        check_stream([START | {"bogus": 1}, finished()])
    with pytest.raises(RuleViolation, match="null"):
        check_stream([START, finished() | {"result": None}])
    with pytest.raises(RuleViolation, match="tagged"):
        check_stream(
            [
                START,
                E("SUBAGENT_STARTED", subagentRunId="s", name="x"),
                E("TEXT_MESSAGE_START", messageId="m"),
                E("TEXT_MESSAGE_CONTENT", messageId="m", delta="x", subagentRunId="s"),
                finished(),
            ]
        )


# -- any valid agentcast stream ---------------------------------------------------------------


class _Program:
    """A source's whole run, drawn by hypothesis: events to push, then how it ends."""

    def __init__(self, events: list[BaseEvent], ending: str, cut: int) -> None:
        self.events, self.ending, self.cut = events, ending, cut

    def __repr__(self) -> str:
        return f"_Program({len(self.events)} events, {self.ending!r} at {self.cut})"


def _interleave(draw: Any, sequences: list[list[BaseEvent]]) -> list[BaseEvent]:
    sequences = [list(s) for s in sequences if s]
    merged: list[BaseEvent] = []
    while sequences:
        index = draw(st.integers(0, len(sequences) - 1))
        merged.append(sequences[index].pop(0))
        sequences = [s for s in sequences if s]
    return merged


_words = st.text(alphabet='ab {}":,\n', min_size=1, max_size=5)


@st.composite
def _llm_call(draw: Any, call_id: str, depth: int, parent: str | None, tools: int) -> list[Any]:
    """An LLM call: tokens, interleaved tool calls; returns events + the tool calls made."""
    events: list[BaseEvent] = [LLMStart(call_id=call_id, parent_id=parent, depth=depth, model="m")]
    pieces = draw(st.lists(st.tuples(st.sampled_from(["text", "reasoning"]), _words), max_size=4))
    events += [LLMToken(call_id=call_id, token=t, kind=k, depth=depth) for k, t in pieces]  # type: ignore[arg-type]
    made = []
    per_call = []
    for i in range(draw(st.integers(0, tools))):
        tool_call_id = f"{call_id}-t{i}"
        args = draw(st.dictionaries(st.sampled_from("xyz"), st.integers(0, 9), max_size=2))
        raw = json.dumps(args)
        cuts = sorted(draw(st.sets(st.integers(1, max(1, len(raw) - 1)), max_size=3)))
        parts = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=False) if raw[a:b]]
        per_call.append(
            [
                ToolCallStart(call_id=call_id, tool_call_id=tool_call_id, name=f"tool{i}", index=i),
                *(ToolCallDelta(tool_call_id=tool_call_id, delta=p) for p in parts),
            ]
        )
        made.append((tool_call_id, f"tool{i}", args))
    events += _interleave(draw, per_call)
    events += [ToolCallEnd(tool_call_id=t, name=n, args=a) for t, n, a in made]
    usage = draw(st.one_of(st.none(), st.just({"input_tokens": 2, "output_tokens": 3})))
    events.append(LLMEnd(call_id=call_id, usage=usage))
    return [events, made]


@st.composite
def _tool(
    draw: Any, call: tuple[str, str, dict[str, Any]], llm: str, depth: int
) -> list[BaseEvent]:
    """A tool execution; it may emit custom events and call LLMs (a subagent)."""
    tool_call_id, name, args = call
    events: list[BaseEvent] = [
        ToolStart(tool_call_id=tool_call_id, name=name, input=args, call_id=llm, depth=depth)
    ]
    if draw(st.booleans()):
        events.append(
            Custom(name="progress", data=draw(st.none() | st.integers()), tool_call_id=tool_call_id)
        )
    if depth < 2 and draw(st.booleans()):
        nested, made = draw(_llm_call(f"{tool_call_id}-n", depth + 1, tool_call_id, tools=1))
        events += nested
        for inner in made:
            events += draw(_tool(inner, f"{tool_call_id}-n", depth + 1))
    status = draw(st.sampled_from(["ok", "ok", "error"]))
    events.append(
        ToolEnd(
            tool_call_id=tool_call_id,
            name=name,
            status=status,
            output="done" if status == "ok" else None,
            error=None if status == "ok" else "failed",
        )  # type: ignore[arg-type]
    )
    return events


@st.composite
def programs(draw: Any) -> _Program:
    events: list[BaseEvent] = []
    if draw(st.booleans()):
        events.append(Error(error="busy (retrying)", code="retrying", retryable=True))
    for turn in range(draw(st.integers(1, 3))):
        llm, made = draw(_llm_call(f"c{turn}", 0, None, tools=3))
        events += llm
        events += _interleave(draw, [draw(_tool(call, f"c{turn}", 0)) for call in made])
        if draw(st.booleans()):  # a subgraph's LLM: nested, but inside no tool
            events += draw(_llm_call(f"g{turn}", 1, f"graph:{turn}", tools=0))[0]
    ending = draw(st.sampled_from(["success", "error", "cancel", "interrupt", "timeout"]))
    cut = len(events) if ending in ("success", "interrupt") else draw(st.integers(0, len(events)))
    return _Program(events, ending, cut)


class _ProgramSource:
    """Pushes a program's events into the run, then ends as the program says."""

    def __init__(self, program: _Program) -> None:
        self.program = program
        self.run: Run | None = None

    async def stream(self, request: RunRequest, sink: Any) -> Any:
        program = self.program
        for event in program.events[: program.cut]:
            sink.emit(event)
            yield
        if program.ending == "error":
            raise RuntimeError("the source failed")
        if program.ending == "cancel":
            assert self.run is not None
            self.run.cancel()
            await anyio.lowlevel.checkpoint()  # where the cancel is delivered
        if program.ending == "timeout":
            await anyio.sleep_forever()  # the run's deadline (0 s) stops it here
        if program.ending == "interrupt":
            sink.interrupt([{"question": "Which city?"}])


async def _run(program: _Program) -> list[BaseEvent]:
    source = _ProgramSource(program)
    timeout = 0.0 if program.ending == "timeout" else None
    request = RunRequest(input="go", run_id="run-1", session_id=None)
    run = Run(source, request, timeout=timeout)  # type: ignore[arg-type]
    source.run = run
    await run.execute()
    return run.log.snapshot()


def _encoded(program: _Program) -> tuple[list[BaseEvent], list[dict[str, Any]]]:
    events = asyncio.run(_run(program))
    check_invariants(events)
    return events, list(AGUIEncoder("thread-1", "run-1").encode_all(events))


def _check_meaning(events: list[BaseEvent], chunks: list[dict[str, Any]]) -> None:
    """The AG-UI stream says what the agentcast stream said: text, arguments, the ending."""
    check_stream(chunks, thread_id="thread-1", run_id="run-1")
    said: dict[str, str] = {}
    for chunk in chunks:
        if chunk["type"] == "TEXT_MESSAGE_CONTENT":
            said[chunk["messageId"]] = said.get(chunk["messageId"], "") + chunk["delta"]
    depth = {e.call_id: e.depth for e in events if isinstance(e, LLMStart)}
    for call_id in depth:
        text = "".join(
            e.token
            for e in events
            if isinstance(e, LLMToken) and e.call_id == call_id and e.kind == "text"
        )
        assert said.get(call_id, "") == text
    # A message of an LLM inside a tool is a subagent's, never the answer's.
    for chunk in chunks:
        if chunk["type"] == "TEXT_MESSAGE_START":
            assert ("subagentRunId" in chunk) == (depth[chunk["messageId"]] > 0)
    args: dict[str, str] = {}
    for chunk in chunks:
        if chunk["type"] == "TOOL_CALL_ARGS":
            args[chunk["toolCallId"]] = args.get(chunk["toolCallId"], "") + chunk["delta"]
    deltas: dict[str, str] = {}
    for event in events:
        if isinstance(event, ToolCallDelta):
            deltas[event.tool_call_id] = deltas.get(event.tool_call_id, "") + event.delta
    assert {k: v for k, v in args.items() if k in deltas} == deltas
    outcome = events[-1].outcome  # type: ignore[attr-defined]
    last = chunks[-1]
    expected = {
        "success": ("RUN_FINISHED", "success"),
        "cancelled": ("RUN_FINISHED", "cancelled"),
        "interrupted": ("RUN_FINISHED", "interrupt"),
        "error": ("RUN_ERROR", None),
        "timeout": ("RUN_ERROR", None),
    }[outcome]
    assert (last["type"], last.get("outcome", {}).get("type")) == expected


_PROPERTY = settings(
    derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


@given(program=programs())
@settings(_PROPERTY, max_examples=60)
def test_any_valid_run_encodes_to_a_stream_the_agui_rules_accept(program):
    events, chunks = _encoded(program)
    _check_meaning(events, chunks)


@pytest.mark.slow
def test_the_real_client_accepts_hundreds_of_generated_runs(tmp_path):
    if shutil.which("node") is None or not (JS / "node_modules").exists():
        pytest.fail("needs Node 20 and `npm ci` in tests/js/agui (scripts/install does it)")
    streams: list[str] = []

    @given(program=programs())
    @settings(_PROPERTY, max_examples=300)
    def collect(program):
        _, chunks = _encoded(program)
        streams.append(b"".join(map(frame, chunks)).decode())

    collect()
    path = tmp_path / "streams.json"
    path.write_text(json.dumps(streams))
    done = subprocess.run(
        ["node", "verify.mjs", str(path)], cwd=JS, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert len(results) == len(streams) >= 300
    failures = [(r, s[:2000]) for r, s in zip(results, streams, strict=True) if not r["ok"]]
    assert not failures, failures[0]
    kinds = {t for r in results for t in r["types"]}
    assert {"SUBAGENT_STARTED", "REASONING_START", "TOOL_CALL_RESULT", "RUN_ERROR"} <= kinds


def test_the_real_client_rejects_what_the_rules_reject(tmp_path):
    """The Node harness can fail: an unknown field warns, an open message at the end throws."""
    if shutil.which("node") is None or not (JS / "node_modules").exists():
        pytest.fail("needs Node 20 and `npm ci` in tests/js/agui (scripts/install does it)")
    bad = [
        [START | {"bogus": 1}, finished()],
        [START, E("TEXT_MESSAGE_START", messageId="m"), finished()],
    ]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([b"".join(map(frame, s)).decode() for s in bad]))
    done = subprocess.run(
        ["node", "verify.mjs", str(path)], cwd=JS, capture_output=True, text=True, timeout=60
    )
    unknown, still_open = json.loads(done.stdout)
    assert not unknown["ok"] and "bogus" in unknown["warnings"][0]
    assert not still_open["ok"] and "still active" in still_open["error"]
