"""Valid agentcast event streams, for property tests of every protocol encoder.

`agent_streams()` draws a whole run: LLM calls of the agent with text, reasoning and tool
calls (parallel ones with their deltas interleaved, provider-executed ones, calls whose JSON
is invalid), the tools they ran (with LLMs called inside them, custom events, failures),
tools nobody streamed the call of, errors the run went on after, and an ending: success,
interrupted, or cut short anywhere (cancelled, error, timeout) and closed the way the
runtime closes a run (`Run._close_open`: tool calls, then tools, then LLM calls). Every
drawn stream passes `agentcast.testing.check_invariants`.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

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

__all__ = ["agent_streams", "stamp"]

_words = st.sampled_from(["Hel", "lo", " world", "é", "😀", "\n", " {", "data: y", ":", ""])
tokens = st.lists(_words.filter(bool), min_size=1, max_size=4)
_values = st.one_of(st.integers(-5, 5), st.text(max_size=5), st.booleans(), st.none())
args_strategy = st.dictionaries(st.sampled_from(["a", "b", "place", "q"]), _values, max_size=3)


def stamp(events: list[BaseEvent], run_id: str = "run_1") -> list[BaseEvent]:
    """Return the events with the envelope the runtime stamps (`seq` from 0, `run_id`)."""
    import msgspec

    return [
        msgspec.structs.replace(e, seq=i, run_id=run_id, session_id="s1", ts=1_000 + i)
        for i, e in enumerate(events)
    ]


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in zip(points, points[1:], strict=False) if text[a:b]]


@st.composite
def _tool_calls(draw: st.DrawFn, call_id: str, prefix: str) -> tuple[list[BaseEvent], list[Any]]:
    """A turn's tool calls: their streamed events (deltas interleaved), and the calls."""
    count = draw(st.integers(1, 3))
    calls, streams = [], []
    for n in range(count):
        tool_call_id = f"{prefix}_{n}"
        name = draw(st.sampled_from(["add", "get_items", "search"]))
        args = draw(args_strategy)
        invalid = draw(st.integers(0, 9)) == 0
        raw = json.dumps(args) if not invalid else '{"a": '
        executor = "provider" if draw(st.integers(0, 7)) == 0 else "local"
        pieces = _split(raw, draw(st.lists(st.integers(0, 40), max_size=4)))
        stream: list[BaseEvent] = [
            ToolCallStart(
                call_id=call_id, tool_call_id=tool_call_id, name=name, index=n, executor=executor
            )
        ]
        stream += [ToolCallDelta(tool_call_id=tool_call_id, delta=p) for p in pieces]
        end = (
            ToolCallEnd(tool_call_id=tool_call_id, name=name, args=args, executor=executor)
            if not invalid
            else ToolCallEnd(
                tool_call_id=tool_call_id,
                name=name,
                error="invalid JSON",
                raw=raw,
                executor=executor,
            )
        )
        stream.append(end)
        streams.append(stream)
        calls.append((tool_call_id, name, None if invalid else args, executor))
    # Interleave the calls' events, each call's own order kept.
    merged: list[BaseEvent] = []
    while any(streams):
        live = [s for s in streams if s]
        merged.append(live[draw(st.integers(0, len(live) - 1))].pop(0))
    return merged, calls


@st.composite
def _tool_run(
    draw: st.DrawFn, tool_call_id: str, name: str, args: Any, call_id: str | None, depth: int
) -> list[BaseEvent]:
    """One tool's execution, maybe with an LLM called inside it and custom events."""
    start = ToolStart(
        tool_call_id=tool_call_id, name=name, input=args, call_id=call_id, depth=depth
    )
    events: list[BaseEvent] = [start]
    if depth == 0 and draw(st.booleans()):
        nested = f"nested_{tool_call_id}"
        events.append(LLMStart(call_id=nested, parent_id=tool_call_id, depth=1, model="m"))
        for kind in draw(st.lists(st.sampled_from(["text", "reasoning"]), max_size=3)):
            for token in draw(tokens):
                events.append(LLMToken(call_id=nested, token=token, kind=kind, depth=1))
        if draw(st.integers(0, 3)) == 0:
            inner, calls = draw(_tool_calls(nested, f"{tool_call_id}_in"))
            events += inner
            events.append(LLMEnd(call_id=nested, role="internal", finish_reason="tool_calls"))
            for inner_id, inner_name, inner_args, _ in calls:
                if inner_args is not None:
                    events += draw(_tool_run(inner_id, inner_name, inner_args, nested, 1))
        else:
            events.append(LLMEnd(call_id=nested, role="internal", finish_reason="stop"))
    if draw(st.integers(0, 3)) == 0:
        events.append(Custom(name="progress", data={"step": 1}, tool_call_id=tool_call_id))
    if draw(st.integers(0, 4)) == 0:
        events.append(ToolEnd(tool_call_id=tool_call_id, name=name, status="error", error="boom"))
    else:
        events.append(ToolEnd(tool_call_id=tool_call_id, name=name, output={"ok": tool_call_id}))
    return events


@st.composite
def _turns(draw: st.DrawFn) -> list[BaseEvent]:
    events: list[BaseEvent] = []
    for number in range(draw(st.integers(0, 3))):
        call_id = f"call_{number}"
        events.append(LLMStart(call_id=call_id, depth=0, model="m"))
        asked: list[Any] = []
        items = draw(st.lists(st.sampled_from(["text", "reasoning", "tools"]), max_size=4))
        for position, item in enumerate(items):
            if item == "tools":
                streamed, calls = draw(_tool_calls(call_id, f"tc{number}_{position}"))
                events += streamed
                for call in calls:
                    tool_call_id, name, args, executor = call
                    if executor == "provider" and args is not None:  # run by the provider
                        events.append(
                            ToolStart(
                                tool_call_id=tool_call_id,
                                name=name,
                                input=args,
                                call_id=call_id,
                                executor="provider",
                            )
                        )
                        events.append(
                            ToolEnd(
                                tool_call_id=tool_call_id,
                                name=name,
                                output="done",
                                executor="provider",
                            )
                        )
                    else:
                        asked.append(call)
            else:
                for token in draw(tokens):
                    events.append(LLMToken(call_id=call_id, token=token, kind=item))
        role = "tool_use" if asked else "answer"
        reason = draw(st.sampled_from(["stop", "length", "tool_calls", None]))
        events.append(LLMEnd(call_id=call_id, role=role, finish_reason=reason))
        for tool_call_id, name, args, _ in asked:
            if args is not None:
                events += draw(_tool_run(tool_call_id, name, args, call_id, 0))
        if draw(st.integers(0, 5)) == 0:  # a tool whose call was never streamed
            bare = f"bare_{number}"
            events += draw(_tool_run(bare, "lookup", {}, None, 0))
    return events


def _closers(events: list[BaseEvent], reason: str) -> list[BaseEvent]:
    """What `Run._close_open` emits for whatever `events` left open."""
    tool_calls: dict[str, str] = {}
    tools: dict[str, str] = {}
    llms: dict[str, int] = {}
    for e in events:
        if isinstance(e, ToolCallStart):
            tool_calls[e.tool_call_id] = e.name
        elif isinstance(e, ToolCallEnd):
            tool_calls.pop(e.tool_call_id, None)
        elif isinstance(e, ToolStart):
            tools[e.tool_call_id] = e.name
        elif isinstance(e, ToolEnd):
            tools.pop(e.tool_call_id, None)
        elif isinstance(e, LLMStart):
            llms[e.call_id] = e.depth
        elif isinstance(e, LLMEnd):
            llms.pop(e.call_id, None)
    status = "error" if reason == "error" else "cancelled"
    closers: list[BaseEvent] = [
        ToolCallEnd(tool_call_id=i, name=n, error=f"not completed ({reason})", raw="")
        for i, n in tool_calls.items()
    ]
    closers += [
        ToolEnd(tool_call_id=i, name=n, status=status, error=f"did not finish ({reason})")  # type: ignore[arg-type]
        for i, n in tools.items()
    ]
    closers += [
        LLMEnd(call_id=i, finish_reason=reason, role="answer" if d == 0 else "internal")
        for i, d in llms.items()
    ]
    return closers


@st.composite
def agent_streams(draw: st.DrawFn) -> list[BaseEvent]:
    """A whole valid run's events, stamped (see the module docstring)."""
    body = draw(_turns())
    for _ in range(draw(st.integers(0, 2))):  # errors the run went on after
        at = draw(st.integers(0, len(body)))
        retry = Error(error="a retry", error_type="ProviderError", code="provider", retryable=True)
        body.insert(at, retry)
    outcome = draw(st.sampled_from(["success", "interrupted", "cancelled", "error", "timeout"]))
    if outcome in ("cancelled", "error", "timeout"):
        body = body[: draw(st.integers(0, len(body)))]
        body += _closers(body, outcome)
    if outcome in ("error", "timeout"):
        failed = f"the run failed ({outcome})"
        body.append(Error(error=failed, error_type="RuntimeError", code=outcome))
    output = {"question": "continue?"} if outcome == "interrupted" else "answer"
    metrics = {"tokens": 1, "tool_calls": 0}
    end = AgentEnd(outcome=outcome, output=output, steps=1, metrics=metrics)  # type: ignore[arg-type]
    return stamp([AgentStart(input="question"), *body, end])
