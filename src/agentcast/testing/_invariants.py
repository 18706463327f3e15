"""The nine invariants of DESIGN.md, checked on a complete event sequence.

A source author runs their source to the end (e.g. into a `RecordingSink`, or through
`agentcast.run`) and passes the events to `check_invariants`; a violation raises
`InvariantViolation` naming what broke.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence

from agentcast.events import BaseEvent

__all__ = ("InvariantViolation", "check_invariants")


class InvariantViolation(AssertionError):
    """An event sequence breaks an invariant a consumer may rely on.

    It is an `AssertionError` so test runners report it as a failed assertion; it is raised
    explicitly, so the checks also run under `python -O`.
    """


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InvariantViolation(message)


def check_invariants(events: Sequence[BaseEvent], *, contiguous: bool = True) -> None:
    """Check every invariant a consumer may rely on, on one run's complete events.

    Checked: `seq` increases (without gaps when `contiguous`), one `run_id`, `agent_start`
    first and `agent_end` last and once, every LLM call, streamed tool call and tool execution
    opened and closed exactly once, a tool starts only after its tool call ended, a tool
    call's final `args` equal its concatenated deltas, tokens are non-empty text or reasoning,
    and no tool-call argument bytes leak into the text.

    Args:
        events: the run's events in the order they were delivered.
        contiguous: require `seq` without gaps (False for a reader that resumed or filtered).

    Raises:
        InvariantViolation: an invariant is broken; the message says which.
    """
    _require(bool(events), "no events")
    seqs = [e.seq for e in events]
    _require(
        all(a < b for a, b in zip(seqs, seqs[1:], strict=False)), f"seq not increasing: {seqs}"
    )
    if contiguous:
        _require(seqs == list(range(seqs[0], seqs[0] + len(seqs))), "gap in seq")
    _require(len({e.run_id for e in events}) == 1, "more than one run_id")
    types = [e.type for e in events]
    _require(types[0] == "agent_start", f"first event is {types[0]}, not agent_start")
    _require(
        types.count("agent_end") == 1 and types[-1] == "agent_end",
        f"agent_end is not last and once: {types[-5:]}",
    )

    opened: dict[str, Counter[str]] = defaultdict(Counter)
    closed: dict[str, Counter[str]] = defaultdict(Counter)
    text: dict[str, str] = defaultdict(str)
    deltas: dict[str, str] = defaultdict(str)
    ended_tool_calls: set[str] = set()
    for event in events:
        t = event.type
        if t == "llm_start":
            opened["llm"][event.call_id] += 1  # type: ignore[attr-defined]
        elif t == "llm_end":
            closed["llm"][event.call_id] += 1  # type: ignore[attr-defined]
        elif t == "tool_call_start":
            opened["tool_call"][event.tool_call_id] += 1  # type: ignore[attr-defined]
        elif t == "tool_call_delta":
            deltas[event.tool_call_id] += event.delta  # type: ignore[attr-defined]
        elif t == "tool_call_end":
            call_id: str = event.tool_call_id  # type: ignore[attr-defined]
            closed["tool_call"][call_id] += 1
            ended_tool_calls.add(call_id)
            args = event.args  # type: ignore[attr-defined]
            if args is not None:
                raw = deltas[call_id]
                _require(
                    args == (json.loads(raw) if raw.strip() else {}),
                    f"args of tool call {call_id} differ from its deltas",
                )
        elif t == "tool_start":
            call_id = event.tool_call_id  # type: ignore[attr-defined]
            opened["tool"][call_id] += 1
            # A tool never starts before its tool_call_end (when the call was streamed).
            _require(
                call_id in ended_tool_calls or call_id not in opened["tool_call"],
                f"tool {call_id} started before its tool_call_end",
            )
        elif t == "tool_end":
            closed["tool"][event.tool_call_id] += 1  # type: ignore[attr-defined]
        elif t == "llm_token":
            token, kind = event.token, event.kind  # type: ignore[attr-defined]
            _require(isinstance(token, str) and bool(token), "empty or non-str token")
            _require(kind in ("text", "reasoning"), f"token kind {kind!r}")
            if kind == "text":
                text[event.call_id] += token  # type: ignore[attr-defined]
    for kind in ("llm", "tool_call", "tool"):
        _require(
            set(opened[kind]) == set(closed[kind]),
            f"unclosed {kind}: {set(opened[kind]) ^ set(closed[kind])}",
        )
        _require(all(n == 1 for n in opened[kind].values()), f"{kind} opened twice")
        _require(all(n == 1 for n in closed[kind].values()), f"{kind} closed twice")
    for call_id, value in text.items():
        _require(
            "{" not in value
            or '"' not in value
            or not any(value.find(d) >= 0 for d in deltas.values() if len(d) > 8),
            f"argument bytes leaked into text of {call_id}",
        )
