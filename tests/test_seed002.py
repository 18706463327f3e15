"""Seed 002's three clients, run unchanged against agentcast's `POST /invoke` stream.

The clients (tests/seed002/) read a native SSE frame the way seed 002 wrote them: `event:` from
the first line, `data:` from the second, and that JSON as the event's own data object
(`data.type === 'ai'` and `data.content` on `agent_step`, `data.output` on `agent_end`,
`data["token"]` on `llm_token`). Each runs against a real uvicorn server on 127.0.0.1 serving
the offline demo agent, as `agentcast serve` does; the test server also serves the seed's
pages and the pinned npm packages (tests/js/seed/node_modules) the React component loads, and
the browser can reach nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
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
from tests.seed002 import httpx_client  # noqa: E402
from tests.test_web import CHROMIUM, CHROMIUM_ARGS, TIMEOUT, LiveServer, offline_page  # noqa: E402

SEED = Path(__file__).parent / "seed002"
NODE_MODULES = Path(__file__).parent / "js" / "seed" / "node_modules"

MATH = "What is 25 * 4?"
MATH_ANSWER = "25 * 4 = **100**."


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


def test_the_httpx_example_prints_the_tokens_the_ai_step_and_the_output(server, capsys):
    assert httpx_client.main([server.url, MATH, "seed-py"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:4] == [
        "[tool] multiply -> 100",
        MATH_ANSWER,  # the tokens, printed as they came
        f"[ai] {MATH_ANSWER}",
        f"[output] {MATH_ANSWER}",
    ]
    metrics = json.loads(lines[-1].removeprefix("[metrics] "))
    assert metrics["tool_calls"] == 1 and metrics["llm_calls"] == 2


def test_parse_sse_event_reads_each_event_as_agentcasts_client_decodes_it(server):
    seed = list(httpx_client.stream_invoke(server.url, MATH, "seed-same"))
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


def test_the_browser_fetch_loop_shows_the_ai_step_and_the_output(browser, server):
    context, tab, blocked, errors = offline_page(browser, server, {"width": 900, "height": 700})
    tab.goto(server.url + "/seed002/fetch_loop.html")
    tab.locator("#prompt").fill(MATH)
    tab.locator("#send").click()
    expect(tab.locator("body")).to_have_attribute("data-done", "true", timeout=TIMEOUT)
    expect(tab.locator("#output")).to_have_text(MATH_ANSWER)
    expect(tab.locator("#tokens")).to_have_text(MATH_ANSWER)
    expect(tab.locator("#steps li")).to_have_text([MATH_ANSWER])
    metrics = json.loads(tab.locator("#metrics").text_content() or "{}")
    assert metrics["tool_calls"] == 1
    assert blocked == [] and errors == []
    context.close()


# -- the React component ---------------------------------------------------------------------


def test_the_react_component_holds_a_conversation(browser, server):
    if not (NODE_MODULES / "react" / "umd").is_dir():
        pytest.fail("tests/js/seed/node_modules is missing: run scripts/install (npm ci there)")
    context, tab, blocked, errors = offline_page(browser, server, {"width": 900, "height": 700})
    tab.goto(server.url + "/seed002/react_chat.html")
    prompt = tab.locator("#prompt")
    expect(prompt).to_be_visible(timeout=TIMEOUT)  # React rendered (after the JSX transform)

    def ask(text: str) -> None:
        prompt.fill(text)
        tab.locator("#send").click()
        expect(tab.locator("#send")).to_be_enabled(timeout=TIMEOUT)

    ask("My name is Alice")
    ask(MATH)
    ask("What's my name?")
    replies = tab.locator('[data-role="assistant"]')
    expect(replies).to_have_count(3)
    expect(replies.nth(1)).to_have_text(MATH_ANSWER)
    expect(replies.nth(2)).to_contain_text("Alice")
    expect(tab.locator('[data-role="user"]')).to_have_text(
        ["My name is Alice", MATH, "What's my name?"]
    )
    assert blocked == [] and errors == []
    context.close()
