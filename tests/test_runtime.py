"""Run lifecycle: cancel, timeout, failures, retries, history repair, callbacks, replay."""

from __future__ import annotations

import anyio
import pytest
from langchain_core.messages import AIMessageChunk
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.tools import tool

import agentcast
from agentcast import Agent, CallbackHandler, ProgressTracker, TokenAccumulator
from agentcast.models import OfflineChatModel
from agentcast.models.demo_tools import demo_tools
from agentcast.sessions import MemoryStore
from agentcast.sources._messages import to_langchain
from agentcast.sources.retry import RetryPolicy
from agentcast.testing import Fail, ScriptedChatModel, check_invariants

pytestmark = pytest.mark.anyio


def text(*tokens: str) -> list[AIMessageChunk]:
    return [AIMessageChunk(content=t) for t in tokens] + [
        AIMessageChunk(content="", response_metadata={"finish_reason": "stop"})
    ]


def call(name: str, args: str, call_id: str = "c1", index: int = 0) -> list[AIMessageChunk]:
    return [
        AIMessageChunk(
            content="",
            tool_call_chunks=[tool_call_chunk(name=name, args="", id=call_id, index=index)],
        ),
        AIMessageChunk(content="", tool_call_chunks=[tool_call_chunk(args=args, index=index)]),
    ]


def without_metadata(message):
    return {k: v for k, v in message.items() if k != "metadata"}


def of(events, type_):
    return [e for e in events if e.type == type_]


async def run_all(agent: Agent, prompt: str, **kwargs):
    events = [e async for e in agent.astream(prompt, **kwargs)]
    check_invariants(events)
    return events


class Gate:
    """Blocks the scripted model before chunk `at` of call `call` until released."""

    def __init__(self, call: int = 0, at: int = 0) -> None:
        self.call, self.at = call, at
        self.reached = anyio.Event()
        self.release = anyio.Event()

    async def __call__(self, call: int, index: int) -> None:
        if (call, index) == (self.call, self.at):
            self.reached.set()
            await self.release.wait()


# -- cancellation ---------------------------------------------------------------------------


async def test_break_mid_answer_cancels_and_keeps_the_partial_answer():
    gate = Gate(call=0, at=2)
    store = MemoryStore()
    agent = Agent(
        ScriptedChatModel(turns=[text("Hello", " wor", "ld")], before_chunk=gate), store=store
    )
    seen = []
    stream = agent.astream("Say hello", session_id="s")
    async for event in stream:
        seen.append(event)
        if event.type == "llm_token" and event.token == " wor":
            break
    await stream.aclose()
    run = seen[0].run_id
    history = await store.load("s")
    assert [without_metadata(m) for m in history] == [
        {"role": "user", "content": "Say hello"},
        {"role": "assistant", "content": "Hello wor", "status": "interrupted"},
    ]
    assert history[-1]["metadata"]["outcome"] == "cancelled"
    assert run  # the run was attached to the consumer


async def test_cancel_ends_with_closers_and_agent_end_cancelled():
    gate = Gate(call=0, at=2)
    agent = Agent(ScriptedChatModel(turns=[text("Hello", " wor", "ld")], before_chunk=gate))
    run = agent.start("Say hello", session_id="s")
    async with anyio.create_task_group() as group:
        group.start_soon(run.execute)
        await gate.reached.wait()
        run.cancel()
    events = run.log.snapshot()
    check_invariants(events)
    end = events[-1]
    assert (end.outcome, end.output) == ("cancelled", "Hello wor")
    [llm_end] = of(events, "llm_end")
    assert llm_end.finish_reason == "cancelled"
    assert not of(events, "error"), "a first-party cancel is not an error"


async def test_cancel_during_a_tool_synthesizes_a_cancelled_result():
    started = anyio.Event()

    @tool
    async def slow(q: str) -> str:
        """Never finishes."""
        started.set()
        await anyio.Event().wait()
        return "never"

    store = MemoryStore()
    agent = Agent(
        ScriptedChatModel(turns=[call("slow", '{"q": "x"}'), text("done")]), [slow], store=store
    )
    run = agent.start("go", session_id="s")
    async with anyio.create_task_group() as group:
        group.start_soon(run.execute)
        await started.wait()
        run.cancel()
    events = run.log.snapshot()
    check_invariants(events)
    [end] = of(events, "tool_end")
    assert end.status == "cancelled"
    assert events[-1].outcome == "cancelled"
    history = await store.load("s")
    assert [m["role"] for m in history] == ["user", "assistant", "tool"]
    assert history[2]["status"] == "cancelled" and history[2]["tool_call_id"] == "c1"
    # the repaired history is valid input for the next turn
    result = await Agent(ScriptedChatModel(turns=[text("ok")]), store=store).ainvoke(
        "again", session_id="s"
    )
    assert result.outcome == "success"


async def test_timeout_ends_with_error_and_outcome_timeout():
    gate = Gate(call=0, at=1)
    agent = Agent(ScriptedChatModel(turns=[text("a", "b")], before_chunk=gate), timeout=0.05)
    events = await run_all(agent, "hi")
    assert events[-1].outcome == "timeout"
    [error] = of(events, "error")
    assert error.code == "timeout" and error.retryable and error.partial


# -- failures ---------------------------------------------------------------------------------


class RateLimitError(Exception):
    status_code = 429


async def test_provider_failure_after_tokens_is_a_partial_error_never_a_retry():
    model = ScriptedChatModel(
        turns=[[*text("Hel", "lo")[:2], Fail(ConnectionResetError("cut"))], text("x")]
    )
    store = MemoryStore()
    agent = Agent(model, store=store, retry=RetryPolicy(retries=3, base_delay=0))
    events = await run_all(agent, "hi", session_id="s")
    assert len(model.calls) == 1, "no silent restart after output"
    [error] = of(events, "error")
    assert error.partial and error.code == "provider_error"
    assert events[-1].outcome == "error" and events[-1].output == "Hello"
    assert of(events, "llm_end")[0].finish_reason == "error"
    assert without_metadata((await store.load("s"))[-1]) == {
        "role": "assistant",
        "content": "Hello",
        "status": "interrupted",
    }


async def test_retryable_failure_before_first_token_is_retried():
    model = ScriptedChatModel(turns=[[Fail(RateLimitError("slow down"))], text("fine")])
    agent = Agent(model, retry=RetryPolicy(retries=2, base_delay=0))
    events = await run_all(agent, "hi")
    assert len(model.calls) == 2
    assert [e.finish_reason for e in of(events, "llm_end")] == ["error", "stop"]
    [notice] = of(events, "error")
    assert notice.code == "retrying" and notice.retryable
    assert (events[-1].outcome, events[-1].output) == ("success", "fine")


async def test_non_retryable_failure_before_first_token_fails_at_once():
    model = ScriptedChatModel(turns=[[Fail(ValueError("bad request"))], text("x")])
    events = await run_all(Agent(model, retry=RetryPolicy(retries=2, base_delay=0)), "hi")
    assert len(model.calls) == 1
    [error] = of(events, "error")
    assert not error.retryable and not error.partial and "bad request" in error.error
    assert events[-1].outcome == "error"


async def test_retries_are_bounded():
    model = ScriptedChatModel(turns=[[Fail(RateLimitError("slow down"))]])
    events = await run_all(Agent(model, retry=RetryPolicy(retries=2, base_delay=0)), "hi")
    assert len(model.calls) == 3
    assert events[-1].outcome == "error"


async def test_a_tool_that_raises_is_reported_and_the_agent_continues():
    agent = Agent(OfflineChatModel(token_delay=0), demo_tools())
    events = await run_all(agent, "What is 1 / 0?")
    [end] = of(events, "tool_end")
    assert end.status == "error" and "cannot divide by zero" in end.error
    assert events[-1].outcome == "success"
    assert "cannot divide by zero" in events[-1].output


async def test_unknown_tool_is_an_error_event_and_fed_back_to_the_model():
    model = ScriptedChatModel(turns=[call("teleport", "{}"), text("sorry")])
    events = await run_all(Agent(model, demo_tools()), "go")
    [end] = of(events, "tool_end")
    assert end.status == "error" and "unknown tool 'teleport'" in end.error and "add" in end.error
    [error] = of(events, "error")
    assert error.code == "tool_not_found"
    tool_message = model.calls[1][-1]
    assert tool_message.status == "error" and "unknown tool" in tool_message.content
    assert events[-1].outcome == "success"


async def test_invalid_argument_json_is_not_executed():
    ran = []

    @tool
    def record(a: int) -> int:
        """Record."""
        ran.append(a)
        return a

    model = ScriptedChatModel(turns=[call("record", '{"a": 1'), text("ok")])
    events = await run_all(Agent(model, [record]), "go")
    [call_end] = of(events, "tool_call_end")
    assert (
        call_end.args is None and call_end.raw == '{"a": 1' and "not valid JSON" in call_end.error
    )
    [end] = of(events, "tool_end")
    assert end.status == "error" and "invalid arguments" in end.error
    assert not ran


async def test_non_json_tool_output_becomes_json_safe():
    class Opaque:
        def __str__(self) -> str:
            return "<opaque>"

    @tool
    def weird() -> object:
        """Return something JSON cannot hold."""
        return {"when": {1, 2}, "what": Opaque()}

    events = await run_all(
        Agent(ScriptedChatModel(turns=[call("weird", "{}"), text("ok")]), [weird]), "go"
    )
    [end] = of(events, "tool_end")
    assert end.status == "ok" and end.output == {"when": [1, 2], "what": "<opaque>"}
    agentcast.events.to_json(end)


async def test_max_steps_ends_with_an_error_and_a_valid_history():
    store = MemoryStore()

    @tool
    def again() -> str:
        """Loop."""
        return "more"

    model = ScriptedChatModel(turns=[call("again", "{}", f"c{i}") for i in range(3)])
    events = await run_all(Agent(model, [again], max_steps=3, store=store), "go", session_id="s")
    [error] = of(events, "error")
    assert error.code == "max_steps_exceeded" and "max_steps" in error.error
    history = await store.load("s")
    calls = {c["id"] for m in history for c in m.get("tool_calls", ())}
    results = {m["tool_call_id"] for m in history if m["role"] == "tool"}
    assert calls == results


# -- nesting and custom events from threads ----------------------------------------------------


async def test_sync_tool_in_a_thread_streams_nested_tokens_and_custom_events():
    @tool
    def shelf() -> str:
        """Ask an LLM, from a worker thread, with no callbacks passed."""
        agentcast.emit("progress", {"pct": 50})
        return (
            OfflineChatModel(token_delay=0)
            .invoke("List the items you would find on the shelf")
            .text
        )

    events = await run_all(
        Agent(ScriptedChatModel(turns=[call("shelf", "{}"), text("ok")]), [shelf]), "go"
    )
    [start] = of(events, "tool_start")
    [end] = of(events, "tool_end")
    nested = [e for e in of(events, "llm_token") if e.depth == 1]
    assert "".join(e.token for e in nested) == end.output == "books, a pencil and a picture frame"
    assert all(start.seq < e.seq < end.seq for e in nested)
    [nested_start] = [e for e in of(events, "llm_start") if e.depth == 1]
    assert nested_start.parent_id == start.tool_call_id
    [custom] = of(events, "custom")
    assert (custom.data, custom.tool_call_id) == ({"pct": 50}, start.tool_call_id)


async def test_parallel_tools_each_get_their_own_nested_stream():
    @tool
    async def look(place: str) -> str:
        """Ask an LLM about a place."""
        return (
            await OfflineChatModel(token_delay=0).ainvoke(f"List the items you would find {place}")
        ).text

    turn = call("look", '{"place": "on the shelf"}', "a", 0) + call(
        "look", '{"place": "under the bed"}', "b", 1
    )
    events = await run_all(Agent(ScriptedChatModel(turns=[turn, text("ok")]), [look]), "go")
    by_parent = {e.call_id: e.parent_id for e in of(events, "llm_start") if e.depth == 1}
    texts = {"a": "", "b": ""}
    for e in of(events, "llm_token"):
        if e.depth == 1:
            texts[by_parent[e.call_id]] += e.token
    assert texts == {
        "a": "books, a pencil and a picture frame",
        "b": "socks, a pair of shoes and some dust bunnies",
    }


def test_emit_outside_a_run_is_a_harmless_no():
    assert agentcast.emit("x", 1) is False


# -- consumers --------------------------------------------------------------------------------


async def test_callbacks_see_exactly_what_the_iterator_sees():
    class Recorder(CallbackHandler):
        def __init__(self) -> None:
            self.seen = []
            self.tokens = []

        async def on_event(self, event):
            self.seen.append(event)

        def on_llm_new_token(self, token, event):
            assert isinstance(token, str) and token
            self.tokens.append(token)

    recorder, accumulator, progress = Recorder(), TokenAccumulator(), ProgressTracker()
    agent = Agent(OfflineChatModel(token_delay=0, content_blocks=True), demo_tools())
    events = await run_all(
        agent, "What is 2+3 and 4*5?", callbacks=[recorder, accumulator, progress]
    )
    assert recorder.seen == events
    assert accumulator.text == events[-1].output
    assert (
        progress.tool_calls == 2 and progress.outcome == "success" and progress.tools_running == 0
    )
    assert "".join(recorder.tokens) == "".join(e.token for e in of(events, "llm_token"))


async def test_a_failing_callback_does_not_break_the_run(caplog):
    class Broken(CallbackHandler):
        def on_llm_new_token(self, token, event):
            raise RuntimeError("boom")

    events = await run_all(
        Agent(ScriptedChatModel(turns=[text("a", "b")])), "hi", callbacks=[Broken()]
    )
    assert events[-1].outcome == "success"
    assert "boom" in caplog.text


async def test_late_readers_and_resume_see_the_same_sequence():
    gate = Gate(call=0, at=3)
    agent = Agent(ScriptedChatModel(turns=[text("a", "b", "c", "d")], before_chunk=gate))
    run = agent.start("hi")
    live = []

    async def read_live():
        async for event in run.events():
            live.append(event)

    async with anyio.create_task_group() as group:
        group.start_soon(read_live)
        group.start_soon(run.execute)
        await gate.reached.wait()
        middle = live[-1].seq
        gate.release.set()
    full = run.log.snapshot()
    assert live == full
    check_invariants(full)
    resumed = [e async for e in run.events(after=middle)]
    assert resumed == full[middle + 1 :]
    assert [e async for e in run.events(after=full[-1].seq)] == []


async def test_events_have_one_session_and_ordered_timestamps():
    events = await run_all(
        Agent(OfflineChatModel(token_delay=0), demo_tools()), "What is 25 * 4?", session_id="x"
    )
    assert {e.session_id for e in events} == {"x"}
    assert all(a.ts <= b.ts for a, b in zip(events, events[1:], strict=False))


async def test_saved_turn_keeps_what_a_page_needs_to_redraw_it():
    # Live, a page draws the footer from agent_end and the nested LLM's text and the tool's custom
    # events inside the tool card: the saved history keeps them, so a reload draws the same.
    store = MemoryStore()
    agent = Agent(OfflineChatModel(token_delay=0.0), demo_tools(), store=store)
    events = await run_all(agent, "What items are located where the cat is hiding?", session_id="s")
    history = await store.load("s")
    end = events[-1]
    assert history[-1]["metadata"] == {
        "run_id": end.run_id,
        "outcome": "success",
        "metrics": end.metrics,
    }
    [items] = [m for m in history if m.get("name") == "get_items"]
    nested_text = "".join(
        t.token for t in of(events, "llm_token") if t.depth == 1 and t.kind == "text"
    )
    [custom] = of(events, "custom")
    assert items["metadata"]["nested"] == [
        {"type": "custom", "name": custom.name, "data": custom.data},
        {"type": "text", "kind": "text", "text": nested_text},
    ]
    assert nested_text == "socks, a pair of shoes and some dust bunnies"
    # Display data only: the next model call gets exactly what it got without it.
    assert to_langchain(history) == to_langchain([without_metadata(m) for m in history])


# -- metrics ----------------------------------------------------------------------------------


class PacedClock:
    """A fake `time` for the sources and the runtime: it moves only when the model or a tool
    says so, so a "paced" model's speed is exact, whatever the machine is doing."""

    def __init__(self, *, first_token_s: float, rate: float) -> None:
        import time

        self.now = 1000.0
        self.first_token_s, self.interval = first_token_s, 1 / rate
        self.time_ns = time.time_ns

    def perf_counter(self) -> float:
        return self.now

    def before_chunk(self, call: int, index: int) -> None:
        self.now += self.first_token_s if index == 0 else self.interval


def usage(output_tokens: int) -> AIMessageChunk:
    return AIMessageChunk(
        content="",
        usage_metadata={
            "input_tokens": 5,
            "output_tokens": output_tokens,
            "total_tokens": 5 + output_tokens,
        },
    )


@pytest.mark.parametrize("provider_usage", [True, False], ids=["usage", "counted"])
async def test_tokens_per_s_is_the_pacing_rate_with_tools_and_reasoning(
    monkeypatch: pytest.MonkeyPatch, provider_usage: bool
) -> None:
    # 48 tokens/s after a 0.4 s wait for each call's first token, a 3 s tool between the two
    # calls, and reasoning first: the old footer divided all 20 tokens by the 0.25 s after
    # the first answer token and said 80 tok/s.
    clock = PacedClock(first_token_s=0.4, rate=48)
    monkeypatch.setattr("agentcast.sources.llm_call.time", clock)
    monkeypatch.setattr("agentcast.runtime._state.time", clock)
    monkeypatch.setattr("agentcast.runtime._sink.time", clock)

    @tool
    def lookup(q: str) -> str:
        """Look something up (takes 3 s of the fake clock)."""
        clock.now += 3.0
        return "found"

    reasoning = [
        AIMessageChunk(content="", additional_kwargs={"reasoning_content": word})
        for word in ("I ", "should ", "look ", "it ", "up ", "first")
    ]
    answer = [AIMessageChunk(content=f"w{i} ") for i in range(12)]
    if provider_usage:
        first = [*reasoning, *call("lookup", '{"q": "x"}'), usage(8)]
        second = [*answer, usage(12)]
    else:  # without usage the streamed tokens count; a tool call's fragments are not tokens
        first = [*reasoning, *call("lookup", '{"q": "x"}')]
        second = [*answer, AIMessageChunk(content="")]
    model = ScriptedChatModel(turns=[first, second], before_chunk=clock.before_chunk)
    agent = Agent(model, [lookup], store=MemoryStore())
    events = await run_all(agent, "look it up")
    metrics = events[-1].metrics
    if provider_usage:
        assert metrics["tokens"] == 20
        assert metrics["tokens_per_s"] == 48.0
    else:
        # 6 reasoning + 12 answer tokens over the 7/48 s and 12/48 s from each call's first
        # chunk to its last (8 and 13 chunks).
        assert metrics["tokens"] == 18
        assert metrics["tokens_per_s"] == round(18 / (19 / 48), 1)
    assert metrics["tool_calls"] == 1
