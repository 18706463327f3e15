"""The nine invariants of DESIGN.md, checked on a complete event sequence."""

from __future__ import annotations

from collections import Counter, defaultdict

from agentcast.events import BaseEvent


def check_invariants(events: list[BaseEvent], *, contiguous: bool = True) -> None:
    """Assert every invariant a consumer may rely on."""
    assert events, "no events"
    seqs = [e.seq for e in events]
    assert all(a < b for a, b in zip(seqs, seqs[1:], strict=False)), f"seq not increasing: {seqs}"
    if contiguous:
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "gap in seq"
    assert len({e.run_id for e in events}) == 1
    types = [e.type for e in events]
    assert types[0] == "agent_start"
    assert types.count("agent_end") == 1 and types[-1] == "agent_end", types[-5:]

    opened: dict[str, Counter[str]] = defaultdict(Counter)
    closed: dict[str, Counter[str]] = defaultdict(Counter)
    text: dict[str, str] = defaultdict(str)
    deltas: dict[str, str] = defaultdict(str)
    ended_tool_calls: set[str] = set()
    for event in events:
        t = event.type
        if t == "llm_start":
            opened["llm"][event.call_id] += 1
        elif t == "llm_end":
            closed["llm"][event.call_id] += 1
        elif t == "tool_call_start":
            opened["tool_call"][event.tool_call_id] += 1
        elif t == "tool_call_delta":
            deltas[event.tool_call_id] += event.delta
        elif t == "tool_call_end":
            closed["tool_call"][event.tool_call_id] += 1
            ended_tool_calls.add(event.tool_call_id)
            if event.args is not None:
                import json

                raw = deltas[event.tool_call_id]
                assert event.args == (json.loads(raw) if raw.strip() else {})
        elif t == "tool_start":
            opened["tool"][event.tool_call_id] += 1
            # invariant 5: a tool never starts before its tool_call_end
            assert (
                event.tool_call_id in ended_tool_calls
                or event.tool_call_id not in opened["tool_call"]
            )
        elif t == "tool_end":
            closed["tool"][event.tool_call_id] += 1
        elif t == "llm_token":
            assert isinstance(event.token, str) and event.token, "empty or non-str token"
            assert event.kind in ("text", "reasoning")
            if event.kind == "text":
                text[event.call_id] += event.token
    for kind in ("llm", "tool_call", "tool"):
        assert set(opened[kind]) == set(closed[kind]), (
            f"unclosed {kind}: {set(opened[kind]) ^ set(closed[kind])}"
        )
        assert all(n == 1 for n in opened[kind].values()), f"{kind} opened twice"
        assert all(n == 1 for n in closed[kind].values()), f"{kind} closed twice"
    for call_id, value in text.items():
        assert (
            "{" not in value
            or '"' not in value
            or not any(value.find(d) >= 0 for d in deltas.values() if len(d) > 8)
        ), f"argument bytes leaked into text of {call_id}"
