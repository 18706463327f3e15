"""The real AG-UI client (`@ag-ui/client` 1.0.0 under Node 20) against real agentcast servers.

One Node process (`tests/js/agui/e2e.mjs`) runs every scenario with `HttpAgent.runAgent()`,
which parses each event with @ag-ui/core's zod schemas and checks the stream with
`verifyEvents`; a client warning fails the scenario. The servers are real uvicorn servers on
127.0.0.1, one per model: the offline demo model, the same with reasoning, a model that is
stuck after its first token (cancelled by `POST /runs/{runId}/cancel`), one that fails, and a
LangGraph graph that interrupts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import anyio
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, AnyMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import interrupt

from agentcast import Agent, wrap
from agentcast.models import OfflineChatModel, resolve
from agentcast.models.demo_tools import demo_tools
from agentcast.server import create_app
from agentcast.sessions import MemoryStore
from agentcast.testing import Fail, ScriptedChatModel
from tests.live_server import LiveServer

JS = Path(__file__).parent / "js" / "agui"

SCENARIOS = [
    "plain_text",
    "one_tool_call",
    "two_parallel_tool_calls",
    "cat_hiding_nested_llm",
    "three_turns_on_one_thread",
    "client_held_history_on_a_fresh_thread",
    "reasoning",
    "cancelled_run",
    "errored_run",
    "graph_interrupt_then_resume",
]


def need_node() -> None:
    if shutil.which("node") is None or not (JS / "node_modules").exists():
        pytest.fail("needs Node 20 and `npm ci` in tests/js/agui (scripts/install does it)")


async def _stuck(call: int, index: int) -> None:
    if index == 1:
        await anyio.sleep_forever()  # until the run is cancelled


def booking_graph(path: Path) -> Any:
    class State(TypedDict):
        messages: Annotated[list[AnyMessage], add_messages]

    def ask(state: State) -> dict[str, Any]:
        city = interrupt({"question": "Which city?"})
        return {"messages": [AIMessage(content=f"Booked a trip to {city}.")]}

    builder = StateGraph(State)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", END)
    return wrap(builder.compile(), checkpoint_path=path)


def agents(tmp: Path) -> dict[str, Any]:
    """One served agent per scenario set; the reject policy (the default) everywhere."""
    stuck = ScriptedChatModel(
        turns=[[AIMessageChunk(content="Hel"), AIMessageChunk(content="lo")]], before_chunk=_stuck
    )
    failing = ScriptedChatModel(turns=[[AIMessageChunk(content="Hel"), Fail(RuntimeError("boom"))]])
    return {
        "offline": Agent(OfflineChatModel(token_delay=0), demo_tools(), store=MemoryStore()),
        "reasoning": Agent(resolve("offline:reasoning"), demo_tools(), store=MemoryStore()),
        "stuck": Agent(stuck, store=MemoryStore()),
        "failing": Agent(failing, store=MemoryStore()),
        "graph": booking_graph(tmp / "graph.db"),
    }


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    need_node()
    tmp = tmp_path_factory.mktemp("agui")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AGENTCAST_OFFLINE_DELAY", "0")  # the model inside get_items too
        patch.setenv("AGENTCAST_HOME", str(tmp / "home"))
        servers = {
            name: LiveServer(create_app(agent, store=MemoryStore(), tune_gc=False))
            for name, agent in agents(tmp).items()
        }
        for server in servers.values():
            server.__enter__()
        try:
            urls = json.dumps({name: server.url for name, server in servers.items()})
            done = subprocess.run(
                ["node", "e2e.mjs", urls],
                cwd=JS,
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
        finally:
            for server in servers.values():
                server.__exit__()
    assert done.returncode == 0, done.stderr
    yield json.loads(done.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_real_agui_client(report: dict[str, Any], scenario: str) -> None:
    result = report[scenario]
    assert result["ok"], result


def test_every_scenario_of_the_script_is_checked() -> None:
    script = (JS / "e2e.mjs").read_text()
    defined = [
        line.split("(")[0].strip().removeprefix("async ")
        for line in script.splitlines()
        if line.startswith("  async ") and line.rstrip().endswith("() {")
    ]
    assert defined == SCENARIOS


# -- examples/agui: the HttpAgent page in headless Chromium ----------------------------------

EXAMPLE = Path(__file__).parent.parent / "examples" / "agui"
CHROMIUM = "/usr/bin/chromium"
CAT = "What items are located where the cat is hiding?"
CAT_ANSWER = (
    "The cat is hiding **under the bed**. Items located there: socks, a pair of shoes and some"
    " dust bunnies."
)


class PageServer:
    """The example's own `node serve.mjs` (what `npm start` runs), on an ephemeral port."""

    def __enter__(self) -> PageServer:
        self._process = subprocess.Popen(
            ["node", "serve.mjs"],
            cwd=EXAMPLE,
            env={**os.environ, "PORT": "0"},
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        self.url = self._process.stdout.readline().strip().rstrip("/")
        if not self.url.startswith("http://127.0.0.1:"):
            self._process.kill()
            raise RuntimeError(f"serve.mjs did not start: {self.url!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)
        assert self._process.stdout is not None
        self._process.stdout.close()


@pytest.mark.slow
def test_the_example_page_chats_through_agui_in_chromium() -> None:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (scripts/install does)")
    need_node()
    if not (EXAMPLE / "node_modules" / "@ag-ui" / "client").exists():
        pytest.fail("run `npm ci` in examples/agui (scripts/install does it)")
    agent = Agent(OfflineChatModel(token_delay=0.005), demo_tools(), store=MemoryStore())
    with PageServer() as page_server:
        app = create_app(agent, tune_gc=False, cors_origins=[page_server.url])
        with LiveServer(app) as api, playwright_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], headless=True
            )
            page = browser.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on(
                "console",
                lambda m: problems.append(m.text) if m.type in ("error", "warning") else None,
            )
            page.goto(f"{page_server.url}/index.html?server={api.url}")
            expect = playwright_api.expect
            expect(page.locator("#url")).to_have_text(f"{api.url}/agui")

            def ask(prompt: str) -> None:
                page.get_by_test_id("prompt").fill(prompt)
                page.get_by_test_id("send").click()
                expect(page.get_by_test_id("status")).to_have_text("success", timeout=15_000)
                expect(page.get_by_test_id("send")).to_be_enabled()

            ask(CAT)
            expect(page.get_by_test_id("answer").last).to_have_text(CAT_ANSWER)
            items = page.locator('[data-testid="tool-call"][data-tool-name="get_items"]')
            expect(items.locator(".subagent")).to_have_text(
                "socks, a pair of shoes and some dust bunnies"
            )
            expect(items.locator(".result")).to_contain_text("socks")
            ask("My name is Dana.")
            ask("What's my name?")  # the client holds the thread; never refused as busy
            expect(page.get_by_test_id("answer").last).to_have_text("Your name is Dana.")
            expect(page.get_by_test_id("user-message")).to_have_count(3)
            browser.close()
    assert not problems, problems
