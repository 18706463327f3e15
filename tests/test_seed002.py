"""Seed 002's three clients, as the seed wrote them, against agentcast's `POST /invoke` stream.

The clients (tests/seed002/) read a native SSE frame the way seed 002 wrote them: `event:` from
the first line, `data:` from the second, and that JSON as the event's own data object
(`data.type === 'ai'` and `data.content` on `agent_step`, `data.output` on `agent_end`,
`data["token"]` on `llm_token`). Each runs against a real uvicorn server on 127.0.0.1 serving
the offline demo agent, as `agentcast serve` does; the test server also serves the seed's
pages and the pinned npm packages (tests/js/seed/node_modules) the React component loads, and
the browser can reach nothing else.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

pytest.importorskip("playwright", reason="install the dev extra: pip install -e '.[dev]'")

from playwright.sync_api import Browser, expect, sync_playwright  # noqa: E402
from starlette.staticfiles import StaticFiles  # noqa: E402

import agentcast  # noqa: E402
from agentcast.client import AsyncClient  # noqa: E402
from agentcast.events import to_flat_json  # noqa: E402
from agentcast.models import OfflineChatModel  # noqa: E402
from agentcast.models.demo_tools import demo_tools  # noqa: E402
from agentcast.server import create_app  # noqa: E402
from agentcast.sessions import MemoryStore  # noqa: E402
from agentcast.testing import check_invariants  # noqa: E402
from tests.seed002 import seed_clients  # noqa: E402
from tests.test_web import CHROMIUM, CHROMIUM_ARGS, TIMEOUT, LiveServer, offline_page  # noqa: E402

SEED = Path(__file__).parent / "seed002"
NODE_MODULES = Path(__file__).parent / "js" / "seed" / "node_modules"

MATH = "What is 25 * 4?"
MATH_ANSWER = "25 * 4 = **100**."
ADD_ANSWER = "2 + 2 = **4**."  # the seed's httpx example asks "What is 2+2?"
MULTIPLY_ANSWER = "15 * 8 = **120**."  # its browser snippet asks "Calculate 15 * 8"


@contextmanager
def seed_server() -> Iterator[LiveServer]:
    """The offline demo agent on a real server, plus the seed's pages and npm packages."""
    agent = agentcast.Agent(OfflineChatModel(token_delay=0), demo_tools(), store=MemoryStore())
    app = create_app(agent)
    app.mount("/seed002", StaticFiles(directory=SEED))
    if NODE_MODULES.is_dir():
        app.mount("/node_modules", StaticFiles(directory=NODE_MODULES))
    live = LiveServer(app).start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def server() -> Iterator[LiveServer]:
    with seed_server() as live:
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (scripts/test does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


# -- the httpx example -----------------------------------------------------------------------


def test_the_httpx_example_prints_every_event_with_its_own_data(server, capsys):
    anyio.run(seed_clients.stream_request, server.url + "/invoke")
    lines = capsys.readouterr().out.splitlines()
    # The seed prints f"[{event_type}] {data}" for every frame: the type from the first line,
    # the event's own data object from the second.
    types = [line[1 : line.index("]")] for line in lines]
    assert types[0] == "agent_start" and types[-1] == "agent_end"
    assert "tool_start" in types and "llm_token" in types
    end = ast.literal_eval(lines[-1].removeprefix("[agent_end] "))
    assert end["output"] == ADD_ANSWER and end["metrics"]["tool_calls"] == 1
    steps = [
        ast.literal_eval(x.removeprefix("[agent_step] ")) for x in lines if "[agent_step]" in x
    ]
    assert [s["content"] for s in steps if s["type"] == "ai"][-1] == ADD_ANSWER


def test_parse_sse_event_reads_each_event_as_agentcasts_client_decodes_it(server):
    with httpx.stream(
        "POST", server.url + "/invoke", json={"prompt": MATH, "stream": True}, timeout=30
    ) as response:
        raw = response.read().decode()
    frames = [f for f in raw.split("\n\n") if f.startswith("event:")]
    seed = [seed_clients.parse_sse_event(frame) for frame in frames]
    run_id = seed[0]["data"]["run_id"]

    async def joined() -> list[Any]:
        async with AsyncClient(server.url) as client:
            return [event async for event in client.join(run_id)]

    events = anyio.run(joined)
    check_invariants(events)
    # Seed 002's parser and agentcast's client read the same run the same way: one dict per
    # event, {'type': the event line, 'data': the event's data object}.
    assert seed == [{"type": e.type, "data": json.loads(to_flat_json(e))} for e in events]
    assert [s["data"]["seq"] for s in seed] == list(range(len(seed)))
    # ...and seed 002's Python code works on agentcast's event objects as well.
    tokens = "".join(e.data["token"] for e in events if e.type == "llm_token")
    end = events[-1]
    assert end.type == "agent_end" and tokens == end.data["output"] == MATH_ANSWER
    assert end.data["metrics"]["tool_calls"] == 1
    ai_steps = [e.data["content"] for e in events if e.type == "agent_step"]
    assert ai_steps[-1] == MATH_ANSWER


# -- the browser fetch loop ------------------------------------------------------------------


def run_fetch_loop(browser: Browser, server: LiveServer, page: str) -> tuple[list[Any], list[str]]:
    context, tab, blocked, errors = offline_page(browser, server, {"width": 900, "height": 700})
    messages: list[Any] = []
    tab.on("console", lambda message: messages.append(message))
    tab.goto(server.url + f"/seed002/{page}")
    try:
        # the page's harness sets data-done: "true" when the loop ended, "error" when it threw
        expect(tab.locator("body")).to_have_attribute("data-done", re.compile("."), timeout=TIMEOUT)
        logged = [[arg.json_value() for arg in message.args] for message in messages]
    finally:
        context.close()
    assert blocked == []
    return logged, errors


@pytest.mark.xfail(
    strict=True,
    reason="seed 002's browser snippet declares `const eventType` inside the `event:` branch, so"
    " its `data:` branch's console.log(eventType, data) throws ReferenceError in every browser,"
    " whatever the server sends (tests/seed002/README.md); the hoisted copy below runs",
)
def test_the_browser_fetch_loop_as_written_logs_every_event(browser, server):
    logged, errors = run_fetch_loop(browser, server, "fetch_loop.html")
    assert errors == [] and logged


def test_the_browser_fetch_loop_logs_every_event_with_its_own_data(browser, server):
    logged, errors = run_fetch_loop(browser, server, "fetch_loop_hoisted.html")
    assert errors == []
    types = [entry[0] for entry in logged]
    assert types[0] == "agent_start" and types[-1] == "agent_end"
    end = logged[-1][1]
    assert end["output"] == MULTIPLY_ANSWER and end["metrics"]["tool_calls"] == 1
    ai = [data["content"] for kind, data in logged if kind == "agent_step" and data["type"] == "ai"]
    assert ai[-1] == MULTIPLY_ANSWER


# -- the React component ---------------------------------------------------------------------


def test_the_react_component_shows_each_answer(browser, server):
    if not (NODE_MODULES / "react" / "umd").is_dir():
        pytest.fail("tests/js/seed/node_modules is missing: run scripts/install (npm ci there)")
    context, tab, blocked, errors = offline_page(browser, server, {"width": 900, "height": 700})
    tab.goto(server.url + "/seed002/react_chat.html")
    tab.wait_for_function("typeof window.sendMessage === 'function'", timeout=TIMEOUT)
    tab.evaluate("window.sendMessage('My name is Alice')")
    answers = tab.locator("#root > div > div:not(.streaming)")
    expect(answers).to_have_count(1, timeout=TIMEOUT)
    tab.evaluate("window.sendMessage(" + json.dumps(MATH) + ")")
    expect(answers).to_have_count(2, timeout=TIMEOUT)
    tab.evaluate('window.sendMessage("What\'s my name?")')
    expect(answers).to_have_count(3, timeout=TIMEOUT)
    expect(answers.nth(1)).to_have_text(MATH_ANSWER)
    expect(answers.nth(2)).to_contain_text("Alice")  # one session: the seed's 'react-session'
    expect(tab.locator(".streaming")).to_have_count(0)
    assert blocked == [] and errors == []
    context.close()
