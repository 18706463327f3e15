"""`ollama:` end to end: the real ChatOllama / ollama client against a loopback `/api/chat`
server speaking NDJSON. Ollama sends tool arguments as whole JSON objects (never split; the
split-argument cases of an Ollama model are those of its OpenAI-compatible `/v1`, see
test_openai.py) and numbers every tool call index 0."""

from __future__ import annotations

import pytest

from agentcast.models import resolve
from tests.providers import ollama_wire as wire
from tests.providers.common import (
    ANSWER,
    ANSWER_PARTS,
    PARALLEL,
    WEATHER_ARGS,
    ToolLog,
    assert_no_argument_bytes_in_text,
    assert_tool_calls,
    of,
    opened,
    run,
    text,
)
from tests.providers.servers import ScriptedServer

pytestmark = pytest.mark.anyio


def model(server: ScriptedServer, **options):
    return opened(resolve("ollama:llama3.1", base_url=server.url(), **options))


def answer() -> wire.LineStream:
    return wire.LineStream().text(*ANSWER_PARTS).done("stop", (120, 9))


async def test_tool_call_and_answer_with_usage_and_a_valid_history():
    tools = ToolLog()
    first = wire.LineStream().tool_calls(("get_weather", WEATHER_ARGS)).done("stop", (40, 20))
    async with ScriptedServer([first.reply(), answer().reply()]) as server:
        events, _ = await run(model(server), tools)

    [call_id] = assert_tool_calls(events, [("get_weather", WEATHER_ARGS)])
    assert tools.calls == [("get_weather", WEATHER_ARGS)]
    assert_no_argument_bytes_in_text(events)
    assert text(events) == ANSWER == events[-1].output
    assert events[-1].outcome == "success"
    llm_ends = of(events, "llm_end")
    assert [e.role for e in llm_ends] == ["tool_use", "answer"]
    assert llm_ends[0].usage == {
        "input_tokens": 40,
        "output_tokens": 20,
        "total_tokens": 60,
        "source": "provider",
    }
    assert llm_ends[1].usage["total_tokens"] == 129

    assert [r.path for r in server.requests] == ["/api/chat", "/api/chat"]
    req1, req2 = (r.json for r in server.requests)
    assert req1["stream"] is True and req1["model"] == "llama3.1"
    assert [t["function"]["name"] for t in req1["tools"]] == ["get_weather", "get_time", "ping"]
    assert [m["role"] for m in req2["messages"]] == ["user", "assistant", "tool"]
    [sent] = req2["messages"][1]["tool_calls"]
    assert sent["function"] == {"name": "get_weather", "arguments": WEATHER_ARGS}
    result = req2["messages"][2]  # Ollama matches results to calls by position, not by id
    assert result["role"] == "tool"
    assert result["content"] == 'sunny in Paris "Left Bank" café for 12345 days (metric)'
    assert call_id in {e.tool_call_id for e in of(events, "tool_end")}


@pytest.mark.parametrize("lines", ["one line per call", "all calls in one line"])
async def test_parallel_calls_all_at_index_0_stay_separate(lines):
    tools = ToolLog()
    first = wire.LineStream()
    if lines == "one line per call":
        for call in PARALLEL:
            first.tool_calls(call)
    else:
        first.tool_calls(*PARALLEL)
    first.done("stop", (40, 20))
    async with ScriptedServer([first.reply(), answer().reply()]) as server:
        events, _ = await run(model(server), tools)

    ids = assert_tool_calls(events, PARALLEL)
    assert sorted(tools.calls) == sorted(PARALLEL)
    assert of(events, "tool_call_start")[0].call_id == of(events, "llm_start")[0].call_id
    req2 = server.requests[1].json
    sent = req2["messages"][1]["tool_calls"]
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in sent] == PARALLEL
    assert [m["role"] for m in req2["messages"][2:]] == ["tool"] * 3
    assert [m["content"] for m in req2["messages"][2:]] == [
        "sunny in Oslo for 3 days (metric)",
        "12:00 in Lima",
        "pong",
    ]
    assert len(set(ids)) == 3


async def test_thinking_streams_as_reasoning_not_text():
    stream = wire.LineStream().thinking("Hmm, ", "the weather.").text(*ANSWER_PARTS).done()
    async with ScriptedServer([stream.reply()]) as server:
        events, agent = await run(model(server, reasoning=True))
    assert server.requests[0].json["think"] is True
    assert [e.token for e in of(events, "llm_token") if e.kind == "reasoning"] == [
        "Hmm, ",
        "the weather.",
    ]
    assert text(events) == ANSWER == events[-1].output
    [assistant] = [m for m in await agent.store.load("s1") if m["role"] == "assistant"]
    assert assistant["reasoning"] == [{"type": "reasoning", "text": "Hmm, the weather."}]


async def test_usage_is_null_when_the_server_sends_no_counts():
    stream = wire.LineStream().text(*ANSWER_PARTS).done("stop", usage=None)
    async with ScriptedServer([stream.reply()]) as server:
        events, _ = await run(model(server))
    [end] = of(events, "llm_end")
    assert end.usage is None and end.finish_reason == "stop"
    assert events[-1].metrics["usage"] is None
    assert text(events) == ANSWER


async def test_a_single_line_with_everything_still_yields_start_token_end():
    whole = wire.LineStream().line(
        {"content": ANSWER},
        done=True,
        done_reason="stop",
        prompt_eval_count=5,
        eval_count=6,
    )
    async with ScriptedServer([whole.reply()]) as server:
        events, _ = await run(model(server))
    kinds = [e.type for e in events if e.type.startswith("llm_")]
    assert kinds == ["llm_start", "llm_token", "llm_end"]
    assert text(events) == ANSWER == events[-1].output
    [end] = of(events, "llm_end")
    assert end.usage["total_tokens"] == 11 and end.finish_reason == "stop"


# -- errors -------------------------------------------------------------------------------------

TOKENS = [f"w{i:02d} " for i in range(100)]


async def test_429_before_output_is_retried():
    busy = wire.error(429, "server busy, please try again.  maximum pending requests exceeded")
    async with ScriptedServer([busy, answer().reply()]) as server:
        events, _ = await run(model(server))
    assert len(server.requests) == 2
    [retrying] = of(events, "error")
    assert (retrying.code, retrying.retryable, retrying.partial) == ("retrying", True, False)
    assert (events[-1].outcome, events[-1].output) == ("success", ANSWER)


async def test_500_twice_then_success_makes_three_requests():
    boom = wire.error(500, "llama runner process has terminated: exit status 2")
    async with ScriptedServer([boom, boom, answer().reply()]) as server:
        events, _ = await run(model(server))
    assert len(server.requests) == 3
    assert [e.code for e in of(events, "error")] == ["retrying", "retrying"]
    assert (events[-1].outcome, events[-1].output) == ("success", ANSWER)


async def test_404_unknown_model_is_not_retried():
    missing = wire.error(404, 'model "llama3.1" not found, try pulling it first')
    async with ScriptedServer([missing]) as server:
        events, _ = await run(model(server))
    assert len(server.requests) == 1
    [error] = of(events, "error")
    assert (error.code, error.retryable, error.partial) == ("provider_error", False, False)
    assert "not found" in error.error
    assert (events[-1].outcome, events[-1].output) == ("error", None)


async def test_a_connection_cut_after_47_of_100_tokens_ends_with_a_partial_error():
    stream = wire.LineStream().text(*TOKENS).done()
    async with ScriptedServer([stream.reply(cut_after=47)]) as server:
        events, agent = await run(model(server))
    assert len(server.requests) == 1, "no silent restart"
    assert [e.token for e in of(events, "llm_token")] == TOKENS[:47]
    [error] = of(events, "error")
    assert error.partial is True and error.retryable is True
    end = events[-1]
    assert (end.outcome, end.output) == ("error", "".join(TOKENS[:47]))
    history = await agent.store.load("s1")
    assert history[-1]["status"] == "interrupted"


async def test_an_error_line_after_tokens_ends_with_a_partial_error():
    stream = wire.LineStream().text(*TOKENS[:47]).error("an error was encountered while running")
    async with ScriptedServer([stream.reply()]) as server:
        events, _ = await run(model(server))
    assert len(server.requests) == 1
    assert text(events) == "".join(TOKENS[:47])
    [error] = of(events, "error")
    assert error.partial is True and "encountered" in error.error
    assert (events[-1].outcome, events[-1].output) == ("error", "".join(TOKENS[:47]))
