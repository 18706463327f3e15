"""`bedrock:` end to end: the real ChatBedrockConverse / botocore against a loopback
ConverseStream server speaking the binary `application/vnd.amazon.eventstream` format."""

from __future__ import annotations

import json

import pytest

from agentcast.models import resolve
from tests.providers import bedrock_wire as wire
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
from tests.providers.servers import Reply, ScriptedServer

pytestmark = pytest.mark.anyio

STREAM_PATH = "/model/anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse-stream"
REASONING = ["The user wants ", "the weather; ", "I should call the tool."]
SIGNATURE = "ErcBCkgIAxABGAIiQL3x0Xd+signature+of+the+block=="
THINKING = {"thinking": {"type": "enabled", "budget_tokens": 1024}}


def model(server: ScriptedServer, **options):
    options.setdefault("max_retries", 0)  # botocore retries off: agentcast retries
    return opened(
        resolve(
            f"bedrock:{wire.MODEL}",
            endpoint_url=server.url(),
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            **options,
        )
    )


def answer() -> wire.EventStream:
    return wire.EventStream().start().text_block(0, *ANSWER_PARTS).stop("end_turn").metadata(140, 9)


async def test_split_arguments_parse_once_and_history_is_valid():
    tools = ToolLog()
    first = wire.EventStream().start().text_block(0, "I'll check. ")
    first.tool_block(1, "tooluse_w1", "get_weather", ARG_PARTS).stop("tool_use").metadata(40, 20)
    async with ScriptedServer([first.reply(), answer().reply()]) as server:
        events, _ = await run(model(server), tools)

    assert_tool_calls(events, [("get_weather", WEATHER_ARGS)])
    assert [d.delta for d in of(events, "tool_call_delta")] == ARG_PARTS
    assert tools.calls == [("get_weather", WEATHER_ARGS)]
    assert_no_argument_bytes_in_text(events)
    assert text(events) == "I'll check. " + ANSWER
    assert (events[-1].outcome, events[-1].output) == ("success", ANSWER)
    llm_ends = of(events, "llm_end")
    assert [e.finish_reason for e in llm_ends] == ["tool_use", "end_turn"]
    assert llm_ends[0].usage == {
        "input_tokens": 40,
        "output_tokens": 20,
        "total_tokens": 60,
        "source": "provider",
    }
    assert llm_ends[1].usage["total_tokens"] == 149

    assert [r.path for r in server.requests] == [STREAM_PATH, STREAM_PATH]
    headers = server.requests[0].headers
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=test/")
    assert headers["amz-sdk-request"] == "attempt=1; max=1"
    req1, req2 = (r.json for r in server.requests)
    names = [t["toolSpec"]["name"] for t in req1["toolConfig"]["tools"]]
    assert names == ["get_weather", "get_time", "ping"]
    assert [m["role"] for m in req2["messages"]] == ["user", "assistant", "user"]
    assert req2["messages"][1]["content"] == [
        {"text": "I'll check. "},
        {"toolUse": {"toolUseId": "tooluse_w1", "input": WEATHER_ARGS, "name": "get_weather"}},
    ]
    [result] = req2["messages"][2]["content"]
    assert result["toolResult"]["toolUseId"] == "tooluse_w1"
    assert result["toolResult"]["status"] == "success"


@pytest.mark.parametrize("layout", ["interleaved", "same index, distinct ids"])
async def test_three_parallel_calls_stay_separate(layout):
    tools = ToolLog()
    fragments = [chop(json.dumps(args)) if args else [] for _, args in PARALLEL]
    first = wire.EventStream().start()
    if layout == "interleaved":  # all blocks open, input deltas interleaved by block index
        for index, (name, _) in enumerate(PARALLEL):
            first.tool_start(index, f"tooluse_p{index}", name)
        for index, fragment in interleave(fragments):
            first.tool_args(index, fragment)
        for index in range(len(PARALLEL)):
            first.block_stop(index)
    else:  # some Bedrock models number every block 0; only the toolUseId tells them apart
        for index, (name, _) in enumerate(PARALLEL):
            first.tool_block(0, f"tooluse_p{index}", name, fragments[index])
    first.stop("tool_use").metadata(40, 30)
    async with ScriptedServer([first.reply(), answer().reply()]) as server:
        events, _ = await run(model(server), tools)

    ids = assert_tool_calls(events, PARALLEL)
    assert ids == ["tooluse_p0", "tooluse_p1", "tooluse_p2"]
    assert sorted(tools.calls) == sorted(PARALLEL)
    req2 = server.requests[1].json
    uses = [b["toolUse"] for b in req2["messages"][1]["content"] if "toolUse" in b]
    assert [(u["toolUseId"], u["input"]) for u in uses] == [
        (f"tooluse_p{i}", args) for i, (_, args) in enumerate(PARALLEL)
    ]
    results = [b["toolResult"]["toolUseId"] for b in req2["messages"][2]["content"]]
    assert results == ids


async def test_reasoning_streams_as_reasoning_and_keeps_its_signature():
    stream = wire.EventStream().start().reasoning_block(0, REASONING, SIGNATURE)
    stream.text_block(1, *ANSWER_PARTS).stop("end_turn").metadata(30, 40)
    async with ScriptedServer([stream.reply()]) as server:
        events, agent = await run(model(server, additional_model_request_fields=THINKING))
    assert server.requests[0].json["additionalModelRequestFields"] == THINKING
    assert [e.token for e in of(events, "llm_token") if e.kind == "reasoning"] == REASONING
    assert text(events) == ANSWER == events[-1].output
    assert all(SIGNATURE not in e.token for e in of(events, "llm_token"))
    [assistant] = [m for m in await agent.store.load("s1") if m["role"] == "assistant"]
    assert assistant["reasoning"] == [
        {
            "type": "reasoning",
            "text": "".join(REASONING),
            "shape": "reasoning_content",
            "signature": SIGNATURE,
        }
    ]


async def test_reasoning_block_is_sent_back_before_the_tool_use():
    tools = ToolLog()
    first = wire.EventStream().start().reasoning_block(0, REASONING, SIGNATURE)
    first.tool_block(1, "tooluse_t1", "get_weather", ARG_PARTS).stop("tool_use").metadata(40, 20)
    async with ScriptedServer([first.reply(), answer().reply()]) as server:
        events, _ = await run(model(server, additional_model_request_fields=THINKING), tools)
    assert events[-1].outcome == "success"
    blocks = server.requests[1].json["messages"][1]["content"]
    assert blocks[0] == {
        "reasoningContent": {"reasoningText": {"text": "".join(REASONING), "signature": SIGNATURE}}
    }
    assert "toolUse" in blocks[-1]


async def test_usage_is_null_when_the_stream_has_no_metadata_event():
    stream = wire.EventStream().start().text_block(0, *ANSWER_PARTS).stop("end_turn")
    async with ScriptedServer([stream.reply()]) as server:
        events, _ = await run(model(server))
    [end] = of(events, "llm_end")
    assert end.usage is None and end.finish_reason == "end_turn"
    assert events[-1].metrics["usage"] is None
    assert text(events) == ANSWER


async def test_a_non_streaming_model_still_yields_start_token_end():
    tools = ToolLog()
    use = {"toolUse": {"toolUseId": "tooluse_whole", "name": "get_weather", "input": WEATHER_ARGS}}
    replies = [
        wire.converse([{"text": "Checking. "}, use], "tool_use"),
        wire.converse([{"text": ANSWER}]),
    ]
    async with ScriptedServer(replies) as server:
        events, _ = await run(model(server, disable_streaming=True), tools)
    path = STREAM_PATH.removesuffix("-stream")
    assert [r.path for r in server.requests] == [path, path]
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


@pytest.mark.parametrize(
    ("status", "kind"),
    [(429, "ThrottlingException"), (503, "ServiceUnavailableException")],
)
async def test_throttling_before_output_is_retried(status, kind):
    async with ScriptedServer(
        [wire.error(status, kind, "Too many requests"), answer().reply()]
    ) as (server):
        events, _ = await run(model(server))
    assert len(server.requests) == 2
    [retrying] = of(events, "error")
    assert (retrying.code, retrying.retryable, retrying.partial) == ("retrying", True, False)
    assert kind in retrying.error_type or kind in retrying.error
    assert (events[-1].outcome, events[-1].output) == ("success", ANSWER)


async def test_500_twice_then_success_makes_three_requests():
    boom = wire.error(500, "InternalServerException", "The server encountered an error")
    async with ScriptedServer([boom, boom, answer().reply()]) as server:
        events, _ = await run(model(server))
    assert len(server.requests) == 3
    assert [e.code for e in of(events, "error")] == ["retrying", "retrying"]
    assert (events[-1].outcome, events[-1].output) == ("success", ANSWER)


async def test_400_is_not_retried():
    bad = wire.error(400, "ValidationException", "The model returned a validation error")
    async with ScriptedServer([bad]) as server:
        events, _ = await run(model(server))
    assert len(server.requests) == 1
    [error] = of(events, "error")
    assert (error.code, error.retryable, error.partial) == ("provider_error", False, False)
    assert "ValidationException" in error.error
    assert (events[-1].outcome, events[-1].output) == ("error", None)


async def test_a_connection_cut_after_47_of_100_tokens_ends_with_a_partial_error():
    stream = wire.EventStream().start().text_block(0, *TOKENS).stop("end_turn").metadata(5, 100)
    async with ScriptedServer([stream.reply(cut_after=1 + 47)]) as server:
        events, agent = await run(model(server))
    assert len(server.requests) == 1, "no silent restart"
    assert [e.token for e in of(events, "llm_token")] == TOKENS[:47]
    [error] = of(events, "error")
    assert error.partial is True
    end = events[-1]
    assert (end.outcome, end.output) == ("error", "".join(TOKENS[:47]))
    history = await agent.store.load("s1")
    assert history[-1]["status"] == "interrupted"


async def test_an_exception_event_after_tokens_ends_with_a_partial_error():
    stream = wire.EventStream().start().text_block(0, *TOKENS[:47], stop=False)
    stream.exception("modelStreamErrorException", "Model stream error")
    async with ScriptedServer([stream.reply()]) as server:
        events, _ = await run(model(server))
    assert len(server.requests) == 1
    assert text(events) == "".join(TOKENS[:47])
    [error] = of(events, "error")
    assert error.partial is True and "Model stream error" in error.error
    assert (events[-1].outcome, events[-1].output) == ("error", "".join(TOKENS[:47]))


async def test_a_stream_without_message_stop_is_an_error_not_success():
    stream = wire.EventStream().start().text_block(0, *TOKENS[:5])
    async with ScriptedServer([stream.reply()]) as server:
        events, _ = await run(model(server))
    assert len(server.requests) == 1
    [error] = of(events, "error")
    assert error.partial is True and "messageStop" in error.error
    assert (events[-1].outcome, events[-1].output) == ("error", "".join(TOKENS[:5]))


async def test_a_throttling_event_before_output_is_retried():
    throttled = wire.EventStream().start().exception("throttlingException", "Too many tokens")
    async with ScriptedServer([throttled.reply(), answer().reply()]) as server:
        events, _ = await run(model(server))
    assert len(server.requests) == 2
    assert [e.code for e in of(events, "error")] == ["retrying"]
    assert events[-1].outcome == "success"


async def test_an_unmodelled_502_from_a_gateway_is_retried():
    gateway = Reply(
        status=502, headers={"Content-Type": "text/html"}, parts=[b"<html>Bad Gateway</html>"]
    )
    async with ScriptedServer([gateway, answer().reply()]) as server:
        events, _ = await run(model(server))
    assert len(server.requests) == 2
    assert [e.code for e in of(events, "error")] == ["retrying"]
    assert events[-1].outcome == "success"


@pytest.mark.parametrize("failure", ["connection cut", "no messageStop"])
async def test_a_transient_stream_failure_is_reported_retryable(failure):
    stream = wire.EventStream().start().text_block(0, *TOKENS[:5], stop=False)
    cut = None
    if failure == "connection cut":
        stream.block_stop(0).stop("end_turn")
        cut = 1 + 5
    async with ScriptedServer([stream.reply(cut_after=cut)]) as server:
        events, _ = await run(model(server))
    [error] = of(events, "error")
    assert error.partial is True
    assert error.retryable is True
