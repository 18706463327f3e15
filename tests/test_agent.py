"""The native agent on the offline model: the demo scenarios and the nine invariants."""

from __future__ import annotations

import pytest

from agentcast import Agent, invoke_agent, stream_agent
from agentcast.errors import InvalidInput
from agentcast.models import OfflineChatModel
from agentcast.models.demo_tools import demo_tools
from agentcast.sessions import MemoryStore
from agentcast.testing import check_invariants

pytestmark = pytest.mark.anyio


def demo(**model_options) -> Agent:
    return Agent(
        OfflineChatModel(token_delay=0, **model_options), demo_tools(), store=MemoryStore()
    )


async def collect(agent: Agent, prompt: str, **kwargs):
    events = [e async for e in agent.astream(prompt, **kwargs)]
    check_invariants(events, contiguous=kwargs.get("stream_tokens", True))
    return events


def of(events, type_):
    return [e for e in events if e.type == type_]


async def test_single_tool_call_answers_with_the_result():
    events = await collect(demo(), "What is 25 * 4?")
    [start] = of(events, "tool_start")
    assert (start.name, start.input) == ("multiply", {"a": 25, "b": 4})
    [end] = of(events, "tool_end")
    assert (end.status, end.output) == ("ok", 100)
    final = events[-1]
    assert final.outcome == "success" and "100" in final.output
    answer = "".join(e.token for e in of(events, "llm_token") if e.depth == 0)
    assert answer == final.output


async def test_two_independent_computations_are_parallel_calls_in_one_turn():
    events = await collect(demo(), "What is 2+3 and 4*5?")
    starts = of(events, "tool_call_start")
    assert [s.name for s in starts] == ["add", "multiply"]
    assert len({s.call_id for s in starts}) == 1, "both calls belong to one LLM turn"
    assert [s.index for s in starts] == [0, 1]
    assert "5" in events[-1].output and "20" in events[-1].output
    # Both tools were started before either finished: they ran concurrently.
    kinds = [e.type for e in events if e.type in ("tool_start", "tool_end")]
    assert kinds == ["tool_start", "tool_start", "tool_end", "tool_end"]


async def test_nested_expression_makes_sequential_calls():
    events = await collect(demo(), "What is (3 + 4) * 5?")
    assert [s.name for s in of(events, "tool_start")] == ["add", "multiply"]
    assert len({s.call_id for s in of(events, "tool_call_start")}) == 2
    assert "35" in events[-1].output


async def test_cat_demo_streams_the_inner_llm_as_nested_tokens():
    events = await collect(demo(), "What items are located where the cat is hiding?")
    assert [s.name for s in of(events, "tool_start")] == ["where_cat_is_hiding", "get_items"]
    get_items = of(events, "tool_start")[1]
    nested_start = [e for e in of(events, "llm_start") if e.depth == 1]
    assert len(nested_start) == 1
    assert nested_start[0].parent_id == get_items.tool_call_id
    nested = [e for e in of(events, "llm_token") if e.depth == 1]
    assert nested and all(e.call_id == nested_start[0].call_id for e in nested)
    nested_text = "".join(e.token for e in nested)
    # exactly once: the nested text equals the tool's output, no duplicate
    [items_end] = [e for e in of(events, "tool_end") if e.name == "get_items"]
    assert nested_text == items_end.output
    # the nested tokens arrive between the tool's start and end
    seqs = [e.seq for e in nested]
    assert get_items.seq < min(seqs) and max(seqs) < items_end.seq
    [custom] = of(events, "custom")
    assert (custom.name, custom.data, custom.tool_call_id) == (
        "lookup",
        {"place": "under the bed"},
        get_items.tool_call_id,
    )
    assert "under the bed" in events[-1].output and "socks" in events[-1].output


async def test_session_memory_across_runs():
    agent = demo()
    await collect(agent, "My name is Alice", session_id="s1")
    events = await collect(agent, "What's my name?", session_id="s1")
    assert "Alice" in events[-1].output
    other = await collect(agent, "What's my name?", session_id="s2")
    assert "Alice" not in other[-1].output


async def test_anything_else_gets_the_offline_help_paragraph():
    events = await collect(demo(), "Write me a poem about the sea")
    assert "offline demo model" in events[-1].output
    assert "--model" in events[-1].output


async def test_stream_tokens_false_suppresses_only_tokens():
    agent = demo()
    with_tokens = await collect(agent, "What is 25 * 4?")
    without = await collect(agent, "What is 25 * 4?", stream_tokens=False)
    assert not of(without, "llm_token")
    strip = lambda evs: [e.type for e in evs if e.type != "llm_token"]  # noqa: E731
    assert strip(without) == strip(with_tokens)
    assert without[-1].output == with_tokens[-1].output


async def test_reasoning_tokens_are_separate_from_text():
    events = await collect(demo(reasoning=True), "What is 25 * 4?")
    reasoning = [e for e in of(events, "llm_token") if e.kind == "reasoning"]
    text = "".join(e.token for e in of(events, "llm_token") if e.kind == "text")
    assert reasoning and "I need to compute 25 * 4" in "".join(e.token for e in reasoning)
    assert "compute" not in text and text == events[-1].output


@pytest.mark.parametrize("reasoning", [False, True])
async def test_content_block_chunks_give_the_same_events_as_strings(reasoning):
    plain = await collect(demo(reasoning=reasoning), "What is 2+3 and 4*5?")
    blocks = await collect(demo(content_blocks=True, reasoning=reasoning), "What is 2+3 and 4*5?")

    def shape(events):
        return [
            (e.type, getattr(e, "token", None), getattr(e, "delta", None), getattr(e, "args", None))
            for e in events
            if e.type in ("llm_token", "tool_call_start", "tool_call_delta", "tool_call_end")
        ]

    assert shape(blocks) == shape(plain)
    assert blocks[-1].output == plain[-1].output


async def test_invoke_and_ainvoke_return_the_result():
    agent = demo()
    result = await agent.ainvoke("What is 25 * 4?", session_id="a")
    assert result.outcome == "success" and "100" in result.output
    assert result.session_id == "a" and result.run_id.startswith("run_")
    assert result.metrics["tool_calls"] == 1 and result.metrics["llm_calls"] == 2
    assert result.steps == 4  # human, ai (tool call), tool, ai (answer)
    # outcome and error are part of the result's JSON (the server's /invoke body is this).
    assert result.to_dict() == {
        "output": result.output,
        "session_id": "a",
        "run_id": result.run_id,
        "steps": 4,
        "metrics": result.metrics,
        "outcome": "success",
        "error": None,
    }


def test_invoke_is_usable_without_an_event_loop():
    result = demo().invoke("What is 25 * 4?")
    assert "100" in result.output


async def test_metrics_use_provider_usage_and_measure_ttft():
    events = await collect(demo(), "What is 25 * 4?")
    metrics = events[-1].metrics
    usage = metrics["usage"]
    assert usage["source"] == "provider"
    assert usage["output_tokens"] == sum(e.usage["output_tokens"] for e in of(events, "llm_end"))
    assert metrics["tokens"] == usage["output_tokens"]
    assert metrics["ttft_ms"] is not None and metrics["ttft_ms"] >= 0


async def test_seed_entry_points_use_the_demo_agent():
    events = [e async for e in stream_agent({"prompt": "What is 25 * 4?", "session_id": "seed"})]
    check_invariants(events)
    assert "100" in events[-1].output
    result = await invoke_agent({"prompt": "What is 2+3 and 4*5?", "session_id": "seed"})
    keys = {"output", "session_id", "run_id", "steps", "metrics", "outcome", "error"}
    assert set(result) == keys and result["outcome"] == "success" and result["error"] is None
    assert result["session_id"] == "seed" and "20" in result["output"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "no 'prompt'"),
        ({"prompt": ""}, "empty"),
        ({"prompt": "   "}, "empty"),
        ({"prompt": 42}, "must be a string"),
        ({"prompt": "hi", "session_id": 3}, "session_id must be 1-128 characters"),
        ({"prompt": "hi", "stream_tokens": "yes"}, "'stream_tokens'"),
        ("not a dict", "must be a mapping"),
    ],
)
async def test_bad_payloads_raise_invalid_input(payload, message):
    with pytest.raises(InvalidInput, match=message):
        await invoke_agent(payload)
    with pytest.raises(InvalidInput, match=message):
        async for _ in stream_agent(payload):
            pass


async def test_caller_held_history_is_answered_from_and_the_turn_is_still_saved():
    # A front-end that holds the conversation (AG-UI, useChat) sends it with each request.
    store = MemoryStore()
    agent = Agent(OfflineChatModel(token_delay=0), demo_tools(), store=store)
    await agent.ainvoke("My name is Alice.", session_id="t1")  # stored history says Alice
    held = [
        {"role": "user", "content": "My name is Bob."},
        {"role": "assistant", "content": "Nice to meet you, Bob."},
    ]
    run = agent.start("What's my name?", session_id="t1", history=held)
    result = await run.execute()
    assert "Bob" in result.output and "Alice" not in result.output
    saved = await store.load("t1")
    assert [m["content"] for m in saved[-2:]] == ["What's my name?", result.output]


async def test_without_caller_history_the_stored_history_is_used():
    store = MemoryStore()
    agent = Agent(OfflineChatModel(token_delay=0), demo_tools(), store=store)
    await agent.ainvoke("My name is Alice.", session_id="t1")
    result = await agent.start("What's my name?", session_id="t1", history=None).execute()
    assert "Alice" in result.output
