"""`openai:` end to end: the real ChatOpenAI / openai SDK against a loopback chat-completions
server speaking SSE `chat.completion.chunk` frames."""

from __future__ import annotations

import json

import pytest

from agentcast.models import resolve
from agentcast.sources.retry import RetryPolicy
from tests.providers import openai_wire as wire
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


def model(server: ScriptedServer, **options):
    options.setdefault("max_retries", 0)
    return opened(
        resolve(
            "openai:gpt-4o-mini",
            base_url=server.url("/v1"),
            api_key="test",
            stream_usage=True,
            **options,
        )
    )


def answer(usage: bool = True) -> wire.ChunkStream:
    stream = wire.ChunkStream(usage_field=usage).role().text(*ANSWER_PARTS).finish("stop")
    if usage:
        stream.usage(120, 9)
    return stream.done()


async def test_split_arguments_parse_once_and_history_is_valid():
    tools = ToolLog()
    first = wire.ChunkStream().role().tool_start(0, "call_w1", "get_weather")
    for part in ARG_PARTS:
        first.tool_args(0, part)
    first.finish("tool_calls").usage(50, 40).done()
    async with ScriptedServer([first.reply(), answer().reply()]) as server:
        events, agent = await run(model(server), tools)

    assert_tool_calls(events, [("get_weather", WEATHER_ARGS)])
    assert [d.delta for d in of(events, "tool_call_delta")] == ARG_PARTS
    assert tools.calls == [("get_weather", WEATHER_ARGS)]
    assert_no_argument_bytes_in_text(events)
    assert text(events) == ANSWER
    end = events[-1]
    assert (end.outcome, end.output) == ("success", ANSWER)
    llm_ends = of(events, "llm_end")
    assert [e.role for e in llm_ends] == ["tool_use", "answer"]
    assert [e.finish_reason for e in llm_ends] == ["tool_calls", "stop"]
    assert llm_ends[0].usage == {
        "input_tokens": 50,
        "output_tokens": 40,
        "total_tokens": 90,
        "source": "provider",
    }
    assert llm_ends[1].usage["output_tokens"] == 9
    assert end.metrics["usage"]["total_tokens"] == 90 + 129

    # What the provider received: a streamed request with the tools, then a valid history.
    assert len(server.requests) == 2
    req1, req2 = (r.json for r in server.requests)
    assert all(r.path == "/v1/chat/completions" for r in server.requests)
    assert server.requests[0].headers["authorization"] == "Bearer test"
    assert req1["stream"] is True and req1["stream_options"] == {"include_usage": True}
    assert [t["function"]["name"] for t in req1["tools"]] == ["get_weather", "get_time", "ping"]
    roles = [m["role"] for m in req2["messages"]]
    assert roles == ["user", "assistant", "tool"]
    assistant, result = req2["messages"][1:]
    [call] = assistant["tool_calls"]
    assert call["id"] == "call_w1" and call["function"]["name"] == "get_weather"

    assert json.loads(call["function"]["arguments"]) == WEATHER_ARGS
    assert result["tool_call_id"] == "call_w1"
    assert result["content"] == 'sunny in Paris "Left Bank" café for 12345 days (metric)'


async def test_three_parallel_calls_interleaved_by_index_stay_separate():
    tools = ToolLog()
    first = wire.ChunkStream().role().text("Let me check. ")
    for index, (name, _) in enumerate(PARALLEL):
        first.tool_start(index, f"call_p{index}", name)
    # ping (index 2) never receives an argument byte
    for index, fragment in interleave([chop(json.dumps(args)) for _, args in PARALLEL[:2]]):
        first.tool_args(index, fragment)
    first.finish("tool_calls").usage(60, 30).done()
    async with ScriptedServer([first.reply(), answer().reply()]) as server:
        events, _ = await run(model(server), tools)

    ids = assert_tool_calls(events, PARALLEL)
    assert ids == ["call_p0", "call_p1", "call_p2"]
    assert sorted(tools.calls) == sorted(PARALLEL)
    assert_no_argument_bytes_in_text(events)
    first_call = of(events, "llm_start")[0].call_id
    assert "".join(e.token for e in of(events, "llm_token") if e.call_id == first_call) == (
        "Let me check. "
    )
    req2 = server.requests[1].json
    assistant = req2["messages"][1]
    assert [c["id"] for c in assistant["tool_calls"]] == ids
    assert [m.get("tool_call_id") for m in req2["messages"][2:]] == ids
    assert [m["role"] for m in req2["messages"]] == ["user", "assistant", "tool", "tool", "tool"]


async def test_usage_is_null_when_the_server_sends_no_usage_chunk():
    async with ScriptedServer([answer(usage=False).reply()]) as server:
        events, _ = await run(model(server))
    [end] = of(events, "llm_end")
    assert end.usage is None and end.finish_reason == "stop"
    assert events[-1].metrics["usage"] is None
    assert events[-1].metrics["tokens"] == len(ANSWER_PARTS)  # counted events, not a made-up 0
    assert text(events) == ANSWER


async def test_a_single_sse_chunk_with_everything_still_yields_start_token_end():
    whole = wire.ChunkStream()
    whole.chunk({"role": "assistant", "content": ANSWER}, finish_reason="stop").usage(5, 6).done()
    async with ScriptedServer([whole.reply()]) as server:
        events, _ = await run(model(server))
    assert [e.type for e in events if e.type.startswith("llm_")] == [
        "llm_start",
        "llm_token",
        "llm_end",
    ]
    assert text(events) == ANSWER == events[-1].output
    assert of(events, "llm_end")[0].usage["total_tokens"] == 11


async def test_a_non_streaming_model_still_yields_start_token_end_and_tool_calls():
    tools = ToolLog()
    call = {
        "id": "call_whole",
        "type": "function",
        "function": {"name": "get_weather", "arguments": json.dumps(WEATHER_ARGS)},
    }
    replies = [wire.completion(None, [call]), wire.completion(ANSWER)]
    async with ScriptedServer(replies) as server:
        events, _ = await run(model(server, disable_streaming=True), tools)
    assert all(r.json.get("stream") in (None, False) for r in server.requests)
    assert_tool_calls(events, [("get_weather", WEATHER_ARGS)])
    assert tools.calls == [("get_weather", WEATHER_ARGS)]
    kinds = [e.type for e in events if e.type.startswith("llm_")]
    assert kinds == ["llm_start", "llm_end", "llm_start", "llm_token", "llm_end"]
    assert text(events) == ANSWER == events[-1].output
    assert [e.usage["total_tokens"] for e in of(events, "llm_end")] == [18, 18]
    assert server.requests[1].json["messages"][2]["tool_call_id"] == "call_whole"


async def test_reasoning_content_from_a_compatible_server_never_leaks_into_text():
    # ChatOpenAI targets the official API only: it drops DeepSeek/vLLM `reasoning_content`
    # deltas (langchain_openai/chat_models/base.py module docstring), so there is no reasoning
    # stream to check here; what must hold is that none of it reaches the answer text.
    stream = wire.ChunkStream().role().reasoning("Think", "ing hard").text(*ANSWER_PARTS)
    stream.finish("stop").usage(5, 6).done()
    async with ScriptedServer([stream.reply()]) as server:
        events, _ = await run(model(server))
    assert text(events) == ANSWER
    assert text(events, "reasoning") == ""
    assert all("Think" not in e.token for e in of(events, "llm_token"))


# -- errors -------------------------------------------------------------------------------------

TOKENS = [f"w{i:02d} " for i in range(100)]


async def test_429_before_output_is_retried_by_agentcast():
    limited = wire.error(429, "Rate limit reached", "requests", "rate_limit_exceeded")
    async with ScriptedServer([limited, answer().reply()]) as server:
        events, _ = await run(model(server))
    assert len(server.requests) == 2
    [retrying] = of(events, "error")
    assert (retrying.code, retrying.retryable, retrying.partial) == ("retrying", True, False)
    assert "Rate limit" in retrying.error
    # the failed attempt is closed before the retry starts; the answer streams once
    starts, ends = of(events, "llm_start"), of(events, "llm_end")
    assert [e.finish_reason for e in ends] == ["error", "stop"]
    assert starts[1].seq > retrying.seq > ends[0].seq
    assert text(events) == ANSWER
    assert (events[-1].outcome, events[-1].output) == ("success", ANSWER)


async def test_500_twice_then_success_makes_three_requests():
    boom = wire.error(500, "The server had an error", "server_error")
    async with ScriptedServer([boom, boom, answer().reply()]) as server:
        events, _ = await run(model(server))
    assert len(server.requests) == 3
    assert [e.code for e in of(events, "error")] == ["retrying", "retrying"]
    assert (events[-1].outcome, events[-1].output) == ("success", ANSWER)


async def test_500_three_times_exhausts_the_policy():
    boom = wire.error(500, "The server had an error", "server_error")
    async with ScriptedServer([boom, boom, boom]) as server:
        events, _ = await run(model(server))
    assert len(server.requests) == 3
    errors = of(events, "error")
    assert [e.code for e in errors] == ["retrying", "retrying", "provider_error"]
    assert (errors[-1].retryable, errors[-1].partial) == (True, False)
    assert events[-1].outcome == "error" and events[-1].output is None


async def test_400_is_not_retried():
    bad = wire.error(400, "Invalid 'messages'", "invalid_request_error", "invalid_value")
    async with ScriptedServer([bad]) as server:
        events, _ = await run(model(server))
    assert len(server.requests) == 1
    [error] = of(events, "error")
    assert (error.code, error.retryable, error.partial) == ("provider_error", False, False)
    assert "Invalid 'messages'" in error.error
    assert (events[-1].outcome, events[-1].output) == ("error", None)
    assert of(events, "llm_token") == []


async def test_a_connection_cut_after_47_of_100_tokens_ends_with_a_partial_error():
    stream = wire.ChunkStream().role().text(*TOKENS).finish("stop").usage(5, 100).done()
    async with ScriptedServer([stream.reply(cut_after=1 + 47)]) as server:
        events, agent = await run(model(server))
    assert len(server.requests) == 1, "no silent restart"
    tokens = [e.token for e in of(events, "llm_token")]
    assert tokens == TOKENS[:47]
    [error] = of(events, "error")
    assert error.partial is True and error.retryable is True
    assert error.code == "provider_error"
    end = events[-1]
    assert (end.outcome, end.output) == ("error", "".join(TOKENS[:47]))
    [llm_end] = of(events, "llm_end")
    assert llm_end.finish_reason == "error" and llm_end.usage is None
    history = await agent.store.load("s1")
    assert history[-1].pop("metadata")["outcome"] == "error"  # display data for the web page
    assert history[-1] == {
        "role": "assistant",
        "content": "".join(TOKENS[:47]),
        "status": "interrupted",
    }


async def test_resolve_leaves_retries_to_agentcast():
    limited = wire.error(429, "Rate limit reached", "requests", "rate_limit_exceeded")
    limited.headers = {**limited.headers, "retry-after-ms": "1"}  # keep the SDK's wait short
    async with ScriptedServer([limited, answer().reply()]) as server:
        plain = opened(resolve("openai:gpt-4o-mini", base_url=server.url("/v1"), api_key="test"))
        events, _ = await run(plain, retry=RetryPolicy(retries=0))
    assert len(server.requests) == 1
    [error] = of(events, "error")
    assert error.retryable is True and events[-1].outcome == "error"
