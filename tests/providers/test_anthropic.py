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


# -- tools the API runs itself (server tools) ---------------------------------------------------

WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}
SEARCH_PARTS = ['{"query": ', '"weather Paris', ' today"}']
SEARCH_ARGS = {"query": "weather Paris today"}
SEARCH_RESULTS = [
    {
        "type": "web_search_result",
        "title": "Paris weather",
        "url": "https://example.com/paris",
        "encrypted_content": "EqgfCioIARgBIiQ3YTAwMjY1Mi1jZjg0LTRkMDctODk0Mi03",
        "page_age": None,
    }
]


def searched(stream: wire.EventStream, first: int = 1) -> wire.EventStream:
    """A `server_tool_use` web search at index `first` and its result block after it."""
    stream.server_tool_block(first, "srvtoolu_01", "web_search", SEARCH_PARTS)
    return stream.server_result_block(
        first + 1, "web_search_tool_result", "srvtoolu_01", SEARCH_RESULTS
    )


async def test_a_server_tool_streams_as_provider_executed_and_is_never_run_here():
    tools = ToolLog()
    first = searched(wire.EventStream().start().text_block(0, "Let me search. "))
    first.text_block(3, "Found it. ").tool_block(4, "toolu_w1", "get_weather", ARG_PARTS)
    first.finish("tool_use", 60, server_tool_use={"web_search_requests": 1})
    async with ScriptedServer([first.reply(), answer().reply()]) as server:
        events, _ = await run(model(server), tools, provider_tools=(WEB_SEARCH,))

    assert tools.calls == [("get_weather", WEATHER_ARGS)], "only the client tool ran here"
    assert not of(events, "error") and events[-1].outcome == "success"
    named = ("tool_call_start", "tool_call_end", "tool_start", "tool_end")
    assert all(e.name for e in events if e.type in named), "no nameless tool call"
    starts = of(events, "tool_call_start")
    assert [(s.tool_call_id, s.name, s.executor) for s in starts] == [
        ("srvtoolu_01", "web_search", "provider"),
        ("toolu_w1", "get_weather", "local"),
    ]
    search_deltas = [
        d.delta for d in of(events, "tool_call_delta") if d.tool_call_id == "srvtoolu_01"
    ]
    assert search_deltas == SEARCH_PARTS
    ends = {e.tool_call_id: e for e in of(events, "tool_call_end")}
    assert (ends["srvtoolu_01"].args, ends["srvtoolu_01"].error) == (SEARCH_ARGS, None)
    assert ends["srvtoolu_01"].executor == "provider"
    ran = [
        (e.type, e.tool_call_id, e.executor) for e in events if e.type in ("tool_start", "tool_end")
    ]
    assert ran == [
        ("tool_start", "srvtoolu_01", "provider"),
        ("tool_end", "srvtoolu_01", "provider"),
        ("tool_start", "toolu_w1", "local"),
        ("tool_end", "toolu_w1", "local"),
    ]
    search_start, search_end = (
        e for e in events if e.type in ("tool_start", "tool_end") and e.executor == "provider"
    )
    assert (search_start.name, search_start.input) == ("web_search", SEARCH_ARGS)
    assert (search_end.status, search_end.output) == ("ok", SEARCH_RESULTS)
    # The provider's tool ran inside the model call: reported between its llm_start and llm_end.
    first_end = of(events, "llm_end")[0]
    assert events.index(search_end) < events.index(first_end)
    assert first_end.role == "tool_use" and first_end.finish_reason == "tool_use"
    assert text(events) == "Let me search. Found it. " + ANSWER

    req1, req2 = (r.json for r in server.requests)
    assert WEB_SEARCH in req1["tools"]
    blocks = req2["messages"][1]["content"]
    assert blocks == [
        {"type": "text", "text": "Let me search. "},
        {
            "type": "server_tool_use",
            "id": "srvtoolu_01",
            "name": "web_search",
            "input": SEARCH_ARGS,
        },
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_01", "content": SEARCH_RESULTS},
        {"type": "text", "text": "Found it. "},
        {"type": "tool_use", "id": "toolu_w1", "name": "get_weather", "input": WEATHER_ARGS},
    ]
    [result] = req2["messages"][2]["content"]
    assert result["type"] == "tool_result" and result["tool_use_id"] == "toolu_w1"


@pytest.mark.parametrize("configured", ["agent_tools", "model_kwargs"])
async def test_an_answer_after_a_server_tool_ends_the_run_in_one_request(configured):
    stream = searched(wire.EventStream().start().text_block(0, "Let me search. "))
    stream.text_block(3, *ANSWER_PARTS).finish("end_turn", 50)
    async with ScriptedServer([stream.reply()]) as server:
        if configured == "agent_tools":
            events, agent = await run(model(server), provider_tools=(WEB_SEARCH,))
        else:  # the server tool given to ChatAnthropic itself: the agent binds no tools
            events, agent = await run(model(server, model_kwargs={"tools": [WEB_SEARCH]}))
    assert server.requests[0].json["tools"] == [WEB_SEARCH]
    assert len(server.requests) == 1, "a provider's tool is not a reason to call again"
    assert not of(events, "error")
    assert (events[-1].outcome, events[-1].output) == ("success", "Let me search. " + ANSWER)
    [llm_end] = of(events, "llm_end")
    assert (llm_end.role, llm_end.finish_reason) == ("answer", "end_turn")
    [assistant] = [m for m in await agent.store.load("s1") if m["role"] == "assistant"]
    assert "tool_calls" not in assistant


async def test_a_failed_server_tool_is_a_tool_error_not_a_run_error():
    error = {"type": "web_search_tool_result_error", "error_code": "max_uses_exceeded"}
    stream = wire.EventStream().start()
    stream.server_tool_block(0, "srvtoolu_02", "web_search", SEARCH_PARTS)
    stream.server_result_block(1, "web_search_tool_result", "srvtoolu_02", error)
    stream.text_block(2, *ANSWER_PARTS).finish("end_turn", 50)
    async with ScriptedServer([stream.reply()]) as server:
        events, _ = await run(model(server), provider_tools=(WEB_SEARCH,))
    [end] = of(events, "tool_end")
    assert (end.status, end.error, end.executor) == ("error", "max_uses_exceeded", "provider")
    assert not of(events, "error")
    assert (events[-1].outcome, events[-1].output) == ("success", ANSWER)


async def test_input_tokens_are_zero_when_message_delta_omits_them():
    """langchain-anthropic ignores `message_start`'s usage and reads only `message_delta`'s: when
    that carries only `output_tokens` the input count it reports is 0 (README: "Where usage
    comes from"). agentcast passes on what the package reports; this pins the known gap."""
    stream = wire.EventStream(input_tokens=140).start().text_block(0, *ANSWER_PARTS)
    stream.finish("end_turn", 9, delta_input_tokens=False)
    async with ScriptedServer([stream.reply()]) as server:
        events, _ = await run(model(server))
    [llm_end] = of(events, "llm_end")
    assert llm_end.usage == {
        "input_tokens": 0,
        "output_tokens": 9,
        "total_tokens": 9,
        "source": "provider",
    }


async def test_a_non_streamed_message_with_a_server_tool_keeps_its_blocks_in_order():
    tools = ToolLog()
    use = {
        "type": "server_tool_use",
        "id": "srvtoolu_03",
        "name": "web_search",
        "input": SEARCH_ARGS,
    }
    result = {
        "type": "web_search_tool_result",
        "tool_use_id": "srvtoolu_03",
        "content": SEARCH_RESULTS,
    }
    call = {"type": "tool_use", "id": "toolu_w3", "name": "get_weather", "input": WEATHER_ARGS}
    replies = [
        wire.message([{"type": "text", "text": "Searching. "}, use, result, call], "tool_use"),
        wire.message([{"type": "text", "text": ANSWER}]),
    ]
    async with ScriptedServer(replies) as server:
        events, _ = await run(
            model(server, disable_streaming=True), tools, provider_tools=(WEB_SEARCH,)
        )
    assert tools.calls == [("get_weather", WEATHER_ARGS)]
    assert [(e.name, e.executor) for e in of(events, "tool_start")] == [
        ("web_search", "provider"),
        ("get_weather", "local"),
    ]
    assert (events[-1].outcome, events[-1].output) == ("success", ANSWER)
    blocks = server.requests[1].json["messages"][1]["content"]
    assert blocks == [{"type": "text", "text": "Searching. "}, use, result, call]
