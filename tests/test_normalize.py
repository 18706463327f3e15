"""Chunk normalization and the per-LLM-call assembler, against recorded provider chunk shapes.

The chunks below are real `AIMessageChunk` objects shaped like what each LangChain integration
yields while streaming (langchain-openai, langchain-anthropic, langchain-aws ChatBedrockConverse,
langchain-deepseek, langchain-ollama, langchain-google-genai, OpenAI-compatible gateways). Every
event sequence produced by `LLMCallStream` goes through `check_invariants`, which asserts the
per-call invariants of DESIGN.md ("Invariants the runtime guarantees").
"""

from __future__ import annotations

import json
from itertools import accumulate
from typing import Any

import msgspec
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.messages.tool import tool_call, tool_call_chunk

from agentcast.events import (
    BaseEvent,
    LLMEnd,
    LLMStart,
    LLMToken,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolEnd,
    ToolStart,
)
from agentcast.sources import _tool_calls as tool_calls_module
from agentcast.sources.llm_call import LLMCallResult, LLMCallStream
from agentcast.sources.normalize import (
    OpaqueBlock,
    ProviderToolResult,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolChunk,
    finish_reason_of,
    normalize_chunk,
    usage_of,
)

CALL_ID = "c1"

# ---------------------------------------------------------------------------------------------
# Chunk builders
# ---------------------------------------------------------------------------------------------


def chunk(
    content: Any = "",
    *,
    tcc: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    usage: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
) -> AIMessageChunk:
    """An `AIMessageChunk` with only the fields a test sets."""
    kwargs: dict[str, Any] = {"content": content}
    if tcc is not None:
        kwargs["tool_call_chunks"] = tcc
    if extra is not None:
        kwargs["additional_kwargs"] = extra
    if usage is not None:
        kwargs["usage_metadata"] = usage
    if meta is not None:
        kwargs["response_metadata"] = meta
    return AIMessageChunk(**kwargs)


def tcc(
    *,
    name: str | None = None,
    args: str | None = None,
    id: str | None = None,
    index: int | None = None,
) -> dict[str, Any]:
    return dict(tool_call_chunk(name=name, args=args, id=id, index=index))


def usage(inp: int, out: int, **details: Any) -> dict[str, Any]:
    return {"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out, **details}


# -- langchain-openai -------------------------------------------------------------------------

OPENAI_META = {"model_provider": "openai"}
OPENAI_FINISH_META = {
    "finish_reason": "stop",
    "model_name": "gpt-4o-mini-2024-07-18",
    "system_fingerprint": "fp_560af6e559",
    "service_tier": "default",
    "model_provider": "openai",
}


def openai_role_chunk() -> AIMessageChunk:
    """The first chunk of every OpenAI stream: role only, empty content."""
    return chunk("", meta=OPENAI_META)


def openai_usage_chunk(inp: int = 12, out: int = 5) -> AIMessageChunk:
    """`stream_options={"include_usage": True}`: the last chunk carries usage and nothing else."""
    return chunk(
        "",
        usage=usage(
            inp,
            out,
            input_token_details={"audio": 0, "cache_read": 0},
            output_token_details={"audio": 0, "reasoning": 0},
        ),
        meta=OPENAI_META,
    )


def openai_tool_chunk(
    *, index: int, id: str | None = None, name: str | None = None, args: str = ""
) -> AIMessageChunk:
    """One OpenAI tool-call delta, as langchain-openai maps `delta.tool_calls[i]`."""
    raw: dict[str, Any] = {"index": index, "function": {"arguments": args}}
    if id is not None:
        raw["id"] = id
        raw["type"] = "function"
    if name is not None:
        raw["function"]["name"] = name
    return chunk(
        "",
        tcc=[tcc(name=name, args=args, id=id, index=index)],
        extra={"tool_calls": [raw]},
        meta=OPENAI_META,
    )


# -- langchain-anthropic ----------------------------------------------------------------------

ANTHROPIC_START_META = {"model_name": "claude-sonnet-4-5-20250929", "model_provider": "anthropic"}


def anthropic_message_start(input_tokens: int = 472) -> AIMessageChunk:
    """`message_start`: input tokens, output zeroed (the final count comes in message_delta)."""
    return chunk([], usage=usage(input_tokens, 0), meta=ANTHROPIC_START_META)


def anthropic_message_delta(output_tokens: int, stop_reason: str) -> AIMessageChunk:
    return chunk(
        [],
        usage=usage(0, output_tokens),
        meta={"stop_reason": stop_reason, "stop_sequence": None},
    )


def anthropic_text(text: str, index: int = 0) -> AIMessageChunk:
    return chunk([{"type": "text", "text": text, "index": index}])


def anthropic_tool_use_start(tool_id: str, name: str, index: int) -> AIMessageChunk:
    block = {"type": "tool_use", "id": tool_id, "name": name, "input": {}, "index": index}
    return chunk([block], tcc=[tcc(name=name, args="", id=tool_id, index=index)])


def anthropic_json_delta(partial: str, index: int) -> AIMessageChunk:
    block = {"type": "input_json_delta", "partial_json": partial, "index": index}
    return chunk([block], tcc=[tcc(args=partial, index=index)])


def anthropic_thinking(text: str, index: int = 0) -> AIMessageChunk:
    return chunk([{"type": "thinking", "thinking": text, "index": index}])


def anthropic_signature(signature: str, index: int = 0) -> AIMessageChunk:
    return chunk([{"type": "thinking", "signature": signature, "index": index}])


# -- langchain-aws ChatBedrockConverse --------------------------------------------------------


def bedrock_text(text: str, index: int = 0) -> AIMessageChunk:
    return chunk([{"type": "text", "text": text, "index": index}])


def bedrock_reasoning(text: str, index: int = 0) -> AIMessageChunk:
    inner = {"type": "text", "text": text}
    return chunk([{"type": "reasoning_content", "reasoning_content": inner, "index": index}])


def bedrock_reasoning_signature(signature: str, index: int = 0) -> AIMessageChunk:
    inner = {"type": "signature", "signature": signature}
    return chunk([{"type": "reasoning_content", "reasoning_content": inner, "index": index}])


def bedrock_tool_start(tool_id: str, name: str, index: int) -> AIMessageChunk:
    block = {"type": "tool_use", "name": name, "id": tool_id, "index": index}
    return chunk([block], tcc=[tcc(name=name, args="", id=tool_id, index=index)])


def bedrock_tool_args(partial: str, index: int) -> AIMessageChunk:
    block = {"type": "tool_use", "input": partial, "index": index}
    return chunk([block], tcc=[tcc(args=partial, index=index)])


def bedrock_stop(reason: str) -> AIMessageChunk:
    return chunk([], meta={"stopReason": reason})


def bedrock_metadata(inp: int, out: int) -> AIMessageChunk:
    return chunk([], usage=usage(inp, out), meta={"metrics": {"latencyMs": [812]}})


# ---------------------------------------------------------------------------------------------
# Running a call and checking the invariants
# ---------------------------------------------------------------------------------------------


def check_invariants(
    events: list[BaseEvent], result: LLMCallResult | None = None, call_id: str = CALL_ID
) -> None:
    """The per-call invariants that hold for every sequence, whatever the provider."""
    assert events, "no events"
    assert isinstance(events[0], LLMStart)
    assert events[0].call_id == call_id
    assert isinstance(events[-1], LLMEnd)
    assert events[-1].call_id == call_id
    assert sum(isinstance(e, LLMStart) for e in events) == 1
    assert sum(isinstance(e, LLMEnd) for e in events) == 1

    started: dict[str, int] = {}
    ended: dict[str, int] = {}
    deltas: dict[str, list[str]] = {}
    for pos, event in enumerate(events):
        if isinstance(event, LLMToken):
            assert event.call_id == call_id
            assert type(event.token) is str
            assert event.token != ""
            assert event.kind in ("text", "reasoning")
        elif isinstance(event, ToolCallStart):
            assert event.call_id == call_id
            assert event.tool_call_id not in started, f"second start for {event.tool_call_id}"
            started[event.tool_call_id] = pos
        elif isinstance(event, ToolCallDelta):
            assert event.tool_call_id in started, "delta before its tool_call_start"
            assert event.tool_call_id not in ended, "delta after its tool_call_end"
            assert type(event.delta) is str
            assert event.delta != ""
            deltas.setdefault(event.tool_call_id, []).append(event.delta)
        elif isinstance(event, ToolStart):  # only a provider's tool is reported by the call
            assert event.executor == "provider"
            assert event.tool_call_id in ended, "a tool never starts before its tool_call_end"
            assert event.call_id == call_id
        elif isinstance(event, ToolEnd):
            assert event.executor == "provider"
            assert isinstance(events[pos - 1], ToolStart)
            assert events[pos - 1].tool_call_id == event.tool_call_id
        elif isinstance(event, ToolCallEnd):
            assert event.tool_call_id in started, "tool_call_end without tool_call_start"
            assert event.tool_call_id not in ended, f"second end for {event.tool_call_id}"
            ended[event.tool_call_id] = pos
            if event.error is None:
                assert isinstance(event.args, dict)
                assert event.raw is None
            else:
                assert event.args is None
                assert event.raw is not None
                assert event.raw == "".join(deltas.get(event.tool_call_id, []))
    assert set(started) == set(ended), "every tool_call_start has exactly one tool_call_end"
    for tool_call_id in ended:
        assert ended[tool_call_id] < len(events) - 1, "tool_call_end after llm_end"

    if result is not None:
        text = "".join(e.token for e in events if isinstance(e, LLMToken) and e.kind == "text")
        assert text == result.text
        local = [c.id for c in result.tool_calls]
        assert sorted(local + [c.id for c in result.provider_tools]) == sorted(started)
        assert local == [i for i in started if i in local]
        for call in result.tool_calls + result.provider_tools:
            assert "".join(deltas.get(call.id, [])) == call.raw
        assert events[-1].usage == result.usage
        assert events[-1].finish_reason == result.finish_reason
        assert events[-1].role == result.role


def run(chunks: list[Any], **kwargs: Any) -> tuple[list[BaseEvent], LLMCallResult, list[BaseEvent]]:
    """Feed chunks through a fresh stream; return all events, the result, and the events
    that were emitted before `finish()` was called."""
    events: list[BaseEvent] = []
    stream = LLMCallStream(events.append, call_id=CALL_ID, **kwargs)
    stream.start()
    for c in chunks:
        stream.feed(c)
    before_finish = list(events)
    result = stream.finish()
    check_invariants(events, result)
    return events, result, before_finish


def run_fail(chunks: list[Any], reason: str = "error", **kwargs: Any) -> list[BaseEvent]:
    events: list[BaseEvent] = []
    stream = LLMCallStream(events.append, call_id=CALL_ID, **kwargs)
    stream.start()
    for c in chunks:
        stream.feed(c)
    stream.fail(reason)
    check_invariants(events)
    return events


def compact(event: BaseEvent) -> tuple[Any, ...]:
    """An event without its timings, for exact sequence comparison."""
    if isinstance(event, LLMStart):
        return ("llm_start",)
    if isinstance(event, LLMToken):
        return ("token", event.kind, event.token)
    if isinstance(event, ToolCallStart):
        return ("tool_start", event.tool_call_id, event.name, event.index)
    if isinstance(event, ToolCallDelta):
        return ("tool_delta", event.tool_call_id, event.delta)
    if isinstance(event, ToolCallEnd):
        return ("tool_end", event.tool_call_id, event.name, event.args, event.error, event.raw)
    if isinstance(event, LLMEnd):
        return ("llm_end", event.finish_reason, event.usage, event.role)
    if isinstance(event, ToolStart):
        return ("ran", event.tool_call_id, event.name, event.input, event.executor)
    if isinstance(event, ToolEnd):
        return ("ran_end", event.tool_call_id, event.status, event.output, event.error)
    raise AssertionError(f"unexpected event {event!r}")


def seq(events: list[BaseEvent]) -> list[tuple[Any, ...]]:
    return [compact(e) for e in events]


def texts(events: list[BaseEvent], kind: str = "text") -> list[str]:
    return [e.token for e in events if isinstance(e, LLMToken) and e.kind == kind]


def tool_deltas(events: list[BaseEvent], tool_call_id: str) -> list[str]:
    return [
        e.delta for e in events if isinstance(e, ToolCallDelta) and e.tool_call_id == tool_call_id
    ]


def the_end(events: list[BaseEvent]) -> LLMEnd:
    end = events[-1]
    assert isinstance(end, LLMEnd)
    return end


# ---------------------------------------------------------------------------------------------
# The invariant checker itself must be able to fail
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "events",
    [
        pytest.param(
            [LLMStart(call_id=CALL_ID), ToolCallStart(call_id=CALL_ID, tool_call_id="t", name="f")]
            + [LLMEnd(call_id=CALL_ID)],
            id="start-without-end",
        ),
        pytest.param(
            [
                LLMStart(call_id=CALL_ID),
                LLMToken(call_id=CALL_ID, token=""),
                LLMEnd(call_id=CALL_ID),
            ],
            id="empty-token",
        ),
        pytest.param(
            [
                LLMStart(call_id=CALL_ID),
                ToolCallStart(call_id=CALL_ID, tool_call_id="t", name="f"),
                ToolCallEnd(tool_call_id="t", name="f", args={}),
                ToolCallEnd(tool_call_id="t", name="f", args={}),
                LLMEnd(call_id=CALL_ID),
            ],
            id="two-ends",
        ),
        pytest.param(
            [LLMStart(call_id=CALL_ID), ToolCallDelta(tool_call_id="t", delta="{}")]
            + [LLMEnd(call_id=CALL_ID)],
            id="delta-before-start",
        ),
        pytest.param([LLMStart(call_id=CALL_ID)], id="no-llm-end"),
    ],
)
def test_check_invariants_rejects_broken_sequences(events: list[BaseEvent]) -> None:
    with pytest.raises(AssertionError):
        check_invariants(events)


# ---------------------------------------------------------------------------------------------
# normalize_chunk, usage_of, finish_reason_of: one provider shape at a time
# ---------------------------------------------------------------------------------------------

REDACTED = {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a", "index": 1}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        pytest.param(chunk("Hel"), [TextDelta("Hel")], id="openai-str"),
        pytest.param(chunk(""), [], id="empty-str"),
        pytest.param(chunk([]), [], id="empty-list"),
        pytest.param(bedrock_text("Hel"), [TextDelta("Hel")], id="bedrock-text-block"),
        pytest.param(chunk(["Hel", "lo"]), [TextDelta("Hel"), TextDelta("lo")], id="gemini-strs"),
        pytest.param(
            chunk([{"type": "text", "text": "", "citations": None, "index": 0}]),
            [],
            id="anthropic-empty-text-start",
        ),
        pytest.param(
            anthropic_tool_use_start("toolu_01", "search", 1),
            [ToolChunk(1, "toolu_01", "search", "")],
            id="anthropic-tool-use-start",
        ),
        pytest.param(
            anthropic_json_delta('{"q": "ca', 1),
            [ToolChunk(1, None, None, '{"q": "ca')],
            id="anthropic-input-json-delta",
        ),
        pytest.param(
            chunk(
                [{"type": "tool_use", "id": "toolu_01", "name": "search", "input": {"q": "x"}}],
            ),
            [ToolChunk(None, "toolu_01", "search", '{"q":"x"}')],
            id="tool-use-block-without-tool-call-chunks",
        ),
        pytest.param(
            chunk([{"type": "input_json_delta", "partial_json": '"x"}', "index": 2}]),
            [ToolChunk(2, None, None, '"x"}')],
            id="json-delta-block-without-tool-call-chunks",
        ),
        pytest.param(
            anthropic_thinking("The user"),
            [ReasoningDelta("The user", None, "thinking")],
            id="anthropic-thinking",
        ),
        pytest.param(
            anthropic_signature("ErUBCkYIBRgC"),
            [ReasoningDelta("", "ErUBCkYIBRgC", "thinking")],
            id="anthropic-signature",
        ),
        pytest.param(
            chunk([{"type": "thinking", "thinking": "", "signature": "", "index": 0}]),
            [],
            id="anthropic-thinking-start",
        ),
        pytest.param(chunk([REDACTED]), [OpaqueBlock(REDACTED)], id="redacted-thinking"),
        pytest.param(
            bedrock_reasoning("Checking"),
            [ReasoningDelta("Checking", None, "reasoning_content")],
            id="bedrock-reasoning",
        ),
        pytest.param(
            bedrock_reasoning_signature("sigB"),
            [ReasoningDelta("", "sigB", "reasoning_content")],
            id="bedrock-reasoning-signature",
        ),
        pytest.param(
            chunk("", extra={"reasoning_content": "Let me"}),
            [ReasoningDelta("Let me")],
            id="deepseek-reasoning-content",
        ),
        pytest.param(
            chunk([{"type": "reasoning", "reasoning": "Hmm", "index": 0}]),
            [ReasoningDelta("Hmm")],
            id="v1-reasoning-block",
        ),
        pytest.param(
            chunk(
                [
                    {
                        "type": "reasoning",
                        "id": "rs_1",
                        "summary": [{"index": 0, "type": "summary_text", "text": "Plan"}],
                        "index": 0,
                    }
                ]
            ),
            [ReasoningDelta("Plan")],
            id="openai-responses-summary",
        ),
        pytest.param(
            chunk([{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]),
            [],
            id="image-block-is-not-text",
        ),
        pytest.param(
            AIMessage(
                content="Let me check.",
                tool_calls=[tool_call(name="get_weather", args={"city": "Paris"}, id="call_1")],
            ),
            [TextDelta("Let me check."), ToolChunk(0, "call_1", "get_weather", '{"city":"Paris"}')],
            id="whole-aimessage-with-tool-calls",
        ),
        pytest.param(
            AIMessage(
                content=[
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_9", "name": "ping", "input": {}},
                ],
                tool_calls=[tool_call(name="ping", args={}, id="toolu_9")],
            ),
            [TextDelta("Checking."), ToolChunk(None, "toolu_9", "ping", "")],
            id="whole-anthropic-message-no-duplicate-call",
        ),
    ],
)
def test_normalize_chunk(message: Any, expected: list[Any]) -> None:
    assert normalize_chunk(message) == expected


def test_normalize_never_returns_a_list_as_text() -> None:
    deltas = normalize_chunk(bedrock_text("Hel"))
    assert deltas == [TextDelta("Hel")]
    assert all(type(d.text) is str for d in deltas if isinstance(d, TextDelta))


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        pytest.param(OPENAI_FINISH_META, "stop", id="openai"),
        pytest.param(
            {"stop_reason": "end_turn", "stop_sequence": None}, "end_turn", id="anthropic"
        ),
        pytest.param({"stopReason": "tool_use"}, "tool_use", id="bedrock"),
        pytest.param(
            {"model": "llama3.1", "done": True, "done_reason": "stop", "eval_count": 9},
            "stop",
            id="ollama",
        ),
        pytest.param({"finish_reason": "STOP", "safety_ratings": []}, "STOP", id="gemini"),
        pytest.param({"model_provider": "openai"}, None, id="no-reason"),
        pytest.param({"finish_reason": None}, None, id="null-reason"),
        pytest.param({}, None, id="empty"),
    ],
)
def test_finish_reason_of(meta: dict[str, Any], expected: str | None) -> None:
    assert finish_reason_of(chunk("", meta=meta)) == expected


def test_usage_of() -> None:
    assert usage_of(chunk("x")) is None
    assert usage_of(openai_usage_chunk(12, 5)) == {
        "input_tokens": 12,
        "output_tokens": 5,
        "total_tokens": 17,
    }


# ---------------------------------------------------------------------------------------------
# Plain text, empty chunks, finish reasons
# ---------------------------------------------------------------------------------------------


def test_openai_plain_text_stream() -> None:
    chunks = [
        openai_role_chunk(),
        chunk("Hel", meta=OPENAI_META),
        chunk("lo", meta=OPENAI_META),
        chunk(", world", meta=OPENAI_META),
        chunk("", meta=OPENAI_FINISH_META),
        openai_usage_chunk(12, 5),
    ]
    events, result, _ = run(chunks)
    assert seq(events) == [
        ("llm_start",),
        ("token", "text", "Hel"),
        ("token", "text", "lo"),
        ("token", "text", ", world"),
        (
            "llm_end",
            "stop",
            {"input_tokens": 12, "output_tokens": 5, "total_tokens": 17, "source": "provider"},
            "answer",
        ),
    ]
    assert result.text == "Hello, world"
    assert result.tool_calls == []
    assert result.reasoning == []
    assert the_end(events).ttft_ms is not None


def test_empty_first_chunk_emits_nothing_and_is_not_a_first_token() -> None:
    events: list[BaseEvent] = []
    stream = LLMCallStream(events.append, call_id=CALL_ID)
    stream.start()
    stream.feed(openai_role_chunk())
    stream.feed(chunk([]))
    assert seq(events) == [("llm_start",)]
    assert stream.has_output is False
    stream.feed(chunk("Hi"))
    assert stream.has_output is True
    stream.finish()
    assert seq(events)[1:-1] == [("token", "text", "Hi")]
    check_invariants(events)


def test_no_output_at_all_has_no_ttft() -> None:
    events, result, _ = run([openai_role_chunk(), chunk("", meta=OPENAI_FINISH_META)])
    assert seq(events) == [("llm_start",), ("llm_end", "stop", None, "answer")]
    assert the_end(events).ttft_ms is None
    assert result.text == ""


def test_finish_reason_together_with_last_text() -> None:
    last = chunk("!", meta={**OPENAI_FINISH_META, "finish_reason": "length"})
    events, result, _ = run([chunk("Hi", meta=OPENAI_META), last])
    assert seq(events) == [
        ("llm_start",),
        ("token", "text", "Hi"),
        ("token", "text", "!"),
        ("llm_end", "length", None, "answer"),
    ]
    assert result.text == "Hi!"
    assert result.finish_reason == "length"


@pytest.mark.parametrize(
    ("chunks", "expected_reason", "expected_text"),
    [
        pytest.param(
            [
                anthropic_message_start(),
                anthropic_text("Hi"),
                anthropic_message_delta(3, "end_turn"),
            ],
            "end_turn",
            "Hi",
            id="anthropic-stop_reason",
        ),
        pytest.param(
            [bedrock_text("Hi"), bedrock_stop("end_turn"), bedrock_metadata(10, 2)],
            "end_turn",
            "Hi",
            id="bedrock-stopReason",
        ),
        pytest.param(
            [
                chunk("Hi", meta={"model": "llama3.1"}),
                chunk(
                    "",
                    usage=usage(20, 2),
                    meta={"model": "llama3.1", "done": True, "done_reason": "stop"},
                ),
            ],
            "stop",
            "Hi",
            id="ollama-done_reason",
        ),
    ],
)
def test_provider_finish_reason_reaches_llm_end(
    chunks: list[AIMessageChunk], expected_reason: str, expected_text: str
) -> None:
    events, result, _ = run(chunks)
    assert the_end(events).finish_reason == expected_reason
    assert result.finish_reason == expected_reason
    assert texts(events) == [expected_text]


def test_default_finish_reason_and_explicit_override() -> None:
    events, _, _ = run([chunk("Hi")])
    assert the_end(events).finish_reason == "stop"
    events, _, _ = run([openai_tool_chunk(index=0, id="call_1", name="ping", args="{}")])
    assert the_end(events).finish_reason == "tool_calls"

    events = []
    stream = LLMCallStream(events.append, call_id=CALL_ID)
    stream.start()
    stream.feed(chunk("Hi", meta=OPENAI_FINISH_META))
    result = stream.finish(finish_reason="cancelled", role="internal")
    assert seq(events)[-1] == ("llm_end", "cancelled", None, "internal")
    assert result.finish_reason == "cancelled"
    check_invariants(events, result)


def test_bedrock_list_token_is_text_never_a_list() -> None:
    events, result, _ = run(
        [bedrock_text("Hel"), bedrock_text("lo"), bedrock_stop("end_turn"), bedrock_metadata(9, 2)]
    )
    assert seq(events) == [
        ("llm_start",),
        ("token", "text", "Hel"),
        ("token", "text", "lo"),
        (
            "llm_end",
            "end_turn",
            {"input_tokens": 9, "output_tokens": 2, "total_tokens": 11, "source": "provider"},
            "answer",
        ),
    ]
    assert result.text == "Hello"


def test_gemini_list_of_plain_strings() -> None:
    chunks = [
        chunk(["Hel"]),
        chunk(["lo", " there"]),
        chunk([""], usage=usage(7, 3), meta={"finish_reason": "STOP"}),
    ]
    events, result, _ = run(chunks)
    assert texts(events) == ["Hel", "lo", " there"]
    assert result.text == "Hello there"
    assert the_end(events).finish_reason == "STOP"


def test_depth_and_parent_are_carried() -> None:
    events, result, _ = run([chunk("x")], depth=1, parent_id="toolcall-9", model="m")
    start = events[0]
    assert isinstance(start, LLMStart)
    assert (start.depth, start.parent_id, start.model) == (1, "toolcall-9", "m")
    token = events[1]
    assert isinstance(token, LLMToken)
    assert token.depth == 1
    assert result.role == "internal"


# ---------------------------------------------------------------------------------------------
# Anthropic: text, then tool_use with arguments split over 40 chunks
# ---------------------------------------------------------------------------------------------

# The raw argument text exactly as the model writes it: escapes stay escapes.
RAW_ARGS = (
    '{"query": "caf\\u00e9 \\"best\\" croissants near the Louvre", '
    '"max_results": 12345, "min_rating": 4.75, "open_now": true}'
)


def split_into(raw: str, n: int, required: list[int]) -> list[str]:
    """Split `raw` into `n` pieces, with a boundary at every position in `required`."""
    cuts = set(required)
    step = len(raw) / n
    candidate = 1
    while len(cuts) < n - 1:
        cut = int(candidate * step)
        if 0 < cut < len(raw):
            cuts.add(cut)
        candidate += 1
        if candidate > 10 * n:  # fill any remaining gap one position at a time
            for pos in range(1, len(raw)):
                if len(cuts) >= n - 1:
                    break
                cuts.add(pos)
    bounds = [0, *sorted(cuts), len(raw)]
    return [raw[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def forty_pieces() -> list[str]:
    esc_u = RAW_ARGS.index("\\u00e9")
    esc_q = RAW_ARGS.index('\\"best')
    required = [
        RAW_ARGS.index("croissants") + len("crois"),  # inside a JSON string
        esc_u + 1,  # right after the backslash of \u00e9
        esc_u + len("\\u00"),  # inside the hex digits of \u00e9
        esc_q + 1,  # between the \ and the " of an escaped quote
        RAW_ARGS.index("12345") + 3,  # inside an integer
        RAW_ARGS.index("4.75") + 2,  # inside a float, right after the dot
    ]
    # The positions really are where the case says they are.
    assert [RAW_ARGS[pos - 1 : pos + 1] for pos in required] == [
        "ss",
        "\\u",
        "0e",
        '\\"',
        "34",
        ".7",
    ]
    pieces = split_into(RAW_ARGS, 40, required)
    assert len(pieces) == 40
    assert all(pieces)
    assert "".join(pieces) == RAW_ARGS
    offsets = set(accumulate(len(p) for p in pieces))
    assert set(required) <= offsets
    return pieces


def anthropic_tool_turn(pieces: list[str]) -> list[AIMessageChunk]:
    return [
        anthropic_message_start(472),
        chunk([{"type": "text", "text": "", "citations": None, "index": 0}]),
        anthropic_text("I'll look", 0),
        anthropic_text(" that up.", 0),
        anthropic_tool_use_start("toolu_01A09q90qw90lq917835lq9", "search_places", 1),
        *[anthropic_json_delta(p, 1) for p in pieces],
        anthropic_message_delta(87, "tool_use"),
    ]


def test_anthropic_tool_args_split_over_40_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[bytes | str] = []
    real_decode = msgspec.json.decode

    def counting_decode(buf: Any, *args: Any, **kwargs: Any) -> Any:
        decoded.append(buf)
        return real_decode(buf, *args, **kwargs)

    monkeypatch.setattr(tool_calls_module.msgspec.json, "decode", counting_decode)

    pieces = forty_pieces()
    tool_id = "toolu_01A09q90qw90lq917835lq9"
    events, result, before_finish = run(anthropic_tool_turn(pieces))

    # Nothing was parsed while streaming, and no call was closed early.
    assert not any(isinstance(e, ToolCallEnd) for e in before_finish)
    assert decoded == [RAW_ARGS]

    expected_args = json.loads(RAW_ARGS)
    assert expected_args["query"] == 'café "best" croissants near the Louvre'
    assert seq(events) == [
        ("llm_start",),
        ("token", "text", "I'll look"),
        ("token", "text", " that up."),
        ("tool_start", tool_id, "search_places", 0),
        *[("tool_delta", tool_id, p) for p in pieces],
        ("tool_end", tool_id, "search_places", expected_args, None, None),
        (
            "llm_end",
            "tool_use",
            {"input_tokens": 472, "output_tokens": 87, "total_tokens": 559, "source": "provider"},
            "tool_use",
        ),
    ]
    assert "".join(tool_deltas(events, tool_id)) == RAW_ARGS
    # No argument byte in any token.
    for token in texts(events):
        assert token in ("I'll look", " that up.")
        assert not any(p in token for p in pieces if len(p) > 1)
    assert result.text == "I'll look that up."
    [parsed] = result.tool_calls
    assert (parsed.id, parsed.name, parsed.args, parsed.error, parsed.raw) == (
        tool_id,
        "search_places",
        expected_args,
        None,
        RAW_ARGS,
    )


def test_split_helper_honours_required_boundaries() -> None:
    assert split_into("abcdef", 3, [1]) == ["a", "b", "cdef"]
    assert split_into("abcdef", 3, [5]) == ["ab", "cde", "f"]
    assert split_into("0123456789", 10, []) == list("0123456789")


# ---------------------------------------------------------------------------------------------
# Parallel and multiple tool calls
# ---------------------------------------------------------------------------------------------


def test_two_parallel_calls_interleaved_by_index() -> None:
    chunks = [
        openai_role_chunk(),
        openai_tool_chunk(index=0, id="call_A", name="get_weather"),
        openai_tool_chunk(index=1, id="call_B", name="get_time"),
        openai_tool_chunk(index=0, args='{"city": '),
        openai_tool_chunk(index=1, args='{"tz": '),
        openai_tool_chunk(index=0, args='"Paris"}'),
        openai_tool_chunk(index=1, args='"CET"}'),
        chunk("", meta={**OPENAI_FINISH_META, "finish_reason": "tool_calls"}),
        openai_usage_chunk(40, 30),
    ]
    events, result, _ = run(chunks)
    assert seq(events) == [
        ("llm_start",),
        ("tool_start", "call_A", "get_weather", 0),
        ("tool_start", "call_B", "get_time", 1),
        ("tool_delta", "call_A", '{"city": '),
        ("tool_delta", "call_B", '{"tz": '),
        ("tool_delta", "call_A", '"Paris"}'),
        ("tool_delta", "call_B", '"CET"}'),
        ("tool_end", "call_A", "get_weather", {"city": "Paris"}, None, None),
        ("tool_end", "call_B", "get_time", {"tz": "CET"}, None, None),
        (
            "llm_end",
            "tool_calls",
            {"input_tokens": 40, "output_tokens": 30, "total_tokens": 70, "source": "provider"},
            "tool_use",
        ),
    ]
    assert result.text == ""
    assert [(c.id, c.args) for c in result.tool_calls] == [
        ("call_A", {"city": "Paris"}),
        ("call_B", {"tz": "CET"}),
    ]


def test_three_calls_one_never_gets_argument_bytes() -> None:
    chunks = [
        openai_tool_chunk(index=0, id="call_1", name="lookup"),
        openai_tool_chunk(index=0, args='{"id": 7}'),
        openai_tool_chunk(index=1, id="call_2", name="now"),
        openai_tool_chunk(index=2, id="call_3", name="lookup"),
        openai_tool_chunk(index=2, args='{"id": '),
        openai_tool_chunk(index=2, args="8}"),
    ]
    events, result, _ = run(chunks)
    assert seq(events)[1:-1] == [
        ("tool_start", "call_1", "lookup", 0),
        ("tool_delta", "call_1", '{"id": 7}'),
        ("tool_start", "call_2", "now", 1),
        ("tool_start", "call_3", "lookup", 2),
        ("tool_delta", "call_3", '{"id": '),
        ("tool_delta", "call_3", "8}"),
        ("tool_end", "call_1", "lookup", {"id": 7}, None, None),
        ("tool_end", "call_2", "now", {}, None, None),
        ("tool_end", "call_3", "lookup", {"id": 8}, None, None),
    ]
    assert tool_deltas(events, "call_2") == []
    assert result.tool_calls[1].args == {}
    assert result.tool_calls[1].raw == ""


def test_name_and_id_first_with_empty_args_then_arguments() -> None:
    events: list[BaseEvent] = []
    stream = LLMCallStream(events.append, call_id=CALL_ID)
    stream.start()
    stream.feed(openai_tool_chunk(index=0, id="call_1", name="book", args=""))
    assert seq(events) == [("llm_start",), ("tool_start", "call_1", "book", 0)]
    stream.feed(openai_tool_chunk(index=0, args='{"seat"'))
    stream.feed(openai_tool_chunk(index=0, args=': "12A"}'))
    # Nothing closed (nothing to dispatch) before finish().
    assert not any(isinstance(e, ToolCallEnd) for e in events)
    result = stream.finish()
    assert seq(events)[2:] == [
        ("tool_delta", "call_1", '{"seat"'),
        ("tool_delta", "call_1", ': "12A"}'),
        ("tool_end", "call_1", "book", {"seat": "12A"}, None, None),
        ("llm_end", "tool_calls", None, "tool_use"),
    ]
    check_invariants(events, result)


@pytest.mark.parametrize(
    ("partials", "expected_deltas"),
    [
        pytest.param([""], [], id="partial_json-empty-only"),
        pytest.param(["{}"], ["{}"], id="partial_json-braces"),
        pytest.param(["{", "}"], ["{", "}"], id="partial_json-split-braces"),
    ],
)
def test_no_argument_tool(partials: list[str], expected_deltas: list[str]) -> None:
    events: list[BaseEvent] = []
    stream = LLMCallStream(events.append, call_id=CALL_ID)
    stream.start()
    stream.feed(anthropic_message_start(30))
    stream.feed(anthropic_tool_use_start("toolu_1", "get_time", 1))
    for p in partials:
        stream.feed(anthropic_json_delta(p, 1))
    stream.feed(anthropic_message_delta(12, "tool_use"))
    # args == {} only at the end.
    assert not any(isinstance(e, ToolCallEnd) for e in events)
    result = stream.finish()
    assert seq(events)[1:-1] == [
        ("tool_start", "toolu_1", "get_time", 0),
        *[("tool_delta", "toolu_1", d) for d in expected_deltas],
        ("tool_end", "toolu_1", "get_time", {}, None, None),
    ]
    assert result.tool_calls[0].args == {}
    check_invariants(events, result)


def test_anthropic_two_sequential_tool_uses_after_text() -> None:
    chunks = [
        anthropic_message_start(100),
        anthropic_text("Both.", 0),
        anthropic_tool_use_start("toolu_A", "get_weather", 1),
        anthropic_json_delta('{"city": "Oslo"}', 1),
        anthropic_tool_use_start("toolu_B", "get_weather", 2),
        anthropic_json_delta('{"city": ', 2),
        anthropic_json_delta('"Rome"}', 2),
        anthropic_message_delta(50, "tool_use"),
    ]
    events, result, _ = run(chunks)
    assert seq(events)[1:-1] == [
        ("token", "text", "Both."),
        ("tool_start", "toolu_A", "get_weather", 0),
        ("tool_delta", "toolu_A", '{"city": "Oslo"}'),
        ("tool_start", "toolu_B", "get_weather", 1),
        ("tool_delta", "toolu_B", '{"city": '),
        ("tool_delta", "toolu_B", '"Rome"}'),
        ("tool_end", "toolu_A", "get_weather", {"city": "Oslo"}, None, None),
        ("tool_end", "toolu_B", "get_weather", {"city": "Rome"}, None, None),
    ]
    assert result.text == "Both."


# -- Ollama, Bedrock, placeholder ids ---------------------------------------------------------


def test_ollama_openai_compat_all_index_0_with_distinct_ids() -> None:
    chunks = [
        chunk(
            "",
            tcc=[tcc(name="get_weather", args='{"city":"Paris"}', id="call_k2b1", index=0)],
        ),
        chunk(
            "",
            tcc=[tcc(name="get_weather", args='{"city":"Tokyo"}', id="call_x9q3", index=0)],
        ),
        chunk("", meta={"finish_reason": "tool_calls"}),
    ]
    events, _, _ = run(chunks)
    assert seq(events)[1:-1] == [
        ("tool_start", "call_k2b1", "get_weather", 0),
        ("tool_delta", "call_k2b1", '{"city":"Paris"}'),
        ("tool_start", "call_x9q3", "get_weather", 1),
        ("tool_delta", "call_x9q3", '{"city":"Tokyo"}'),
        ("tool_end", "call_k2b1", "get_weather", {"city": "Paris"}, None, None),
        ("tool_end", "call_x9q3", "get_weather", {"city": "Tokyo"}, None, None),
    ]


def test_ollama_native_calls_without_index_in_one_chunk() -> None:
    # langchain-ollama builds chunks from `tool_calls` (uuid ids); langchain-core derives
    # tool_call_chunks with index None and json.dumps'd args.
    message = AIMessageChunk(
        content="",
        tool_calls=[
            tool_call(name="add", args={"a": 1, "b": 2}, id="5d3e8f2a"),
            tool_call(name="mul", args={"a": 3, "b": 4}, id="9c1b7e40"),
        ],
    )
    assert [c["index"] for c in message.tool_call_chunks] == [None, None]
    done = chunk(
        "",
        usage=usage(60, 25),
        meta={"model": "llama3.1", "done": True, "done_reason": "stop"},
    )
    events, result, _ = run([message, done])
    assert seq(events)[1:-1] == [
        ("tool_start", "5d3e8f2a", "add", 0),
        ("tool_delta", "5d3e8f2a", '{"a": 1, "b": 2}'),
        ("tool_start", "9c1b7e40", "mul", 1),
        ("tool_delta", "9c1b7e40", '{"a": 3, "b": 4}'),
        ("tool_end", "5d3e8f2a", "add", {"a": 1, "b": 2}, None, None),
        ("tool_end", "9c1b7e40", "mul", {"a": 3, "b": 4}, None, None),
    ]
    assert the_end(events).finish_reason == "stop"
    assert result.role == "tool_use"


@pytest.mark.parametrize("index", [0, None], ids=["index-0", "no-index"])
def test_calls_without_ids_each_complete_in_own_chunk(index: int | None) -> None:
    chunks = [
        chunk("", tcc=[tcc(name="get_weather", args='{"city": "Paris"}', index=index)]),
        chunk("", tcc=[tcc(name="get_weather", args='{"city": "Lima"}', index=index)]),
        chunk("", tcc=[tcc(name="get_time", args="{}", index=index)]),
    ]
    events, result, _ = run(chunks)
    assert seq(events)[1:-1] == [
        ("tool_start", "c1-tool-0", "get_weather", 0),
        ("tool_delta", "c1-tool-0", '{"city": "Paris"}'),
        ("tool_start", "c1-tool-1", "get_weather", 1),
        ("tool_delta", "c1-tool-1", '{"city": "Lima"}'),
        ("tool_start", "c1-tool-2", "get_time", 2),
        ("tool_delta", "c1-tool-2", "{}"),
        ("tool_end", "c1-tool-0", "get_weather", {"city": "Paris"}, None, None),
        ("tool_end", "c1-tool-1", "get_weather", {"city": "Lima"}, None, None),
        ("tool_end", "c1-tool-2", "get_time", {}, None, None),
    ]
    assert len(result.tool_calls) == 3


def test_bedrock_same_index_different_ids_are_separate() -> None:
    chunks = [
        bedrock_tool_start("tooluse_A1", "get_weather", 0),
        bedrock_tool_args('{"city": ', 0),
        bedrock_tool_args('"Paris"}', 0),
        bedrock_tool_start("tooluse_B2", "get_time", 0),
        bedrock_tool_args('{"tz": "CET"}', 0),
        bedrock_stop("tool_use"),
        bedrock_metadata(80, 40),
    ]
    events, _, _ = run(chunks)
    assert seq(events)[1:-1] == [
        ("tool_start", "tooluse_A1", "get_weather", 0),
        ("tool_delta", "tooluse_A1", '{"city": '),
        ("tool_delta", "tooluse_A1", '"Paris"}'),
        ("tool_start", "tooluse_B2", "get_time", 1),
        ("tool_delta", "tooluse_B2", '{"tz": "CET"}'),
        ("tool_end", "tooluse_A1", "get_weather", {"city": "Paris"}, None, None),
        ("tool_end", "tooluse_B2", "get_time", {"tz": "CET"}, None, None),
    ]
    assert the_end(events).finish_reason == "tool_use"


@pytest.mark.parametrize("placeholder", ["null", "", "None"])
def test_placeholder_id_is_not_an_id(placeholder: str) -> None:
    chunks = [
        chunk("", tcc=[tcc(name="search", args="", id=placeholder, index=0)]),
        chunk("", tcc=[tcc(args='{"q": ', id=placeholder, index=0)]),
        chunk("", tcc=[tcc(args='"x"}', id=placeholder, index=0)]),
        chunk("", tcc=[tcc(name="fetch", args='{"u": 1}', id=placeholder, index=0)]),
    ]
    events, result, _ = run(chunks)
    assert seq(events)[1:-1] == [
        ("tool_start", "c1-tool-0", "search", 0),
        ("tool_delta", "c1-tool-0", '{"q": '),
        ("tool_delta", "c1-tool-0", '"x"}'),
        ("tool_start", "c1-tool-1", "fetch", 1),
        ("tool_delta", "c1-tool-1", '{"u": 1}'),
        ("tool_end", "c1-tool-0", "search", {"q": "x"}, None, None),
        ("tool_end", "c1-tool-1", "fetch", {"u": 1}, None, None),
    ]
    assert all(placeholder != c.id for c in result.tool_calls)


def test_id_and_name_repeated_on_every_chunk_is_one_call() -> None:
    # Some OpenAI-compatible servers repeat id and name in every tool-call delta.
    chunks = [
        chunk("", tcc=[tcc(name="search", args='{"q"', id="call_r", index=0)]),
        chunk("", tcc=[tcc(name="search", args=': "a', id="call_r", index=0)]),
        chunk("", tcc=[tcc(name="search", args='b"}', id="call_r", index=0)]),
    ]
    events, _, _ = run(chunks)
    assert seq(events)[1:-1] == [
        ("tool_start", "call_r", "search", 0),
        ("tool_delta", "call_r", '{"q"'),
        ("tool_delta", "call_r", ': "a'),
        ("tool_delta", "call_r", 'b"}'),
        ("tool_end", "call_r", "search", {"q": "ab"}, None, None),
    ]


def test_arguments_before_name_are_held_until_start() -> None:
    chunks = [
        chunk("", tcc=[tcc(args='{"a":', index=0)]),
        chunk("", tcc=[tcc(name="f", id="call_late", args="", index=0)]),
        chunk("", tcc=[tcc(args=" 1}", index=0)]),
    ]
    events, _, _ = run(chunks)
    assert seq(events)[1:-1] == [
        ("tool_start", "call_late", "f", 0),
        ("tool_delta", "call_late", '{"a":'),
        ("tool_delta", "call_late", " 1}"),
        ("tool_end", "call_late", "f", {"a": 1}, None, None),
    ]


def test_call_that_never_gets_a_name_is_still_closed_visibly() -> None:
    events, result, _ = run([chunk("", tcc=[tcc(args='{"a": 1}', index=3)])])
    body = events[1:-1]
    assert seq(body)[:2] == [
        ("tool_start", "c1-tool-0", "", 0),
        ("tool_delta", "c1-tool-0", '{"a": 1}'),
    ]
    end = body[2]
    assert isinstance(end, ToolCallEnd)
    assert end.error == "the model sent a tool call without a tool name"
    assert end.args is None
    assert end.raw == '{"a": 1}'
    assert result.tool_calls[0].error == end.error


# ---------------------------------------------------------------------------------------------
# Invalid arguments, text-to-tool transition
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "error_prefix"),
    [
        pytest.param('{"city": "Par', "the tool arguments are not valid JSON: ", id="truncated"),
        pytest.param('{"city": Paris}', "the tool arguments are not valid JSON: ", id="invalid"),
        pytest.param(
            "[1, 2]", "the tool arguments must be a JSON object, got list", id="not-object"
        ),
    ],
)
def test_bad_arguments_end_with_error_and_raw(raw: str, error_prefix: str) -> None:
    half = len(raw) // 2
    chunks = [
        openai_tool_chunk(index=0, id="call_1", name="get_weather"),
        openai_tool_chunk(index=0, args=raw[:half]),
        openai_tool_chunk(index=0, args=raw[half:]),
        chunk("", meta=OPENAI_FINISH_META),
    ]
    events, result, _ = run(chunks)
    end = events[-2]
    assert isinstance(end, ToolCallEnd)
    assert end.tool_call_id == "call_1"
    assert end.name == "get_weather"
    assert end.args is None
    assert end.raw == raw
    assert end.error is not None
    assert end.error.startswith(error_prefix)
    [parsed] = result.tool_calls
    assert (parsed.args, parsed.raw, parsed.error) == (None, raw, end.error)
    assert the_end(events).finish_reason == "stop"


def test_text_to_tool_transition_inside_one_openai_chunk() -> None:
    both = chunk(
        "Let me check.",
        tcc=[tcc(name="get_weather", args='{"city": "Paris"}', id="call_1", index=0)],
    )
    events, result, _ = run([chunk("Sure. "), both])
    assert seq(events)[1:-1] == [
        ("token", "text", "Sure. "),
        ("token", "text", "Let me check."),
        ("tool_start", "call_1", "get_weather", 0),
        ("tool_delta", "call_1", '{"city": "Paris"}'),
        ("tool_end", "call_1", "get_weather", {"city": "Paris"}, None, None),
    ]
    assert result.text == "Sure. Let me check."


def test_text_to_tool_transition_inside_one_anthropic_chunk() -> None:
    both = chunk(
        [
            {"type": "text", "text": "Checking.", "index": 0},
            {"type": "tool_use", "id": "toolu_1", "name": "ping", "input": {}, "index": 1},
        ],
        tcc=[tcc(name="ping", args="", id="toolu_1", index=1)],
    )
    events, result, _ = run([both, anthropic_json_delta('{"host": "a"}', 1)])
    assert seq(events)[1:-1] == [
        ("token", "text", "Checking."),
        ("tool_start", "toolu_1", "ping", 0),
        ("tool_delta", "toolu_1", '{"host": "a"}'),
        ("tool_end", "toolu_1", "ping", {"host": "a"}, None, None),
    ]
    assert result.text == "Checking."


# ---------------------------------------------------------------------------------------------
# Reasoning
# ---------------------------------------------------------------------------------------------


def test_deepseek_reasoning_content() -> None:
    chunks = [
        chunk("", extra={"reasoning_content": "Let me"}),
        chunk("", extra={"reasoning_content": " think."}),
        chunk("The answer"),
        chunk(" is 4.", meta={"finish_reason": "stop"}),
    ]
    events, result, _ = run(chunks)
    assert seq(events)[1:-1] == [
        ("token", "reasoning", "Let me"),
        ("token", "reasoning", " think."),
        ("token", "text", "The answer"),
        ("token", "text", " is 4."),
    ]
    assert result.text == "The answer is 4."
    assert result.reasoning == [{"type": "reasoning", "text": "Let me think."}]
    assert "think" not in result.text


ANTHROPIC_SIG = (
    "ErUBCkYIBRgCIkDlLKW0i8s0Z+Hn1Jq4Zu8dXzY9Jx1X3l5Q8M6+Q0zq0fQk+ZuF5b2X0t2jZr0m5Gv0zQv"
    "2uVb6JqUqXK5vL8mEgxqK5Z7QJ0W9Y3tE1UaDN8rA3s="
)


def test_anthropic_thinking_and_signature_split_over_chunks() -> None:
    chunks = [
        anthropic_message_start(50),
        chunk([{"type": "thinking", "thinking": "", "signature": "", "index": 0}]),
        anthropic_thinking("The user", 0),
        anthropic_thinking(" wants 2+2.", 0),
        anthropic_thinking(" That is 4.", 0),
        anthropic_signature(ANTHROPIC_SIG, 0),
        chunk([{"type": "text", "text": "", "citations": None, "index": 1}]),
        anthropic_text("4", 1),
        anthropic_message_delta(30, "end_turn"),
    ]
    events, result, _ = run(chunks)
    assert seq(events)[1:-1] == [
        ("token", "reasoning", "The user"),
        ("token", "reasoning", " wants 2+2."),
        ("token", "reasoning", " That is 4."),
        ("token", "text", "4"),
    ]
    assert result.text == "4"
    assert result.reasoning == [
        {
            "type": "reasoning",
            "shape": "thinking",
            "text": "The user wants 2+2. That is 4.",
            "signature": ANTHROPIC_SIG,
        }
    ]
    assert all(ANTHROPIC_SIG not in e.token for e in events if isinstance(e, LLMToken))


def test_interleaved_thinking_blocks_and_redacted_thinking_kept_in_order() -> None:
    redacted = {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a", "index": 1}
    chunks = [
        anthropic_thinking("First.", 0),
        anthropic_signature("sigA", 0),
        chunk([redacted]),
        anthropic_thinking("Second.", 2),
        anthropic_signature("sigB", 2),
        anthropic_text("Done", 3),
    ]
    events, result, _ = run(chunks)
    assert seq(events)[1:-1] == [
        ("token", "reasoning", "First."),
        ("token", "reasoning", "Second."),
        ("token", "text", "Done"),
    ]
    assert result.reasoning == [
        {"type": "reasoning", "shape": "thinking", "text": "First.", "signature": "sigA"},
        redacted,
        {"type": "reasoning", "shape": "thinking", "text": "Second.", "signature": "sigB"},
    ]
    # Verbatim: the stored block equals the provider's block, and is not the same object.
    assert result.reasoning[1] is not redacted
    assert result.text == "Done"


def test_signature_delivered_in_two_pieces_stays_one_block() -> None:
    chunks = [
        anthropic_thinking("Hmm.", 0),
        anthropic_signature(ANTHROPIC_SIG[:40], 0),
        anthropic_signature(ANTHROPIC_SIG[40:], 0),
        anthropic_text("Ok", 1),
    ]
    _, result, _ = run(chunks)
    assert result.reasoning == [
        {"type": "reasoning", "shape": "thinking", "text": "Hmm.", "signature": ANTHROPIC_SIG}
    ]


def test_bedrock_reasoning_content_with_signature() -> None:
    chunks = [
        bedrock_reasoning("Checking", 0),
        bedrock_reasoning(" the units.", 0),
        bedrock_reasoning_signature("EqoBCkgIARAB", 0),
        bedrock_text("12 km", 1),
        bedrock_stop("end_turn"),
        bedrock_metadata(30, 20),
    ]
    events, result, _ = run(chunks)
    assert seq(events)[1:-1] == [
        ("token", "reasoning", "Checking"),
        ("token", "reasoning", " the units."),
        ("token", "text", "12 km"),
    ]
    assert result.reasoning == [
        {
            "type": "reasoning",
            "shape": "reasoning_content",
            "text": "Checking the units.",
            "signature": "EqoBCkgIARAB",
        }
    ]
    assert result.text == "12 km"


# ---------------------------------------------------------------------------------------------
# Usage
# ---------------------------------------------------------------------------------------------


def test_usage_only_final_chunk() -> None:
    events, result, _ = run(
        [chunk("Hi"), chunk("", meta=OPENAI_FINISH_META), openai_usage_chunk(21, 9)]
    )
    expected = {"input_tokens": 21, "output_tokens": 9, "total_tokens": 30, "source": "provider"}
    assert the_end(events).usage == expected
    assert result.usage == expected
    assert texts(events) == ["Hi"]


def test_anthropic_input_first_output_last_are_summed() -> None:
    events, result, _ = run(
        [
            anthropic_message_start(1200),
            anthropic_text("Hi"),
            anthropic_message_delta(64, "end_turn"),
        ]
    )
    expected = {
        "input_tokens": 1200,
        "output_tokens": 64,
        "total_tokens": 1264,
        "source": "provider",
    }
    assert the_end(events).usage == expected
    assert result.usage == expected


def test_no_usage_is_none_never_zero() -> None:
    events, result, _ = run([chunk("Hi"), chunk("", meta=OPENAI_FINISH_META)])
    assert the_end(events).usage is None
    assert result.usage is None


# ---------------------------------------------------------------------------------------------
# One big non-streamed message
# ---------------------------------------------------------------------------------------------


def test_single_big_chunk_with_text_and_tool_calls() -> None:
    # A model that does not stream: one chunk carrying everything.
    big = AIMessageChunk(
        content="I'll check both cities.",
        tool_calls=[
            tool_call(name="get_weather", args={"city": "Paris"}, id="call_1"),
            tool_call(name="get_weather", args={"city": "Rome"}, id="call_2"),
        ],
        response_metadata={"finish_reason": "tool_calls"},
        usage_metadata=usage(100, 40),
    )
    events, result, _ = run([big])
    assert seq(events) == [
        ("llm_start",),
        ("token", "text", "I'll check both cities."),
        ("tool_start", "call_1", "get_weather", 0),
        ("tool_delta", "call_1", '{"city": "Paris"}'),
        ("tool_start", "call_2", "get_weather", 1),
        ("tool_delta", "call_2", '{"city": "Rome"}'),
        ("tool_end", "call_1", "get_weather", {"city": "Paris"}, None, None),
        ("tool_end", "call_2", "get_weather", {"city": "Rome"}, None, None),
        (
            "llm_end",
            "tool_calls",
            {"input_tokens": 100, "output_tokens": 40, "total_tokens": 140, "source": "provider"},
            "tool_use",
        ),
    ]
    assert result.text == "I'll check both cities."


def test_whole_anthropic_aimessage_with_blocks() -> None:
    message = AIMessage(
        content=[
            {"type": "text", "text": "Checking."},
            {
                "type": "tool_use",
                "id": "toolu_9",
                "name": "get_weather",
                "input": {"city": "Oslo"},
            },
        ],
        tool_calls=[tool_call(name="get_weather", args={"city": "Oslo"}, id="toolu_9")],
        response_metadata={"stop_reason": "tool_use"},
    )
    events, result, _ = run([message])
    assert seq(events) == [
        ("llm_start",),
        ("token", "text", "Checking."),
        ("tool_start", "toolu_9", "get_weather", 0),
        ("tool_delta", "toolu_9", '{"city":"Oslo"}'),
        ("tool_end", "toolu_9", "get_weather", {"city": "Oslo"}, None, None),
        ("llm_end", "tool_use", None, "tool_use"),
    ]
    assert result.text == "Checking."


def test_whole_openai_aimessage_with_tool_calls() -> None:
    message = AIMessage(
        content="Let me check.",
        tool_calls=[tool_call(name="get_weather", args={"city": "Paris"}, id="call_1")],
        response_metadata={"finish_reason": "tool_calls"},
    )
    events, result, _ = run([message])
    assert seq(events) == [
        ("llm_start",),
        ("token", "text", "Let me check."),
        ("tool_start", "call_1", "get_weather", 0),
        ("tool_delta", "call_1", '{"city":"Paris"}'),
        ("tool_end", "call_1", "get_weather", {"city": "Paris"}, None, None),
        ("llm_end", "tool_calls", None, "tool_use"),
    ]
    assert [c.args for c in result.tool_calls] == [{"city": "Paris"}]


def test_whole_aimessage_with_only_tool_calls() -> None:
    message = AIMessage(content="", tool_calls=[tool_call(name="now", args={}, id="call_7")])
    events, _, _ = run([message])
    assert seq(events)[1:-1] == [
        ("tool_start", "call_7", "now", 0),
        ("tool_end", "call_7", "now", {}, None, None),
    ]


# ---------------------------------------------------------------------------------------------
# Cumulative mode
# ---------------------------------------------------------------------------------------------


def test_cumulative_deltas_become_suffixes() -> None:
    events, result, _ = run([chunk("He"), chunk("Hello"), chunk("Hello!")], cumulative=True)
    assert texts(events) == ["He", "llo", "!"]
    assert result.text == "Hello!"


def test_cumulative_repeated_snapshot_emits_nothing_and_newline_is_kept() -> None:
    chunks = [
        chunk("Hello"),
        chunk("Hello"),
        chunk("Hello\n"),
        chunk("Hello\n\n"),
        chunk("Hello\n\nBye"),
    ]
    events, result, _ = run(chunks, cumulative=True)
    assert texts(events) == ["Hello", "\n", "\n", "Bye"]
    assert result.text == "Hello\n\nBye"


def test_without_cumulative_repeated_deltas_are_kept() -> None:
    events, result, _ = run([chunk("He"), chunk("He"), chunk("\n"), chunk("\n")])
    assert texts(events) == ["He", "He", "\n", "\n"]
    assert result.text == "HeHe\n\n"


# ---------------------------------------------------------------------------------------------
# fail()
# ---------------------------------------------------------------------------------------------


def test_fail_closes_open_tool_call_with_error() -> None:
    chunks = [
        chunk("Looking"),
        openai_tool_chunk(index=0, id="call_1", name="get_weather"),
        openai_tool_chunk(index=0, args='{"city": "Pa'),
    ]
    events = run_fail(chunks, reason="cancelled")
    assert seq(events)[:4] == [
        ("llm_start",),
        ("token", "text", "Looking"),
        ("tool_start", "call_1", "get_weather", 0),
        ("tool_delta", "call_1", '{"city": "Pa'),
    ]
    end = events[4]
    assert isinstance(end, ToolCallEnd)
    assert end.tool_call_id == "call_1"
    assert end.name == "get_weather"
    assert end.args is None
    assert end.raw == '{"city": "Pa'
    assert end.error == "the model call ended before the arguments were complete (cancelled)"
    assert seq(events[5:]) == [("llm_end", "cancelled", None, "answer")]


def test_fail_without_tool_calls_keeps_usage_and_role() -> None:
    events = run_fail([anthropic_message_start(10), anthropic_text("Hi")], depth=1)
    assert seq(events) == [
        ("llm_start",),
        ("token", "text", "Hi"),
        (
            "llm_end",
            "error",
            {"input_tokens": 10, "output_tokens": 0, "total_tokens": 10, "source": "provider"},
            "internal",
        ),
    ]


def test_fail_closes_every_open_call_but_not_unstarted_fragments() -> None:
    chunks = [
        openai_tool_chunk(index=0, id="call_1", name="a", args='{"x": 1}'),
        openai_tool_chunk(index=1, id="call_2", name="b", args='{"y"'),
        chunk("", tcc=[tcc(args='{"z"', index=5)]),  # never named: never started
    ]
    events = run_fail(chunks, reason="timeout")
    ends = [e for e in events if isinstance(e, ToolCallEnd)]
    assert [(e.tool_call_id, e.raw, e.args) for e in ends] == [
        ("call_1", '{"x": 1}', None),
        ("call_2", '{"y"', None),
    ]
    assert all(e.error is not None and e.error.endswith("(timeout)") for e in ends)
    assert not any(isinstance(e, ToolCallStart) and e.name == "" for e in events)
    assert the_end(events).finish_reason == "timeout"


# ---------------------------------------------------------------------------------------------
# Refusals, and tools the provider executes itself
# ---------------------------------------------------------------------------------------------

REFUSAL = "I'm sorry, I can't help with that."
SEARCH_RESULTS = [
    {
        "encrypted_content": "EqgfCioIARgBIiQ3YTAw",
        "page_age": None,
        "title": "News",
        "type": "web_search_result",
        "url": "https://example.com/n",
    }
]


def anthropic_server_tool_stream() -> list[AIMessageChunk]:
    """Recorded from langchain-anthropic 1.7.10 (tools bound, so content is a block list) on a
    loopback Messages server streaming a `web_search` server tool: the start block, its input
    as `input_json_delta` blocks with no tool-call chunks, the result block, then text."""
    return [
        chunk([], meta={"model_name": "claude-sonnet-4-6", "model_provider": "anthropic"}),
        chunk([{"type": "text", "text": "Let me search. ", "index": 0}]),
        chunk(
            [
                {
                    "id": "srvtoolu_01",
                    "input": {},
                    "name": "web_search",
                    "type": "server_tool_use",
                    "index": 1,
                }
            ]
        ),
        chunk([{"partial_json": '{"query": ', "type": "input_json_delta", "index": 1}]),
        chunk([{"partial_json": '"news"}', "type": "input_json_delta", "index": 1}]),
        chunk(
            [
                {
                    "content": SEARCH_RESULTS,
                    "tool_use_id": "srvtoolu_01",
                    "type": "web_search_tool_result",
                    "index": 2,
                }
            ]
        ),
        chunk([{"type": "text", "text": "Here is the news.", "index": 3}]),
        anthropic_message_delta(40, "end_turn"),
    ]


OPENAI_WEB_SEARCH_CALL = {  # langchain-openai 1.7.4, Responses API, `output_item.done`
    "id": "ws_67c9fa0502748190b7dd390736892e100be649c1a5ff9609",
    "action": {"query": "positive news story today", "type": "search"},
    "status": "completed",
    "type": "web_search_call",
    "index": 0,
}
OPENAI_CODE_INTERPRETER_CALL = {
    "id": "ci_68245",
    "code": "print(2 ** 10)",
    "container_id": "cntr_6824",
    "outputs": [{"type": "logs", "logs": "1024\n"}],
    "status": "completed",
    "type": "code_interpreter_call",
    "index": 1,
}
OPENAI_MCP_CALL = {
    "id": "mcp_6824",
    "arguments": '{"sides": 6}',
    "name": "roll",
    "output": "4",
    "server_label": "dice",
    "type": "mcp_call",
    "index": 0,
}


def no_index(block: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k != "index"}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        pytest.param(
            chunk("", extra={"refusal": REFUSAL}),
            [RefusalDelta(REFUSAL)],
            id="openai-chat-refusal",
        ),
        pytest.param(
            chunk([{"type": "refusal", "refusal": REFUSAL}]),
            [RefusalDelta(REFUSAL)],
            id="openai-responses-refusal-block",
        ),
        pytest.param(
            anthropic_server_tool_stream()[2],
            [
                ToolChunk(
                    1,
                    "srvtoolu_01",
                    "web_search",
                    "",
                    {
                        "id": "srvtoolu_01",
                        "input": {},
                        "name": "web_search",
                        "type": "server_tool_use",
                    },
                )
            ],
            id="anthropic-server-tool-use-start",
        ),
        pytest.param(
            # Stateless, a server tool's input fragment looks like any other: LLMCallStream
            # routes it by index to the server tool it continues.
            anthropic_server_tool_stream()[3],
            [ToolChunk(1, None, None, '{"query": ')],
            id="anthropic-server-tool-input-delta",
        ),
        pytest.param(
            anthropic_server_tool_stream()[5],
            [
                ProviderToolResult(
                    "srvtoolu_01",
                    SEARCH_RESULTS,
                    None,
                    {
                        "content": SEARCH_RESULTS,
                        "tool_use_id": "srvtoolu_01",
                        "type": "web_search_tool_result",
                    },
                )
            ],
            id="anthropic-web-search-tool-result",
        ),
        pytest.param(
            chunk(
                [
                    {
                        "type": "bash_code_execution_tool_result",
                        "tool_use_id": "srvtoolu_02",
                        "content": {
                            "type": "bash_code_execution_tool_result_error",
                            "error_code": "unavailable",
                        },
                        "index": 4,
                    }
                ]
            ),
            [
                ProviderToolResult(
                    "srvtoolu_02",
                    {"type": "bash_code_execution_tool_result_error", "error_code": "unavailable"},
                    "unavailable",
                    {
                        "type": "bash_code_execution_tool_result",
                        "tool_use_id": "srvtoolu_02",
                        "content": {
                            "type": "bash_code_execution_tool_result_error",
                            "error_code": "unavailable",
                        },
                    },
                )
            ],
            id="anthropic-code-execution-error-result",
        ),
        pytest.param(
            AIMessage(
                content=[
                    {
                        "id": "srvtoolu_01",
                        "input": {},
                        "name": "web_search",
                        "type": "server_tool_use",
                        "index": 1,
                        "partial_json": '{"query": "news"}',
                    }
                ]
            ),
            [
                ToolChunk(
                    1,
                    "srvtoolu_01",
                    "web_search",
                    '{"query": "news"}',
                    {
                        "id": "srvtoolu_01",
                        "input": {},
                        "name": "web_search",
                        "type": "server_tool_use",
                    },
                )
            ],
            id="anthropic-aggregated-server-tool-use",
        ),
        pytest.param(
            chunk([{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}]),
            [],
            id="client-tool-result-is-not-a-provider-tool",
        ),
        pytest.param(
            chunk([OPENAI_WEB_SEARCH_CALL]),
            [
                ToolChunk(
                    0,
                    OPENAI_WEB_SEARCH_CALL["id"],
                    "web_search",
                    '{"action":{"query":"positive news story today","type":"search"}}',
                    no_index(OPENAI_WEB_SEARCH_CALL),
                ),
                ProviderToolResult(
                    OPENAI_WEB_SEARCH_CALL["id"], {"status": "completed"}, None, None
                ),
            ],
            id="openai-responses-web-search-call",
        ),
        pytest.param(
            chunk([OPENAI_MCP_CALL]),
            [
                ToolChunk(0, "mcp_6824", "roll", '{"sides":6}', no_index(OPENAI_MCP_CALL)),
                ProviderToolResult("mcp_6824", {"name": "roll", "output": "4"}, None, None),
            ],
            id="openai-responses-mcp-call",
        ),
        pytest.param(
            AIMessage(
                content=[
                    {
                        "type": "server_tool_call",
                        "id": "srvtoolu_01",
                        "name": "web_search",
                        "args": {"query": "news"},
                    },
                    {
                        "type": "server_tool_result",
                        "tool_call_id": "srvtoolu_01",
                        "status": "success",
                        "output": "results",
                    },
                ]
            ),
            [
                ToolChunk(
                    None,
                    "srvtoolu_01",
                    "web_search",
                    '{"query":"news"}',
                    {
                        "type": "server_tool_call",
                        "id": "srvtoolu_01",
                        "name": "web_search",
                        "args": {"query": "news"},
                    },
                ),
                ProviderToolResult(
                    "srvtoolu_01",
                    "results",
                    None,
                    {
                        "type": "server_tool_result",
                        "tool_call_id": "srvtoolu_01",
                        "status": "success",
                        "output": "results",
                    },
                ),
            ],
            id="langchain-v1-server-tool-blocks",
        ),
    ],
)
def test_normalize_refusals_and_provider_tools(message: Any, expected: list[Any]) -> None:
    assert normalize_chunk(message) == expected


def test_a_refusal_is_the_answer_text_and_the_finish_reason() -> None:
    events, result, _ = run(
        [chunk("", extra={"refusal": REFUSAL}), chunk("", meta=OPENAI_FINISH_META)]
    )
    assert texts(events) == [REFUSAL]
    assert (result.text, result.finish_reason, result.role) == (REFUSAL, "refusal", "answer")


def test_an_anthropic_server_tool_is_reported_as_run_by_the_provider() -> None:
    events, result, _ = run(anthropic_server_tool_stream())
    args = {"query": "news"}
    assert seq(events) == [
        ("llm_start",),
        ("token", "text", "Let me search. "),
        ("tool_start", "srvtoolu_01", "web_search", 0),
        ("tool_delta", "srvtoolu_01", '{"query": '),
        ("tool_delta", "srvtoolu_01", '"news"}'),
        ("tool_end", "srvtoolu_01", "web_search", args, None, None),
        ("ran", "srvtoolu_01", "web_search", args, "provider"),
        ("ran_end", "srvtoolu_01", "ok", SEARCH_RESULTS, None),
        ("token", "text", "Here is the news."),
        ("llm_end", "end_turn", {**usage(0, 40), "source": "provider"}, "answer"),
    ]
    provider_marked = [e for e in events if isinstance(e, (ToolCallStart, ToolCallEnd))]
    assert all(e.executor == "provider" for e in provider_marked)
    assert result.tool_calls == [], "nothing for the agent to run"
    assert [(c.id, c.name, c.args) for c in result.provider_tools] == [
        ("srvtoolu_01", "web_search", args)
    ]
    assert result.content == [
        {"type": "text", "text": "Let me search. "},
        {"id": "srvtoolu_01", "input": args, "name": "web_search", "type": "server_tool_use"},
        {"content": SEARCH_RESULTS, "tool_use_id": "srvtoolu_01", "type": "web_search_tool_result"},
        {"type": "text", "text": "Here is the news."},
    ]


def test_a_server_tool_beside_a_client_tool_leaves_only_the_client_tool_to_run() -> None:
    stream = anthropic_server_tool_stream()[:-1]
    stream += [  # a client tool_use after it: langchain-anthropic gives it tool-call chunks
        anthropic_tool_use_start("toolu_w", "get_weather", 4),
        anthropic_json_delta('{"city": ', 4),
        anthropic_json_delta('"Paris"}', 4),
        anthropic_message_delta(60, "tool_use"),
    ]
    events, result, _ = run(stream)
    assert [c.name for c in result.tool_calls] == ["get_weather"]
    assert [c.name for c in result.provider_tools] == ["web_search"]
    assert result.role == "tool_use"
    assert [b.get("type") for b in result.content] == [
        "text",
        "server_tool_use",
        "web_search_tool_result",
        "text",
    ], "client tool calls go back as tool_calls, not as content"


def test_a_server_tool_without_its_result_is_closed_but_not_reported_as_run() -> None:
    # `pause_turn`: the provider stopped before running the tool.
    events, result, _ = run(anthropic_server_tool_stream()[:5])
    assert not any(isinstance(e, (ToolStart, ToolEnd)) for e in events)
    [end] = [e for e in events if isinstance(e, ToolCallEnd)]
    assert (end.name, end.args, end.executor) == ("web_search", {"query": "news"}, "provider")
    assert result.tool_calls == []


def test_openai_built_in_tools_arrive_whole_and_are_reported_as_run() -> None:
    events, result, _ = run(
        [
            chunk([OPENAI_CODE_INTERPRETER_CALL]),
            chunk([{"type": "text", "text": "It is 1024.", "index": 2}]),
        ]
    )
    kinds = [compact(e)[0] for e in events]
    assert kinds == [
        "llm_start",
        "tool_start",
        "tool_delta",
        "tool_end",
        "ran",
        "ran_end",
        "token",
        "llm_end",
    ]
    ran_end = next(e for e in events if isinstance(e, ToolEnd))
    assert ran_end.output == {
        "outputs": [{"type": "logs", "logs": "1024\n"}],
        "status": "completed",
    }
    assert result.tool_calls == [] and result.role == "answer"
    assert result.content == [
        no_index(OPENAI_CODE_INTERPRETER_CALL),
        {"type": "text", "text": "It is 1024."},
    ]


# ---------------------------------------------------------------------------------------------
# Every recorded provider stream satisfies the invariants
# ---------------------------------------------------------------------------------------------


def _all_streams() -> dict[str, list[Any]]:
    return {
        "openai-text": [openai_role_chunk(), chunk("Hi"), openai_usage_chunk()],
        "openai-parallel": [
            openai_tool_chunk(index=0, id="call_A", name="a"),
            openai_tool_chunk(index=1, id="call_B", name="b"),
            openai_tool_chunk(index=0, args="{}"),
            openai_tool_chunk(index=1, args='{"k": [1, 2]}'),
        ],
        "anthropic-40": anthropic_tool_turn(forty_pieces()),
        "anthropic-thinking": [
            anthropic_thinking("x"),
            anthropic_signature("s"),
            anthropic_text("y", 1),
        ],
        "bedrock": [bedrock_reasoning("r"), bedrock_text("t", 1), bedrock_tool_start("tu", "f", 2)],
        "deepseek": [chunk("", extra={"reasoning_content": "r"}), chunk("t")],
        "gemini": [chunk(["a", "b"]), chunk([{"type": "text", "text": "c"}])],
        "invalid-json": [openai_tool_chunk(index=0, id="call_1", name="f", args="{")],
        "anthropic-server-tool": anthropic_server_tool_stream(),
        "openai-web-search": [chunk([OPENAI_WEB_SEARCH_CALL]), chunk("Found it.")],
        "refusal": [chunk("", extra={"refusal": REFUSAL}), openai_usage_chunk()],
    }


@pytest.mark.parametrize("name", sorted(_all_streams()))
def test_every_stream_satisfies_invariants(name: str) -> None:
    chunks = _all_streams()[name]
    events, result, before = run(chunks)  # run() checks the invariants
    # Only a provider's tool call ends early: its result arrived, so it is complete.
    assert not any(
        isinstance(e, LLMEnd) or (isinstance(e, ToolCallEnd) and e.executor == "local")
        for e in before
    )
    reasoning_tokens = texts(events, "reasoning")
    for token in reasoning_tokens:
        assert token not in result.text
    fail_events = run_fail(chunks)  # and so does the failure path
    assert len([e for e in fail_events if isinstance(e, LLMEnd)]) == 1
