"""`anthropic:` end to end: the real ChatAnthropic / anthropic SDK against a loopback Messages
server speaking named SSE events."""

from __future__ import annotations

import json

import pytest

from agentcast.models import resolve
from agentcast.sources.retry import RetryPolicy
from tests.providers import anthropic_wire as wire
from tests.providers.common import (
    ANSWER,
    ANSWER_PARTS,
    ARG_PARTS,
    PARALLEL,
    WEATHER_ARGS,
    ToolLog,
    assert_no_argument_bytes_in_text,
    assert_tool_calls,
    chop,
    interleave,
    of,
    opened,
    run,
    text,
)
from tests.providers.servers import ScriptedServer

pytestmark = pytest.mark.anyio

THINKING = ["The user wants ", "the weather; ", "I should call the tool."]
SIGNATURE = ["EqQBCgIYAhIM1gbcDa9GJwZA2b3h", "GgxF0kVQmgvBnZ4iH0hIjDf2", "Zs8k+/aBc=="]


def model(server: ScriptedServer, **options):
    options.setdefault("max_retries", 0)
    return opened(
        resolve("anthropic:claude-sonnet-4-6", base_url=server.url(), api_key="test", **options)
    )


def answer() -> wire.EventStream:
    return (
        wire.EventStream(input_tokens=140)
        .start()
        .ping()
        .text_block(0, *ANSWER_PARTS)
        .finish("end_turn", 9)
    )


async def test_split_arguments_parse_once_and_history_is_valid():
    tools = ToolLog()
    first = wire.EventStream().start().ping().text_block(0, "I'll check. ")
    first.tool_block(1, "toolu_w1", "get_weather", ARG_PARTS).finish("tool_use", 40)
    async with ScriptedServer([first.reply(), answer().reply()]) as server:
        events, _ = await run(model(server), tools)

    assert_tool_calls(events, [("get_weather", WEATHER_ARGS)])
    assert [d.delta for d in of(events, "tool_call_delta")] == ARG_PARTS
    assert tools.calls == [("get_weather", WEATHER_ARGS)]
    assert_no_argument_bytes_in_text(events)
    assert text(events) == "I'll check. " + ANSWER
    end = events[-1]
    assert (end.outcome, end.output) == ("success", ANSWER)
    llm_ends = of(events, "llm_end")
    assert [e.finish_reason for e in llm_ends] == ["tool_use", "end_turn"]
    assert llm_ends[0].usage == {
        "input_tokens": 25,
        "output_tokens": 40,
        "total_tokens": 65,
        "source": "provider",
    }
    assert llm_ends[1].usage["total_tokens"] == 149

    assert len(server.requests) == 2
    assert all(r.path == "/v1/messages" for r in server.requests)
    headers = server.requests[0].headers
    assert "test" in (
        headers.get("x-api-key"),
        headers.get("authorization", "").removeprefix("Bearer "),
    )
    assert "anthropic-version" in headers
    req1, req2 = (r.json for r in server.requests)
    assert req1["stream"] is True
    assert [t["name"] for t in req1["tools"]] == ["get_weather", "get_time", "ping"]
    assert [m["role"] for m in req2["messages"]] == ["user", "assistant", "user"]
    assistant, results = req2["messages"][1:]
    blocks = assistant["content"]
    assert [b["type"] for b in blocks] == ["text", "tool_use"]
    assert blocks[0]["text"] == "I'll check. "
    assert (blocks[1]["id"], blocks[1]["name"], blocks[1]["input"]) == (
        "toolu_w1",
        "get_weather",
        WEATHER_ARGS,
    )
    [result] = results["content"]
    assert result["type"] == "tool_result" and result["tool_use_id"] == "toolu_w1"


@pytest.mark.parametrize("layout", ["sequential", "interleaved"])
async def test_three_parallel_calls_stay_separate(layout):
    tools = ToolLog()
    fragments = [chop(json.dumps(args)) if args else [] for _, args in PARALLEL]
    first = wire.EventStream().start()
    if layout == "sequential":  # what the API sends: one block after the other
        for index, (name, _) in enumerate(PARALLEL):
            first.tool_block(index, f"toolu_p{index}", name, fragments[index])
    else:  # every block open at once, argument deltas interleaved by index
        for index, (name, _) in enumerate(PARALLEL):
            first.tool_start(index, f"toolu_p{index}", name)
        for index, fragment in interleave(fragments):
            first.tool_args(index, fragment)
        for index in range(len(PARALLEL)):
            first.block_stop(index)
    first.finish("tool_use", 30)
    async with ScriptedServer([first.reply(), answer().reply()]) as server:
        events, _ = await run(model(server), tools)

    ids = assert_tool_calls(events, PARALLEL)
    assert ids == ["toolu_p0", "toolu_p1", "toolu_p2"]
    assert sorted(tools.calls) == sorted(PARALLEL)
    assert_no_argument_bytes_in_text(events)
    req2 = server.requests[1].json
    uses = [b for b in req2["messages"][1]["content"] if b["type"] == "tool_use"]
    assert [(b["id"], b["input"]) for b in uses] == [
        (f"toolu_p{i}", args) for i, (_, args) in enumerate(PARALLEL)
    ]
    results = req2["messages"][2]["content"]
    assert [b["tool_use_id"] for b in results] == ids


async def test_thinking_streams_as_reasoning_and_keeps_its_signature():
    stream = wire.EventStream().start().thinking_block(0, THINKING, SIGNATURE)
    stream.text_block(1, *ANSWER_PARTS).finish("end_turn", 30)
    async with ScriptedServer([stream.reply()]) as server:
        events, agent = await run(
            model(server, thinking={"type": "enabled", "budget_tokens": 1024}, max_tokens=4096)
        )
    assert server.requests[0].json["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert [e.token for e in of(events, "llm_token") if e.kind == "reasoning"] == THINKING
    assert text(events) == ANSWER == events[-1].output
    assert all(s not in e.token for e in of(events, "llm_token") for s in SIGNATURE)
    [assistant] = [m for m in await agent.store.load("s1") if m["role"] == "assistant"]
    assert assistant["reasoning"] == [
        {
            "type": "reasoning",
            "text": "".join(THINKING),
            "shape": "thinking",
            "signature": "".join(SIGNATURE),
        }
    ]


async def test_thinking_block_is_sent_back_before_the_tool_use():
    tools = ToolLog()
    first = wire.EventStream().start().thinking_block(0, THINKING, SIGNATURE)
    first.tool_block(1, "toolu_t1", "get_weather", ARG_PARTS).finish("tool_use", 40)
    async with ScriptedServer([first.reply(), answer().reply()]) as server:
        events, _ = await run(
            model(server, thinking={"type": "enabled", "budget_tokens": 1024}, max_tokens=4096),
            tools,
        )
    assert events[-1].outcome == "success"
    blocks = server.requests[1].json["messages"][1]["content"]
    assert blocks[0] == {
        "type": "thinking",
        "thinking": "".join(THINKING),
        "signature": "".join(SIGNATURE),
    }
    assert blocks[-1]["type"] == "tool_use"


async def test_a_non_streaming_model_still_yields_start_token_end():
    tools = ToolLog()
    use = {"type": "tool_use", "id": "toolu_whole", "name": "get_weather", "input": WEATHER_ARGS}
    replies = [
        wire.message([{"type": "text", "text": "Checking. "}, use], "tool_use"),
        wire.message([{"type": "text", "text": ANSWER}]),
    ]
    async with ScriptedServer(replies) as server:
        events, _ = await run(model(server, disable_streaming=True), tools)
    assert all(not r.json.get("stream") for r in server.requests)
    assert_tool_calls(events, [("get_weather", WEATHER_ARGS)])
    assert tools.calls == [("get_weather", WEATHER_ARGS)]
    kinds = [e.type for e in events if e.type.startswith("llm_")]
    assert kinds == ["llm_start", "llm_token", "llm_end"] * 2
    assert text(events) == "Checking. " + ANSWER
    assert events[-1].output == ANSWER
    assert [e.usage["total_tokens"] for e in of(events, "llm_end")] == [20, 20]
    assert_no_argument_bytes_in_text(events)


# -- errors -------------------------------------------------------------------------------------

TOKENS = [f"w{i:02d} " for i in range(100)]


@pytest.mark.parametrize(("status", "kind"), [(429, "rate_limit_error"), (529, "overloaded_error")])
async def test_rate_limit_or_overload_before_output_is_retried(status, kind):
    async with ScriptedServer([wire.error(status, kind, "slow down"), answer().reply()]) as server:
        events, _ = await run(model(server))
    assert len(server.requests) == 2
    [retrying] = of(events, "error")
    assert (retrying.code, retrying.retryable, retrying.partial) == ("retrying", True, False)
    assert text(events) == ANSWER
    assert (events[-1].outcome, events[-1].output) == ("success", ANSWER)


async def test_500_twice_then_success_makes_three_requests():
    boom = wire.error(500, "api_error", "Internal server error")
    async with ScriptedServer([boom, boom, answer().reply()]) as server:
        events, _ = await run(model(server))
    assert len(server.requests) == 3
    assert [e.code for e in of(events, "error")] == ["retrying", "retrying"]
    assert (events[-1].outcome, events[-1].output) == ("success", ANSWER)


async def test_400_is_not_retried():
    bad = wire.error(400, "invalid_request_error", "messages: roles must alternate")
    async with ScriptedServer([bad]) as server:
        events, _ = await run(model(server))
    assert len(server.requests) == 1
    [error] = of(events, "error")
    assert (error.code, error.retryable, error.partial) == ("provider_error", False, False)
    assert "roles must alternate" in error.error
    assert (events[-1].outcome, events[-1].output) == ("error", None)


async def test_a_connection_cut_after_47_of_100_tokens_ends_with_a_partial_error():
    stream = wire.EventStream().start().text_block(0, *TOKENS).finish("end_turn", 100)
    # message_start and content_block_start, then 47 text deltas
    async with ScriptedServer([stream.reply(cut_after=2 + 47)]) as server:
        events, agent = await run(model(server))
    assert len(server.requests) == 1, "no silent restart"
    assert [e.token for e in of(events, "llm_token")] == TOKENS[:47]
    [error] = of(events, "error")
    assert error.partial is True and error.retryable is True
    end = events[-1]
    assert (end.outcome, end.output) == ("error", "".join(TOKENS[:47]))
    history = await agent.store.load("s1")
    assert history[-1]["status"] == "interrupted"


async def test_an_error_event_after_tokens_ends_with_a_partial_error():
    stream = wire.EventStream().start().text_block(0, *TOKENS[:47], stop=False)
    stream.error("overloaded_error", "Overloaded")
    async with ScriptedServer([stream.reply()]) as server:
        events, _ = await run(model(server))
    assert len(server.requests) == 1
    assert text(events) == "".join(TOKENS[:47])
    [error] = of(events, "error")
    assert error.partial is True and "Overloaded" in error.error
    assert (events[-1].outcome, events[-1].output) == ("error", "".join(TOKENS[:47]))


async def test_an_overloaded_event_before_output_is_retried():
    overloaded = wire.EventStream().start().ping().error("overloaded_error", "Overloaded")
    async with ScriptedServer([overloaded.reply(), answer().reply()]) as server:
        events, _ = await run(model(server))
    assert len(server.requests) == 2
    assert [e.code for e in of(events, "error")] == ["retrying"]
    assert events[-1].outcome == "success"


async def test_resolve_leaves_retries_to_agentcast():
    limited = wire.error(429, "rate_limit_error", "slow down")
    limited.headers = {**limited.headers, "retry-after-ms": "1"}  # keep the SDK's wait short
    async with ScriptedServer([limited, answer().reply()]) as server:
        plain = opened(
            resolve("anthropic:claude-sonnet-4-6", base_url=server.url(), api_key="test")
        )
        events, _ = await run(plain, retry=RetryPolicy(retries=0))
    assert len(server.requests) == 1
    [error] = of(events, "error")
    assert error.retryable is True and events[-1].outcome == "error"
