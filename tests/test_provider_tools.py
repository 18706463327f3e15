"""A tool the provider runs itself (Anthropic web search, as langchain-anthropic streams it) on
every path: shown as run by the provider, never run locally, never an error."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_normalize import SEARCH_RESULTS, anthropic_server_tool_stream
from tests.test_refusal_and_usage import PATHS, of

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("path", sorted(PATHS))
async def test_a_provider_tool_is_reported_as_run_by_the_provider_on_every_path(path: str):
    events = await PATHS[path](anthropic_server_tool_stream())
    depth = 1 if path == "nested" else 0
    starts: list[Any] = [e for e in of(events, "tool_start") if e.executor == "provider"]
    assert [(s.tool_call_id, s.name, s.input, s.depth) for s in starts] == [
        ("srvtoolu_01", "web_search", {"query": "news"}, depth)
    ]
    [end] = [e for e in of(events, "tool_end") if e.executor == "provider"]
    assert (end.status, end.output) == ("ok", SEARCH_RESULTS)
    named = ("tool_call_start", "tool_call_end", "tool_start", "tool_end")
    assert all(e.name for e in events if e.type in named), "no nameless tool call"
    assert not of(events, "error")
    assert events[-1].outcome == "success"
    if path != "nested":
        assert events[-1].output == "Let me search. Here is the news."
