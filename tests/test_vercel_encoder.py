"""The Vercel UI message stream encoder: golden fixtures, and any valid run encodes validly.

The goldens pin the exact chunks of each kind of run. The property tests draw any valid
agentcast stream (tests/streams.py: cancelled, errored, timed-out, interrupted ones too) and
check its encoding against the protocol's rules (tests/vercel_protocol.py), the content
against the events (the text parts are the agent's text tokens, and only those), and, in one
Node process over a few hundred streams, against the `ai` packages themselves: 5.0.216's
strict chunk schema and both versions' stream readers.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings

from agentcast.encoders.sse import PING
from agentcast.encoders.vercel import DONE, NESTED_PART, VercelEncoder, frame
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
from agentcast.testing import check_invariants
from tests.streams import agent_streams, stamp
from tests.vercel_protocol import ProtocolError, check_sse_body, check_ui_stream, run_node

METRICS = {"tokens": 2, "tool_calls": 0}


def encode(events: list[BaseEvent], **options: Any) -> list[dict[str, Any]]:
    return list(VercelEncoder(**options).encode_all(stamp(events)))


def end(outcome: str = "success", **fields: Any) -> AgentEnd:
    return AgentEnd(outcome=outcome, metrics=METRICS, **fields)  # type: ignore[arg-type]


def finish(reason: str, outcome: str = "success") -> dict[str, Any]:
    return {
        "type": "finish",
        "finishReason": reason,
        "messageMetadata": {"outcome": outcome, "metrics": METRICS},
    }


def tool_call(call: str, tool_call_id: str, name: str, *deltas: str) -> list[BaseEvent]:
    args = json.loads("".join(deltas))
    return [
        ToolCallStart(call_id=call, tool_call_id=tool_call_id, name=name),
        *(ToolCallDelta(tool_call_id=tool_call_id, delta=d) for d in deltas),
        ToolCallEnd(tool_call_id=tool_call_id, name=name, args=args),
    ]


def test_plain_text() -> None:
    chunks = encode(
        [
            AgentStart(input="hi"),
            LLMStart(call_id="c1"),
            LLMToken(call_id="c1", token="Hel"),
            LLMToken(call_id="c1", token="lo"),
            LLMEnd(call_id="c1", finish_reason="stop"),
            end(),
        ],
        message_id="run_1",
        metadata={"runId": "run_1", "sessionId": "s1"},
    )
    assert chunks == [
        {
            "type": "start",
            "messageId": "run_1",
            "messageMetadata": {"runId": "run_1", "sessionId": "s1"},
        },
        {"type": "start-step"},
        {"type": "text-start", "id": "text-1"},
        {"type": "text-delta", "id": "text-1", "delta": "Hel"},
        {"type": "text-delta", "id": "text-1", "delta": "lo"},
        {"type": "text-end", "id": "text-1"},
        {"type": "finish-step"},
        finish("stop"),
    ]


def test_a_tool_call_then_the_answer_in_a_later_step() -> None:
    chunks = encode(
        [
            AgentStart(input="2*3?"),
            LLMStart(call_id="c1"),
            *tool_call("c1", "t1", "multiply", '{"a": 2,', ' "b": 3}'),
            LLMEnd(call_id="c1", finish_reason="tool_calls", role="tool_use"),
            ToolStart(tool_call_id="t1", name="multiply", input={"a": 2, "b": 3}, call_id="c1"),
            ToolEnd(tool_call_id="t1", name="multiply", output=6),
            LLMStart(call_id="c2"),
            LLMToken(call_id="c2", token="6"),
            LLMEnd(call_id="c2", finish_reason="stop"),
            end(),
        ]
    )
    assert chunks == [
        {"type": "start"},
        {"type": "start-step"},
        {"type": "tool-input-start", "toolCallId": "t1", "toolName": "multiply"},
        {"type": "tool-input-delta", "toolCallId": "t1", "inputTextDelta": '{"a": 2,'},
        {"type": "tool-input-delta", "toolCallId": "t1", "inputTextDelta": ' "b": 3}'},
        {
            "type": "tool-input-available",
            "toolCallId": "t1",
            "toolName": "multiply",
            "input": {"a": 2, "b": 3},
        },
        {"type": "tool-output-available", "toolCallId": "t1", "output": 6},
        {"type": "finish-step"},
        {"type": "start-step"},
        {"type": "text-start", "id": "text-1"},
        {"type": "text-delta", "id": "text-1", "delta": "6"},
        {"type": "text-end", "id": "text-1"},
        {"type": "finish-step"},
        finish("stop"),
    ]


def test_parallel_tool_calls_stay_separate() -> None:
    a, b = tool_call("c1", "ta", "add", '{"x":', "1}"), tool_call("c1", "tb", "add", '{"x":', "2}")
    interleaved = [a[0], b[0], a[1], b[1], b[2], a[2], b[3], a[3]]
    chunks = encode(
        [
            AgentStart(input="q"),
            LLMStart(call_id="c1"),
            *interleaved,
            LLMEnd(call_id="c1", role="tool_use"),
            ToolStart(tool_call_id="ta", name="add", input={"x": 1}),
            ToolStart(tool_call_id="tb", name="add", input={"x": 2}),
            ToolEnd(tool_call_id="tb", name="add", status="error", error="boom"),
            ToolEnd(tool_call_id="ta", name="add", output=1),
            end(),
        ]
    )
    assert chunks[1:-2] == [
        {"type": "start-step"},
        {"type": "tool-input-start", "toolCallId": "ta", "toolName": "add"},
        {"type": "tool-input-start", "toolCallId": "tb", "toolName": "add"},
        {"type": "tool-input-delta", "toolCallId": "ta", "inputTextDelta": '{"x":'},
        {"type": "tool-input-delta", "toolCallId": "tb", "inputTextDelta": '{"x":'},
        {"type": "tool-input-delta", "toolCallId": "tb", "inputTextDelta": "2}"},
        {"type": "tool-input-delta", "toolCallId": "ta", "inputTextDelta": "1}"},
        {"type": "tool-input-available", "toolCallId": "tb", "toolName": "add", "input": {"x": 2}},
        {"type": "tool-input-available", "toolCallId": "ta", "toolName": "add", "input": {"x": 1}},
        {"type": "tool-output-error", "toolCallId": "tb", "errorText": "boom"},
        {"type": "tool-output-available", "toolCallId": "ta", "output": 1},
    ]
    assert chunks[-2:] == [{"type": "finish-step"}, finish("stop")]


def test_an_llm_inside_a_tool_is_one_data_part_replaced_in_place_never_text() -> None:
    chunks = encode(
        [
            AgentStart(input="cat?"),
            LLMStart(call_id="c1"),
            *tool_call("c1", "t1", "get_items", '{"place": "bed"}'),
            LLMEnd(call_id="c1", role="tool_use"),
            ToolStart(tool_call_id="t1", name="get_items", input={"place": "bed"}),
            Custom(name="lookup", data={"place": "bed"}, tool_call_id="t1"),
            LLMStart(call_id="n1", parent_id="t1", depth=1, model="m"),
            LLMToken(call_id="n1", token="socks", depth=1),
            LLMToken(call_id="n1", token=", shoes", depth=1),
            LLMEnd(call_id="n1", finish_reason="stop", role="internal"),
            ToolEnd(tool_call_id="t1", name="get_items", output="socks, shoes"),
            end(),
        ]
    )
    base = {"callId": "n1", "parentId": "t1", "depth": 1, "model": "m", "reasoning": ""}
    base["toolCalls"] = []
    nested = [c for c in chunks if c["type"] == NESTED_PART]
    assert nested == [
        {"type": NESTED_PART, "id": "n1", "data": {**base, "text": "", "state": "streaming"}},
        {"type": NESTED_PART, "id": "n1", "data": {**base, "text": "socks", "state": "streaming"}},
        {
            "type": NESTED_PART,
            "id": "n1",
            "data": {**base, "text": "socks, shoes", "state": "streaming"},
        },
        {
            "type": NESTED_PART,
            "id": "n1",
            "data": {**base, "text": "socks, shoes", "state": "done", "finishReason": "stop"},
        },
    ]
    assert {"type": "data-lookup", "data": {"place": "bed"}} in chunks
    assert not [c for c in chunks if c["type"].startswith("text-")]


def test_reasoning_then_text_are_two_parts_with_fresh_ids() -> None:
    chunks = encode(
        [
            AgentStart(input="q"),
            LLMStart(call_id="c1"),
            LLMToken(call_id="c1", token="Think", kind="reasoning"),
            LLMToken(call_id="c1", token="Say"),
            LLMToken(call_id="c1", token="more", kind="reasoning"),
            LLMEnd(call_id="c1", finish_reason="length"),
            end(),
        ]
    )
    assert chunks[2:-2] == [
        {"type": "reasoning-start", "id": "reasoning-1"},
        {"type": "reasoning-delta", "id": "reasoning-1", "delta": "Think"},
        {"type": "reasoning-end", "id": "reasoning-1"},
        {"type": "text-start", "id": "text-2"},
        {"type": "text-delta", "id": "text-2", "delta": "Say"},
        {"type": "text-end", "id": "text-2"},
        {"type": "reasoning-start", "id": "reasoning-3"},
        {"type": "reasoning-delta", "id": "reasoning-3", "delta": "more"},
        {"type": "reasoning-end", "id": "reasoning-3"},
    ]
    assert chunks[-1] == finish("length")


def test_the_error_that_ends_a_run_is_an_error_chunk_and_one_it_went_on_after_a_data_part() -> None:
    chunks = encode(
        [
            AgentStart(input="q"),
            Error(error="rate limited, retrying", error_type="ProviderError", retryable=True),
            LLMStart(call_id="c1"),
            LLMToken(call_id="c1", token="Par"),
            LLMEnd(call_id="c1", finish_reason="error"),
            Error(error="the provider failed", error_type="ProviderError", code="provider"),
            end("error"),
        ]
    )
    assert chunks == [
        {"type": "start"},
        {
            "type": "data-agentcast-error",
            "id": "error-1",
            "data": {
                "message": "rate limited, retrying",
                "type": "ProviderError",
                "code": "error",
                "retryable": True,
            },
        },
        {"type": "start-step"},
        {"type": "text-start", "id": "text-2"},
        {"type": "text-delta", "id": "text-2", "delta": "Par"},
        {"type": "text-end", "id": "text-2"},
        {"type": "error", "errorText": "the provider failed"},
        {"type": "finish-step"},
        finish("error", "error"),
    ]


def test_a_cancelled_run_aborts_and_a_tool_call_that_never_ran_gets_an_error_output() -> None:
    chunks = encode(
        [
            AgentStart(input="q"),
            LLMStart(call_id="c1"),
            *tool_call("c1", "t1", "add", "{}"),
            LLMEnd(call_id="c1", finish_reason="cancelled", role="tool_use"),
            end("cancelled"),
        ]
    )
    assert chunks[-4:] == [
        {
            "type": "tool-output-error",
            "toolCallId": "t1",
            "errorText": "the tool did not run (the run cancelled)",
        },
        {"type": "finish-step"},
        {"type": "abort"},
        finish("other", "cancelled"),
    ]


def test_an_interrupted_run_carries_its_payload_and_bad_tool_json_is_an_input_error() -> None:
    chunks = encode(
        [
            AgentStart(input="q"),
            LLMStart(call_id="c1"),
            ToolCallStart(call_id="c1", tool_call_id="t1", name="add"),
            ToolCallDelta(tool_call_id="t1", delta='{"a": '),
            ToolCallEnd(tool_call_id="t1", name="add", error="invalid JSON", raw='{"a": '),
            LLMEnd(call_id="c1", role="tool_use"),
            end("interrupted", output={"question": "approve?"}),
        ]
    )
    assert chunks[4:] == [
        {
            "type": "tool-input-error",
            "toolCallId": "t1",
            "toolName": "add",
            "input": '{"a": ',
            "errorText": "invalid JSON",
        },
        {"type": "data-agentcast-interrupt", "data": {"question": "approve?"}},
        {"type": "finish-step"},
        finish("other", "interrupted"),
    ]


def test_a_stream_cut_short_is_closed_by_close() -> None:
    encoder = VercelEncoder()
    chunks = [*encoder.start()]
    for event in stamp(
        [AgentStart(input="q"), LLMStart(call_id="c1"), LLMToken(call_id="c1", token="x")]
    ):
        chunks += encoder.encode(event)
    chunks += encoder.close()
    assert chunks[-3:] == [
        {"type": "text-end", "id": "text-1"},
        {"type": "finish-step"},
        {"type": "finish", "finishReason": "other"},
    ]
    check_ui_stream(chunks)


def test_framing_is_one_data_line_per_chunk() -> None:
    assert frame({"type": "text-delta", "id": "t", "delta": "a\nb\r\n"}) == (
        b'data: {"type":"text-delta","id":"t","delta":"a\\nb\\r\\n"}\n\n'
    )
    assert DONE == b"data: [DONE]\n\n"


def test_the_checker_rejects_what_the_protocol_forbids() -> None:
    good = encode(
        [
            AgentStart(input="q"),
            LLMStart(call_id="c"),
            LLMToken(call_id="c", token="a"),
            LLMEnd(call_id="c"),
            end(),
        ]
    )
    check_ui_stream(good)
    broken = [
        [c for c in good if c["type"] != "text-start"],  # a delta of a part never started
        [c for c in good if c["type"] != "finish-step"],  # unbalanced steps
        good[:-1],  # no finish
        [*good[:2], {"type": "text-start", "id": "x", "extra": 1}, *good[2:]],  # unknown field
        [good[0], good[-1], *good[1:-1]],  # finish not last
    ]
    for chunks in broken:
        with pytest.raises(ProtocolError):
            check_ui_stream(chunks)


# -- any valid agentcast stream ------------------------------------------------------------


def _texts(events: list[BaseEvent]) -> tuple[str, str]:
    depth0 = [e for e in events if isinstance(e, LLMToken) and e.depth == 0]
    return (
        "".join(e.token for e in depth0 if e.kind == "text"),
        "".join(e.token for e in depth0 if e.kind == "reasoning"),
    )


@settings(max_examples=150, deadline=None, derandomize=True, database=None)  # < 2 s
@given(events=agent_streams())
def test_any_valid_stream_encodes_to_a_stream_the_protocol_accepts(events: list[BaseEvent]) -> None:
    check_invariants(events)  # the strategy draws valid streams only
    body = b"".join(frame(c) for c in VercelEncoder(message_id="run_1").encode_all(events)) + DONE
    chunks = check_sse_body(body.decode())
    check_ui_stream(chunks)
    text, reasoning = _texts(events)
    assert "".join(c["delta"] for c in chunks if c["type"] == "text-delta") == text
    assert "".join(c["delta"] for c in chunks if c["type"] == "reasoning-delta") == reasoning
    inputs = {c["toolCallId"]: c["input"] for c in chunks if c["type"] == "tool-input-available"}
    for event in events:
        if isinstance(event, ToolCallEnd) and event.tool_call_id in inputs:
            assert inputs[event.tool_call_id] == event.args
    nested = {e.call_id: "" for e in events if isinstance(e, LLMStart) and e.depth > 0}
    for event in events:
        if isinstance(event, LLMToken) and event.depth > 0 and event.kind == "text":
            nested[event.call_id] += event.token
    last = {c["id"]: c["data"]["text"] for c in chunks if c["type"] == NESTED_PART}
    assert last == nested
    errors = [c for c in chunks if c["type"] == "error"]
    assert len(errors) == (events[-1].outcome in ("error", "timeout"))  # type: ignore[attr-defined]
    assert (chunks[-2]["type"] == "abort") == (events[-1].outcome == "cancelled")  # type: ignore[attr-defined]


@pytest.mark.slow
def test_the_ai_packages_accept_a_few_hundred_generated_streams() -> None:
    lines: list[str] = []

    @settings(max_examples=300, deadline=None, derandomize=True, database=None)
    @given(events=agent_streams())
    def collect(events: list[BaseEvent]) -> None:
        chunks = list(VercelEncoder(message_id="run_1").encode_all(events))
        # Every other stream with the server's heartbeat comment between its chunks.
        body = (PING if len(lines) % 2 else b"").join(frame(c) for c in chunks) + DONE
        errors = [c["errorText"] for c in chunks if c["type"] == "error"]
        lines.append(json.dumps({"body": body.decode(), "errors": errors}))

    collect()
    # Two bodies the clients must refuse, last: the check can fail.
    bad = [
        'data: {"type":"start"}\n\ndata: {"type":"start-step","extra":1}\n\ndata: [DONE]\n\n',
        'data: {"type":"start"}\n\ndata: {"type":"text-delta","id":"x","delta":"a"}\n\n'
        "data: [DONE]\n\n",
    ]
    lines += [json.dumps({"body": body, "errors": []}) for body in bad]
    report = run_node("validate.mjs", stdin="\n".join(lines))
    assert report["count"] == len(lines) >= 100
    failed = {f["index"] for f in report["failures"]}
    assert failed == {len(lines) - 2, len(lines) - 1}, report["failures"][:5]
    assert any("strict schema" in f["what"] for f in report["failures"])
