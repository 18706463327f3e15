"""`openai:` on the Responses API end to end: the real ChatOpenAI / openai SDK against a loopback
server streaming typed Responses events, for the built-in tools OpenAI runs itself."""

from __future__ import annotations

import json

import pytest

from agentcast.models import resolve
from tests.providers import openai_responses_wire as wire
from tests.providers.common import (
    ANSWER,
    ANSWER_PARTS,
    ARG_PARTS,
    WEATHER_ARGS,
    ToolLog,
    assert_no_argument_bytes_in_text,
    of,
    opened,
    run,
    text,
)
from tests.providers.servers import ScriptedServer

pytestmark = pytest.mark.anyio

WEB_SEARCH = {"type": "web_search_preview"}
QUERY = "weather Paris today"


def model(server: ScriptedServer):
    return opened(resolve("openai:gpt-4.1-mini", base_url=server.url("/v1"), api_key="test"))


async def test_a_built_in_web_search_is_shown_as_run_by_openai_and_sent_back_verbatim():
    tools = ToolLog()
    first = wire.ResponseStream("resp_1").start().web_search("ws_1", QUERY)
    first.function_call("fc_1", "call_1", "get_weather", ARG_PARTS).completed(40, 20)
    second = wire.ResponseStream("resp_2").start().message("msg_2", *ANSWER_PARTS)
    async with ScriptedServer([first.reply(), second.completed(80, 9).reply()]) as server:
        events, _ = await run(model(server), tools, provider_tools=(WEB_SEARCH,))

    assert tools.calls == [("get_weather", WEATHER_ARGS)], "only the function tool ran here"
    assert not of(events, "error")
    assert (events[-1].outcome, events[-1].output) == ("success", ANSWER)
    starts = of(events, "tool_call_start")
    assert [(s.tool_call_id, s.name, s.executor) for s in starts] == [
        ("ws_1", "web_search", "provider"),
        ("call_1", "get_weather", "local"),
    ]
    ran = [e for e in events if e.type in ("tool_start", "tool_end")]
    assert [(e.type, e.tool_call_id, e.executor) for e in ran] == [
        ("tool_start", "ws_1", "provider"),
        ("tool_end", "ws_1", "provider"),
        ("tool_start", "call_1", "local"),
        ("tool_end", "call_1", "local"),
    ]
    assert ran[0].input == {"action": {"type": "search", "query": QUERY}}
    assert (ran[1].status, ran[1].output) == ("ok", {"status": "completed"})
    assert of(events, "llm_end")[0].role == "tool_use"
    assert_no_argument_bytes_in_text(events)
    assert text(events) == ANSWER

    req1, req2 = (r.json for r in server.requests)
    assert all(r.path == "/v1/responses" for r in server.requests)
    assert WEB_SEARCH in req1["tools"]
    items = req2["input"][1:]  # after the user's message
    assert items[0] == {
        "type": "web_search_call",
        "id": "ws_1",
        "status": "completed",
        "action": {"type": "search", "query": QUERY},
    }
    calls = [i for i in items if i.get("type") == "function_call"]
    assert [(c["call_id"], c["name"], json.loads(c["arguments"])) for c in calls] == [
        ("call_1", "get_weather", WEATHER_ARGS)
    ]
    [output] = [i for i in items if i.get("type") == "function_call_output"]
    assert output["call_id"] == "call_1"
    assert len(items) == 3, items


async def test_an_answer_after_a_built_in_tool_ends_the_run_in_one_request():
    stream = wire.ResponseStream().start().web_search("ws_1", QUERY)
    stream.message("msg_1", *ANSWER_PARTS).completed(30, 12)
    async with ScriptedServer([stream.reply()]) as server:
        events, _ = await run(model(server), provider_tools=(WEB_SEARCH,))
    assert len(server.requests) == 1
    assert (events[-1].outcome, events[-1].output) == ("success", ANSWER)
    [llm_end] = of(events, "llm_end")
    assert llm_end.role == "answer"
    assert llm_end.usage == {
        "input_tokens": 30,
        "output_tokens": 12,
        "total_tokens": 42,
        "source": "provider",
    }
