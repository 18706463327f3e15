"""Shared pieces of the provider end-to-end tests: tools, argument splitting, event helpers."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from langchain_core.tools import BaseTool, tool

from agentcast import Agent
from agentcast.events import BaseEvent
from agentcast.sessions import MemoryStore
from agentcast.sources.retry import RetryPolicy
from agentcast.testing import check_invariants

# The arguments of the split call: a string with an escaped quote and a non-ASCII letter that
# json.dumps writes as a \u escape, and a multi-digit number.
WEATHER_ARGS = {"city": 'Paris "Left Bank" café', "days": 12345, "units": "metric"}
WEATHER_RAW = json.dumps(WEATHER_ARGS)  # ensure_ascii: é is sent as \u00e9
assert '\\"' in WEATHER_RAW and "\\u00e9" in WEATHER_RAW

PROMPT = "What is the weather in Paris?"
ANSWER_PARTS = ["It is ", "sunny in ", 'Paris "Left Bank" café', " for 12345 days."]
ANSWER = "".join(ANSWER_PARTS)


def split_40(raw: str = WEATHER_RAW, pieces: int = 40) -> list[str]:
    """Split `raw` into `pieces` non-empty parts, cutting inside a string, inside the `\\"`
    and `\\u00e9` escapes and inside the number."""
    must = {
        raw.index("Left") + 2,  # Le|ft: inside a string
        raw.index('\\"') + 1,  # \|": inside an escaped quote
        raw.index("\\u00e9") + 1,  # \|u00e9
        raw.index("\\u00e9") + 4,  # \u00|e9: inside a unicode escape
        raw.index("12345") + 2,  # 12|345: inside a number
    }
    cuts = set(must)
    step = len(raw) / pieces
    k = 1
    while len(cuts) < pieces - 1:
        cuts.add(round(k * step) % (len(raw) - 1) + 1)
        k += 1
    assert len(cuts) == pieces - 1
    bounds = [0, *sorted(cuts), len(raw)]
    parts = [raw[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    assert "".join(parts) == raw and all(parts) and len(parts) == pieces
    return parts


ARG_PARTS = split_40()


class ToolLog:
    """The tools the agent may call, recording the arguments they received."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        log = self.calls

        @tool
        def get_weather(city: str, days: int, units: str) -> str:
            """Return the weather forecast for a city."""
            log.append(("get_weather", {"city": city, "days": days, "units": units}))
            return f"sunny in {city} for {days} days ({units})"

        @tool
        def get_time(city: str) -> str:
            """Return the local time in a city."""
            log.append(("get_time", {"city": city}))
            return f"12:00 in {city}"

        @tool
        def ping() -> str:
            """Check that the service is up."""
            log.append(("ping", {}))
            return "pong"

        self.tools: list[BaseTool] = [get_weather, get_time, ping]


# Three calls for the parallel cases: two with split arguments, one with no argument bytes.
PARALLEL = [
    ("get_weather", {"city": "Oslo", "days": 3, "units": "metric"}),
    ("get_time", {"city": "Lima"}),
    ("ping", {}),
]


def interleave(parts_by_call: list[list[str]]) -> list[tuple[int, str]]:
    """(index, fragment) pairs interleaved A1 B1 C1 A2 B2 ..., skipping exhausted calls."""
    out: list[tuple[int, str]] = []
    for n in range(max(len(p) for p in parts_by_call)):
        for index, parts in enumerate(parts_by_call):
            if n < len(parts):
                out.append((index, parts[n]))
    return out


def chop(raw: str, size: int = 5) -> list[str]:
    """Split `raw` into fragments of `size` characters."""
    return [raw[i : i + size] for i in range(0, len(raw), size)]


async def run(
    model: Any,
    tools: ToolLog | None = None,
    *,
    prompt: str = PROMPT,
    retry: RetryPolicy | None = None,
    check: bool = True,
    provider_tools: tuple[dict[str, Any], ...] = (),
) -> tuple[list[BaseEvent], Agent]:
    """Run an agent over `model` to its end; return its events (invariants checked).

    `provider_tools` are tool specs the provider runs itself (web search...).
    """
    agent = Agent(
        model,
        [*(tools.tools if tools else []), *provider_tools],
        store=MemoryStore(),
        retry=retry or RetryPolicy(retries=2, base_delay=0),
    )
    stream = agent.astream(prompt, session_id="s1")
    async with contextlib.aclosing(stream):
        events = [event async for event in stream]
    if check:
        check_invariants(events)
    return events, agent


def of(events: list[BaseEvent], type_: str) -> list[Any]:
    """The events of one type."""
    return [e for e in events if e.type == type_]


def text(events: list[BaseEvent], kind: str = "text") -> str:
    """All depth-0 tokens of a kind, joined."""
    return "".join(e.token for e in of(events, "llm_token") if e.kind == kind and e.depth == 0)


def assert_no_argument_bytes_in_text(events: list[BaseEvent]) -> None:
    """Invariant 4, strictly: no text token holds any fragment of any tool call's arguments."""
    fragments = [e.delta for e in of(events, "tool_call_delta") if len(e.delta) > 2]
    for token in of(events, "llm_token"):
        assert "{" not in token.token and '\\"' not in token.token, token
        for fragment in fragments:
            if len(fragment) >= 4:
                assert fragment not in token.token, (fragment, token.token)


def assert_tool_calls(events: list[BaseEvent], expected: list[tuple[str, dict[str, Any]]]):
    """The turn's tool calls, in order, parsed once, each with its own id."""
    ends = of(events, "tool_call_end")
    assert [(e.name, e.args) for e in ends] == expected
    assert all(e.error is None for e in ends)
    ids = [e.tool_call_id for e in ends]
    assert len(set(ids)) == len(ids), ids
    starts = of(events, "tool_call_start")
    assert [s.tool_call_id for s in starts] == ids
    assert [s.index for s in starts] == list(range(len(ids)))
    for e in ends:
        raw = "".join(
            d.delta for d in of(events, "tool_call_delta") if d.tool_call_id == e.tool_call_id
        )
        assert (json.loads(raw) if raw else {}) == e.args
    return ids


_OPENED: list[Any] = []


def opened(model: Any) -> Any:
    """Remember a model so that its SDK clients are closed after the test."""
    _OPENED.append(model)
    return model


async def close_models() -> None:
    """Close the HTTP clients of every model the test made (their sockets would leak)."""
    while _OPENED:
        model = _OPENED.pop()
        for name in ("root_async_client", "_async_client"):
            client = getattr(model, name, None)
            if client is not None and hasattr(client, "close"):
                await client.close()
        for name in ("root_client", "_client", "client", "bedrock_client"):
            client = getattr(model, name, None)
            if client is not None and hasattr(client, "close"):
                client.close()
