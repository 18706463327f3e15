"""The web chat page (`GET /`) in headless Chromium, against a real uvicorn server.

Playwright drives Debian's Chromium (`/usr/bin/chromium`; Playwright's own browsers are never
downloaded). Every test starts its own server on an ephemeral port with an in-memory store and
the offline demo model pacing its tokens, so streaming is observable. Waits are event-driven
(`expect(...)`, `wait_for_function`), never fixed sleeps.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

pytest.importorskip("playwright", reason="install the dev extra: pip install -e '.[dev]'")

from langchain_core.messages import AIMessageChunk  # noqa: E402
from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

import agentcast  # noqa: E402
from agentcast.models import OfflineChatModel  # noqa: E402
from agentcast.models.demo_tools import demo_tools  # noqa: E402
from agentcast.server import create_app  # noqa: E402
from agentcast.sessions import MemoryStore  # noqa: E402
from agentcast.testing import Fail, ScriptedChatModel  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path("/tmp/agentcast-web.png")

CAT = "What items are located where the cat is hiding?"
CAT_ANSWER = (
    "The cat is hiding under the bed. Items located there: socks, a pair of shoes and some dust "
    "bunnies."
)
ITEMS = "socks, a pair of shoes and some dust bunnies"
TIMEOUT = 15_000  # ms; runs take about 1.5 s


class LiveServer:
    """A real uvicorn server on 127.0.0.1, in a background thread."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", ws="none", timeout_graceful_shutdown=2
        )
        started = threading.Event()

        class Server(uvicorn.Server):
            async def startup(self, sockets=None):
                await super().startup(sockets)
                started.set()

        self._started = started
        self._server = Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def start(self) -> LiveServer:
        self._thread.start()
        if not self._started.wait(10) or not self._server.started:
            raise RuntimeError("the test server did not start")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def get(self, path: str) -> Any:
        response = httpx.get(self.url + path, timeout=5)
        response.raise_for_status()
        return response.json()


@contextmanager
def serve(model: Any, **config: Any) -> Iterator[LiveServer]:
    agent = agentcast.Agent(model, demo_tools(), store=MemoryStore())
    live = LiveServer(create_app(agent, **config)).start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(autouse=True)
def _paced_nested_model(_isolated_home, monkeypatch):
    # get_items builds its own OfflineChatModel: pace it too, so nested tokens stream visibly.
    monkeypatch.setenv("AGENTCAST_OFFLINE_DELAY", "0.03")


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


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """The demo agent at 0.03 s per token (parametrize indirectly for another pace)."""
    with serve(OfflineChatModel(token_delay=getattr(request, "param", 0.03))) as live:
        yield live


@pytest.fixture
def page(browser: Browser, server: LiveServer) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    errors: list[str] = []
    tab = context.new_page()
    tab.on("pageerror", lambda error: errors.append(str(error)))
    open_chat(tab, server)
    yield tab
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def open_chat(page: Page, server: LiveServer) -> None:
    page.goto(server.url + "/")
    expect(page.get_by_test_id("model-label")).to_contain_text("offline demo model")
    expect(page.get_by_test_id("send")).to_be_visible()


def ask(page: Page, text: str) -> None:
    page.get_by_test_id("prompt").fill(text)
    page.get_by_test_id("send").click()


def last_turn(page: Page) -> Any:
    return page.get_by_test_id("turn").last


def wait_done(page: Page) -> Any:
    turn = last_turn(page)
    expect(turn).to_have_attribute("data-status", "done", timeout=TIMEOUT)
    return turn


def tool(turn: Any, name: str) -> Any:
    return turn.locator(f'[data-testid="tool-call"][data-tool-name="{name}"]')


# While the run is still going (agent_end not applied, Stop shown and enabled), some output of
# the kind asked for is already on screen, and it is a strict prefix of what will follow.
_PARTIAL_WHILE_RUNNING = """([selector, final]) => {
    const turns = document.querySelectorAll('[data-testid="turn"]');
    const turn = turns[turns.length - 1];
    const stop = document.querySelector('[data-testid="stop"]');
    if (!turn || turn.dataset.status !== 'running') return false;
    if (stop.hidden || stop.disabled || stop.offsetParent === null) return false;
    const text = [...turn.querySelectorAll(selector)].map((e) => e.textContent).join('');
    return text.length > 0 && text.length < final.length && final.startsWith(text);
}"""


def test_answer_streams_with_tool_calls_and_nested_tokens(page: Page, server: LiveServer) -> None:
    ask(page, CAT)
    expect(page.get_by_test_id("user-message")).to_have_text([CAT])
    nested = '[data-tool-name="get_items"] [data-testid="nested-text"] .md'
    page.wait_for_function(_PARTIAL_WHILE_RUNNING, arg=[nested, ITEMS], polling="raf")
    page.wait_for_function(
        _PARTIAL_WHILE_RUNNING, arg=['[data-testid="answer-text"]', CAT_ANSWER], polling="raf"
    )

    turn = wait_done(page)
    expect(turn.get_by_test_id("answer-text")).to_have_text([CAT_ANSWER])
    expect(turn.locator('[data-testid="answer-text"] strong')).to_have_text("under the bed")
    expect(turn.get_by_test_id("tool-call")).to_have_count(2)
    hiding = tool(turn, "where_cat_is_hiding")
    expect(hiding).to_have_attribute("data-state", "ok")
    expect(hiding.get_by_test_id("tool-args")).to_have_text("{}")
    expect(hiding.get_by_test_id("tool-result")).to_have_text("under the bed")
    items = tool(turn, "get_items")
    expect(items).to_have_attribute("data-state", "ok")
    expect(items.get_by_test_id("tool-args")).to_have_text('{ "place": "under the bed" }')
    expect(items.locator('[data-testid="nested-text"] .md')).to_have_text(ITEMS)
    expect(items.get_by_test_id("custom-event")).to_contain_text("lookup")
    expect(items.get_by_test_id("tool-result")).to_have_text(ITEMS)
    footer = turn.get_by_test_id("answer-footer")
    expect(footer).to_contain_text(re.compile(r"ttft \d+ ms · [\d.]+ tok/s · 2 tool calls"))
    expect(turn.get_by_test_id("outcome")).to_have_count(0)
    expect(page.get_by_test_id("stop")).to_be_hidden()
    expect(page.get_by_test_id("send")).to_be_visible()

    run_id = turn.get_attribute("data-run-id")
    assert server.get(f"/runs/{run_id}")["outcome"] == "success"
    page.screenshot(path=str(SCREENSHOT))


def test_stop_cancels_the_run_and_keeps_the_partial_answer(page: Page, server: LiveServer) -> None:
    ask(page, "Hello")  # the demo model's help text: about 110 tokens, 3 s at this pace
    turn = last_turn(page)
    expect(turn.get_by_test_id("answer-text")).to_contain_text("offline demo model")
    stop = page.get_by_test_id("stop")
    expect(stop).to_be_enabled()
    stop.click()

    turn = wait_done(page)
    expect(turn.get_by_test_id("outcome")).to_have_text("stopped")
    partial = turn.get_by_test_id("answer-text").inner_text()
    assert partial.startswith("I'm the offline demo model")
    assert "--base-url" not in partial  # cut before the end
    run_id = turn.get_attribute("data-run-id")
    status = server.get(f"/runs/{run_id}")
    assert (status["status"], status["outcome"]) == ("finished", "cancelled")
    expect(stop).to_be_hidden()

    # The partial answer was saved in the session: a reload shows it from the history.
    page.reload()
    expect(page.get_by_test_id("answer-text")).to_have_text([partial])
    expect(page.get_by_test_id("outcome")).to_have_text("stopped")


@pytest.mark.parametrize("server", [0.1], indirect=True)  # ~3.5 s: ample time to reload
def test_reload_mid_run_resumes_and_completes_once(page: Page, server: LiveServer) -> None:
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    ask(page, CAT)
    expect(tool(last_turn(page), "get_items")).to_be_visible(timeout=TIMEOUT)
    run_id = page.evaluate("window.agentcast.runId")
    assert run_id and server.get(f"/runs/{run_id}")["status"] == "running"

    page.reload()
    turn = wait_done(page)
    assert f"{server.url}/runs/{run_id}/stream?after=-1" in urls  # resumed, not from history
    expect(page.get_by_test_id("turn")).to_have_count(1)
    expect(page.get_by_test_id("user-message")).to_have_text([CAT])
    expect(page.get_by_test_id("answer-text")).to_have_text([CAT_ANSWER])
    expect(turn.get_by_test_id("tool-call")).to_have_count(2)
    expect(tool(turn, "get_items").locator('[data-testid="nested-text"] .md')).to_have_text(ITEMS)
    expect(turn.get_by_test_id("answer-footer")).to_contain_text("2 tool calls")
    assert server.get(f"/runs/{run_id}")["outcome"] == "success"

    # Once finished, another reload shows the same conversation from the session history.
    page.reload()
    expect(page.get_by_test_id("user-message")).to_have_text([CAT])
    expect(page.get_by_test_id("answer-text")).to_have_text([CAT_ANSWER])
    expect(page.get_by_test_id("tool-call")).to_have_count(2)


def test_dropped_connection_resumes_after_the_last_seq(page: Page, server: LiveServer) -> None:
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    ask(page, CAT)
    expect(tool(last_turn(page), "where_cat_is_hiding")).to_be_visible(timeout=TIMEOUT)
    assert page.evaluate("window.agentcast.dropConnection()") is True

    turn = wait_done(page)
    run_id = turn.get_attribute("data-run-id")
    resumed = [u for u in urls if f"/runs/{run_id}/stream?after=" in u]
    assert resumed and all(int(u.rsplit("=", 1)[1]) >= 0 for u in resumed), resumed
    expect(turn.get_by_test_id("answer-text")).to_have_text([CAT_ANSWER])
    expect(turn.get_by_test_id("tool-call")).to_have_count(2)
    expect(tool(turn, "get_items").locator('[data-testid="nested-text"] .md')).to_have_text(ITEMS)


def test_session_picker_switches_and_loads_history(page: Page, server: LiveServer) -> None:
    ask(page, "My name is Ada")
    expect(wait_done(page).get_by_test_id("answer-text")).to_contain_text("Nice to meet you, Ada!")
    first = page.evaluate("window.agentcast.sessionId")

    page.get_by_test_id("new-session").click()
    expect(page.get_by_test_id("turn")).to_have_count(0)
    expect(page.get_by_test_id("empty")).to_be_visible()
    ask(page, "What is (3 + 4) * 5?")
    expect(wait_done(page).get_by_test_id("answer-text")).to_have_text(["(3 + 4) * 5 = 35."])
    second = page.evaluate("window.agentcast.sessionId")
    assert first != second
    sessions = page.get_by_test_id("session-item")
    expect(sessions).to_have_count(2)

    page.locator(f'[data-session-id="{first}"] .session-open').click()
    expect(page.get_by_test_id("session-title")).to_have_text("My name is Ada")
    expect(page.get_by_test_id("user-message")).to_have_text(["My name is Ada"])
    expect(page.get_by_test_id("answer-text")).to_contain_text(["Nice to meet you, Ada!"])
    ask(page, "What is my name?")  # the switched-to session's history reaches the model
    expect(wait_done(page).get_by_test_id("answer-text")).to_have_text(["Your name is Ada."])
    expect(page.get_by_test_id("turn")).to_have_count(2)

    page.locator(f'[data-session-id="{second}"] .session-open').click()
    expect(page.get_by_test_id("user-message")).to_have_text(["What is (3 + 4) * 5?"])
    expect(page.get_by_test_id("tool-result")).to_have_text(["7", "35"])
    expect(page.get_by_test_id("answer-text")).to_have_text(["(3 + 4) * 5 = 35."])

    page.reload()  # the open session survives a reload
    expect(page.get_by_test_id("user-message")).to_have_text(["What is (3 + 4) * 5?"])
    entry = page.locator(f'[data-session-id="{first}"]')
    entry.hover()
    entry.get_by_test_id("delete-session").click()
    expect(sessions).to_have_count(1)
    assert server.get("/sessions")["sessions"][0]["session_id"] == second


def test_reasoning_is_collapsible_and_tool_errors_are_red(browser: Browser) -> None:
    with serve(OfflineChatModel(token_delay=0.0, reasoning=True)) as live:
        context = browser.new_context()
        page = context.new_page()
        open_chat(page, live)
        ask(page, "What is 6 / 0?")
        turn = wait_done(page)
        reasoning = turn.get_by_test_id("reasoning").first
        expect(reasoning).to_be_visible()
        expect(reasoning).not_to_have_attribute("open", "")  # collapsed once finished
        reasoning.locator("summary").click()
        expect(reasoning).to_have_attribute("open", "")
        expect(reasoning.get_by_test_id("reasoning-text")).to_contain_text(
            "I need to compute 6 / 0."
        )
        divide = tool(turn, "divide")
        expect(divide).to_have_attribute("data-state", "error")
        error = divide.get_by_test_id("tool-error")
        expect(error).to_contain_text("cannot divide by zero")
        expect(error).to_have_css("color", "rgb(180, 35, 24)")
        expect(turn.get_by_test_id("answer-text")).to_contain_text("I couldn't compute 6 / 0")
        context.close()


def test_an_error_after_partial_output_is_shown(browser: Browser) -> None:
    chunks = [AIMessageChunk(content="Partial "), AIMessageChunk(content="answer")]
    model = ScriptedChatModel(turns=[[*chunks, Fail(RuntimeError("the provider went away"))]])
    with serve(model) as live:
        context = browser.new_context()
        page = context.new_page()
        page.goto(live.url + "/")
        ask(page, "Hi")
        turn = wait_done(page)
        error = turn.get_by_test_id("error")
        expect(error).to_contain_text("the provider went away")
        expect(error).to_contain_text("after partial output")
        expect(turn.get_by_test_id("answer-text")).to_have_text(["Partial answer"])
        expect(turn.get_by_test_id("outcome")).to_have_text("failed")
        live = error.text_content()

        page.reload()  # the saved turn draws the same error box and label
        turn = wait_done(page)
        expect(turn.get_by_test_id("error")).to_have_text(live)
        expect(turn.get_by_test_id("answer-text")).to_have_text(["Partial answer"])
        expect(turn.get_by_test_id("outcome")).to_have_text("failed")
        context.close()


def test_markdown_renderer_is_safe(page: Page) -> None:
    render = "(text) => window.agentcast.renderMarkdown(text)"
    cases = {
        "**bold** and *it* and `a<b>`": (
            "<p><strong>bold</strong> and <em>it</em> and <code>a&lt;b&gt;</code></p>"
        ),
        "# Title\n\n- one\n- two\n\n1. x\n2. y": (
            "<h1>Title</h1><ul><li>one</li><li>two</li></ul><ol><li>x</li><li>y</li></ol>"
        ),
        "```py\nprint('<b>')\n```": (
            '<pre data-lang="py"><code>print(&#39;&lt;b&gt;&#39;)</code></pre>'
        ),
        "*What is (3 + 4) * 5?*": "<p><em>What is (3 + 4) * 5?</em></p>",
        "[docs](https://example.com/a?b=1&c=2)": (
            '<p><a href="https://example.com/a?b=1&amp;c=2" target="_blank" '
            'rel="noopener noreferrer">docs</a></p>'
        ),
        "[bad](javascript:alert(1))": "<p>[bad](javascript:alert(1))</p>",
        "<img src=x onerror=alert(1)>": "<p>&lt;img src=x onerror=alert(1)&gt;</p>",
        "line one\nline two\n\nnext": "<p>line one<br>line two</p><p>next</p>",
    }
    for source, html in cases.items():
        assert page.evaluate(render, source) == html, source
    hostile = '<script>window.hacked = 1</script>**<img src=x onerror="window.hacked=2">**'
    injected = page.evaluate(
        """(text) => {
            const box = document.createElement('div');
            box.innerHTML = window.agentcast.renderMarkdown(text);
            return box.querySelectorAll('script, img').length + (window.hacked ? 100 : 0);
        }""",
        hostile,
    )
    assert injected == 0


def test_sse_parser_handles_any_chunking(page: Page) -> None:
    frames = page.evaluate(
        """() => {
            const text = ': ping\\n\\nid: 1\\r\\nevent: llm_token\\r\\n'
                + 'data: {"token":"h\\u00e9llo \\ud83d\\udc31"}\\r\\n\\r\\n'
                + 'id: 2\\nevent: x\\ndata: a\\ndata:b\\n\\n: ping\\n\\nid: 3\\ndata: tail\\r\\r';
            const bytes = new TextEncoder().encode(text);
            const results = [];
            for (const size of [1, 2, 3, 5, 7, bytes.length]) {
                const out = [];
                const parser = new window.agentcast.SSEParser((m) => out.push(m));
                for (let i = 0; i < bytes.length; i += size) parser.feed(bytes.slice(i, i + size));
                parser.end();
                results.push(JSON.stringify(out));
            }
            return results;
        }"""
    )
    expected = [
        {"id": "1", "event": "llm_token", "data": '{"token":"héllo 🐱"}'},
        {"id": "2", "event": "x", "data": "a\nb"},
        {"id": "3", "event": "message", "data": "tail"},
    ]
    assert [json.loads(f) for f in frames] == [expected] * 6


# -- offline docs, icon ------------------------------------------------------------------------

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}


def offline_page(browser: Browser, server: LiveServer, viewport: dict[str, int]) -> Any:
    """A tab that can reach the test server only: any other request is aborted and recorded."""
    context = browser.new_context(viewport=viewport)
    blocked: list[str] = []
    errors: list[str] = []

    def only_local(route: Any) -> None:
        if route.request.url.startswith(server.url + "/"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    tab = context.new_page()
    tab.on("pageerror", lambda error: errors.append(str(error)))
    return context, tab, blocked, errors


def test_api_docs_render_with_the_network_blocked(
    browser: Browser, server: LiveServer, tmp_path: Path
) -> None:
    context, tab, blocked, errors = offline_page(browser, server, DESKTOP)
    tab.goto(server.url + "/docs")
    expect(tab.get_by_text("/invoke", exact=True).first).to_be_visible(timeout=TIMEOUT)
    expect(
        tab.get_by_text("Run the agent (JSON result, or SSE with stream=true)").first
    ).to_be_visible()
    tab.screenshot(path=str(tmp_path / "docs.png"))
    assert blocked == [] and errors == []
    context.close()


def test_favicon_is_served(server: LiveServer) -> None:
    response = httpx.get(server.url + "/favicon.ico", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert response.text.startswith("<svg")


# -- the layout at desktop and phone widths ------------------------------------------------------


def within_viewport(page: Page, test_id: str) -> None:
    """The element is shown whole: inside the viewport and not cut by its own overflow."""
    box = page.get_by_test_id(test_id).first.evaluate(
        """(node) => { const r = node.getBoundingClientRect();
            return {left: r.left, right: r.right, top: r.top, bottom: r.bottom,
                    clipped: node.scrollWidth > node.clientWidth + 1,
                    width: window.innerWidth, height: window.innerHeight}; }"""
    )
    assert box["left"] >= 0 and box["right"] <= box["width"], (test_id, box)
    assert box["top"] >= 0 and box["bottom"] <= box["height"], (test_id, box)
    assert not box["clipped"], (test_id, box)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
def test_a_finished_turn_looks_the_same_after_a_reload(
    browser: Browser, server: LiveServer, viewport: dict[str, int], tmp_path: Path
) -> None:
    context, page, blocked, errors = offline_page(browser, server, viewport)
    open_chat(page, server)
    within_viewport(page, "model-label")
    expect(page.get_by_test_id("model-label")).to_have_text(
        "offline demo model (no API key, no network)"
    )
    ask(page, CAT)
    turn = wait_done(page)
    live_footer = turn.get_by_test_id("answer-footer").inner_text()
    run_id = turn.get_attribute("data-run-id")
    assert re.search(r"ttft \d+ ms · [\d.]+ tok/s · 2 tool calls", live_footer), live_footer
    page.screenshot(path=str(tmp_path / "live.png"), full_page=True)

    page.reload()
    turn = wait_done(page)
    expect(turn.get_by_test_id("answer-text")).to_have_text([CAT_ANSWER])
    expect(turn.get_by_test_id("answer-footer")).to_have_text(live_footer)
    expect(turn.get_by_test_id("outcome")).to_have_count(0)
    items = tool(turn, "get_items")
    expect(items).to_have_attribute("data-state", "ok")
    expect(items.locator('[data-testid="nested-text"] .md')).to_have_text(ITEMS)
    expect(items.get_by_test_id("custom-event")).to_contain_text("lookup")
    assert turn.get_attribute("data-run-id") == run_id
    # The sidebar counts nothing a reader would not: no "9 messages" for one question.
    expect(page.get_by_test_id("session-item")).to_have_count(1)
    expect(page.get_by_test_id("session-item")).not_to_contain_text("message")
    within_viewport(page, "model-label")
    within_viewport(page, "prompt")
    within_viewport(page, "send")
    page.screenshot(path=str(tmp_path / "reloaded.png"), full_page=True)
    assert blocked == [] and errors == []
    context.close()


def test_a_stopped_tool_reads_the_same_live_and_after_a_reload(
    page: Page, server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTCAST_OFFLINE_DELAY", "0.5")  # the nested answer takes ~5 s: stop it
    ask(page, CAT)
    items = tool(last_turn(page), "get_items")
    expect(items.locator('[data-testid="nested-text"] .md')).not_to_be_empty(timeout=TIMEOUT)
    page.get_by_test_id("stop").click()
    turn = wait_done(page)
    expect(turn.get_by_test_id("outcome")).to_have_text("stopped")
    expect(items).to_have_attribute("data-state", "cancelled")
    live = items.get_by_test_id("tool-error").inner_text()
    assert live == "the tool did not finish (cancelled)"
    nested = items.locator('[data-testid="nested-text"] .md').inner_text()

    page.reload()
    turn = wait_done(page)
    items = tool(turn, "get_items")
    expect(items).to_have_attribute("data-state", "cancelled")
    expect(items.get_by_test_id("tool-error")).to_have_text(live)
    expect(items.locator('[data-testid="nested-text"] .md')).to_have_text(nested)
    expect(turn.get_by_test_id("outcome")).to_have_text("stopped")


# -- with --api-key ------------------------------------------------------------------------------

KEY = "s3cret-key"


@pytest.fixture
def keyed_server() -> Iterator[LiveServer]:
    with serve(OfflineChatModel(token_delay=0.01), api_keys={KEY: "ann"}) as live:
        yield live


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
def test_with_an_api_key_the_page_asks_for_it_and_then_works(
    browser: Browser, keyed_server: LiveServer, viewport: dict[str, int], tmp_path: Path
) -> None:
    server = keyed_server
    context, page, blocked, errors = offline_page(browser, server, viewport)
    api = re.compile(r"/(sessions|invoke|runs)\b")
    sent: list[str | None] = []  # the Authorization of every API call, in order
    page.on(
        "request",
        lambda r: sent.append(r.headers.get("authorization")) if api.search(r.url) else None,
    )
    open_chat(page, server)
    banner = page.get_by_test_id("auth-banner")
    expect(banner).to_be_visible()
    expect(banner).to_have_attribute("data-kind", "missing")
    expect(page.get_by_test_id("auth-message")).to_contain_text("This server needs an API key")
    within_viewport(page, "auth-banner")
    within_viewport(page, "api-key")
    within_viewport(page, "model-label")
    page.screenshot(path=str(tmp_path / "no-key.png"))
    ask(page, "Hello")  # refused: nothing runs, the prompt stays in the box
    expect(page.get_by_test_id("prompt")).to_have_value("Hello")
    expect(page.get_by_test_id("turn")).to_have_count(0)

    page.get_by_test_id("api-key").fill("not-the-key")
    page.get_by_test_id("api-key-save").click()
    expect(banner).to_have_attribute("data-kind", "wrong")
    expect(page.get_by_test_id("auth-message")).to_contain_text("did not accept this API key")
    page.screenshot(path=str(tmp_path / "wrong-key.png"))
    assert "Bearer not-the-key" in sent

    assert set(sent) == {None, "Bearer not-the-key"}
    keyed = len(sent)
    page.get_by_test_id("api-key").fill(KEY)
    page.get_by_test_id("api-key-save").click()
    expect(banner).to_be_hidden()
    ask(page, CAT)
    turn = wait_done(page)
    expect(turn.get_by_test_id("answer-text")).to_have_text([CAT_ANSWER])
    expect(turn.get_by_test_id("tool-call")).to_have_count(2)
    expect(page.get_by_test_id("session-item")).to_have_count(1)
    run_id = turn.get_attribute("data-run-id")
    status = httpx.get(
        f"{server.url}/runs/{run_id}", headers={"Authorization": f"Bearer {KEY}"}, timeout=5
    ).json()
    assert status["outcome"] == "success"

    page.reload()  # the key is kept in this browser: the history loads with it
    expect(page.get_by_test_id("answer-text")).to_have_text([CAT_ANSWER])
    expect(banner).to_be_hidden()
    within_viewport(page, "model-label")
    page.screenshot(path=str(tmp_path / "with-key.png"), full_page=True)
    assert len(sent) > keyed and set(sent[keyed:]) == {f"Bearer {KEY}"}
    assert blocked == [] and errors == []
    context.close()
