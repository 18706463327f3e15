"""examples/vercel (a `useChat` page, served by Vite) in headless Chromium against a real server.

The example's own pinned packages (examples/vercel/package-lock.json, installed by
scripts/install's `npm ci`) run as a user would run them: `vite` serves the page and proxies
`/api` and `/runs` to agentcast. Waits are event-driven (Playwright's `expect` and
`wait_for_function`), never fixed sleeps.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("playwright", reason="install the dev extra: pip install -e '.[dev]'")

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

from agentcast import Agent  # noqa: E402
from agentcast.models import OfflineChatModel  # noqa: E402
from agentcast.models.demo_tools import demo_tools  # noqa: E402
from agentcast.server import create_app  # noqa: E402
from agentcast.sessions import MemoryStore  # noqa: E402
from tests.live_server import LiveServer  # noqa: E402

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).parent.parent / "examples" / "vercel"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
CAT = "What items are located where the cat is hiding?"
ITEMS = "socks, a pair of shoes and some dust bunnies"
TIMEOUT = 30_000  # ms


@contextmanager
def vite(agentcast_url: str) -> Iterator[str]:
    """Run the example's `vite` dev server; yield its URL once it says it is ready."""
    if not (EXAMPLE / "node_modules" / "vite").is_dir():
        pytest.fail(f"the example's packages are missing: cd {EXAMPLE} && npm ci (scripts/install)")
    process = subprocess.Popen(
        ["node", "node_modules/vite/bin/vite.js", "--host", "127.0.0.1", "--port", "0"],
        cwd=EXAMPLE,
        env={**os.environ, "AGENTCAST_URL": agentcast_url, "NO_COLOR": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    output = process.stdout
    assert output is not None
    reader = threading.Thread(target=lambda: [lines.put(x) for x in output], daemon=True)
    reader.start()
    try:
        seen = []
        while True:
            line = lines.get(timeout=30)  # vite prints its URL once it listens
            seen.append(line)
            found = re.search(r"http://127\.0\.0\.1:\d+/", line)
            if found:
                yield found.group(0)
                return
            assert process.poll() is None, "".join(seen)
    finally:
        process.terminate()
        process.wait(timeout=10)
        reader.join(timeout=10)  # it reads to the end of the output, then the pipe closes
        output.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (scripts/install does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def site(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    # Paced tokens (the nested model inside get_items reads the variable), so a run is
    # still streaming when the page reloads.
    monkeypatch.setenv("AGENTCAST_OFFLINE_DELAY", "0.02")
    agent = Agent(OfflineChatModel(token_delay=0.02), demo_tools(), store=MemoryStore())
    with LiveServer(create_app(agent)) as server, vite(server.url) as url:
        yield url, server.url


@pytest.fixture
def console_errors() -> list[str]:
    return []


@pytest.fixture
def page(browser: Browser, console_errors: list[str]) -> Iterator[Page]:
    page = browser.new_page()
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console_errors.append(str(e)))
    yield page
    page.close()
    assert console_errors == []


def ask(page: Page, text: str) -> None:
    page.get_by_label("message").fill(text)
    page.get_by_label("message").press("Enter")


def ready(page: Page, answers: int) -> None:
    page.wait_for_function(
        "n => document.querySelector('[data-testid=status]').textContent === 'ready'"
        " && document.querySelectorAll('[data-testid=message-assistant]').length === n",
        arg=answers,
        timeout=TIMEOUT,
    )


def test_the_page_streams_tools_the_nested_llm_and_answers_a_follow_up(
    page: Page, site: tuple[str, str]
) -> None:
    page.goto(site[0])
    ask(page, CAT)
    ready(page, 1)
    answer = page.get_by_test_id("message-assistant").first
    expect(answer.get_by_test_id("tool")).to_have_count(2)
    expect(answer.get_by_test_id("nested")).to_have_text(f"inside the tool: {ITEMS}")
    expect(answer.locator("p")).to_contain_text(ITEMS)
    ask(page, "What is 25 * 4?")
    ready(page, 2)
    expect(page.get_by_test_id("message-assistant").nth(1)).to_contain_text("100")


def test_a_reload_mid_answer_resumes_it_once(
    page: Page, site: tuple[str, str], console_errors: list[str]
) -> None:
    url, api = site
    page.goto(url)
    ask(page, CAT)
    expect(page.get_by_test_id("tool").first).to_be_visible(timeout=TIMEOUT)  # mid-run
    # The page keeps the chat id (URL hash) and the user's message, and resumes on load.
    with page.expect_response(lambda r: r.url.endswith("/stream"), timeout=TIMEOUT) as resumed:
        page.reload()
    assert resumed.value.status == 200
    resumed.value.finished()  # the whole resumed stream has arrived
    ready(page, 1)
    # Reloading cuts the first response short, which the browser may log; nothing else.
    cut = "Failed to load resource: net::ERR_INCOMPLETE_CHUNKED_ENCODING"
    console_errors[:] = [e for e in console_errors if e != cut]
    chat_id = page.evaluate("location.hash.slice(1)")
    saved: Any = httpx.get(f"{api}/sessions/{chat_id}", timeout=10).json()["messages"]
    answer = page.get_by_test_id("message-assistant")
    expect(answer.locator("p")).to_have_text(saved[-1]["content"])  # whole, and once
    expect(answer.get_by_test_id("tool")).to_have_count(2)
    expect(answer.get_by_test_id("nested")).to_have_count(1)
