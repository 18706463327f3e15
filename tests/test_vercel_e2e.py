"""The real Vercel AI SDK clients against a real server: `ai` 5.0.216 and 6.x under Node.

`tests/js/vercel/chat.mjs` runs `AbstractChat` + `DefaultChatTransport` (what `useChat` runs)
through a scenario and reports every request's chunks, the chat's messages and status, and
any client warning, error or strict-schema failure; a test fails on any it did not expect.
The server is real uvicorn on 127.0.0.1 with the offline demo model (or a scripted one).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessageChunk

from agentcast import Agent
from agentcast.models import OfflineChatModel
from agentcast.models.demo_tools import demo_tools
from agentcast.server import create_app
from agentcast.sessions import MemoryStore
from agentcast.testing import Fail, ScriptedChatModel
from tests.live_server import LiveServer
from tests.vercel_protocol import check_sse_body, check_ui_stream, run_node

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("version", ["ai5", "ai6"])]

CAT = "What items are located where the cat is hiding?"
ITEMS = "socks, a pair of shoes and some dust bunnies"
STORY = "Tell me about yourself."


def serve(model: Any = None, **config: Any) -> LiveServer:
    model = model or OfflineChatModel(token_delay=0)
    return LiveServer(create_app(Agent(model, demo_tools(), store=MemoryStore()), **config))


def chat(version: str, server: LiveServer, steps: list[dict[str, Any]], **scenario: Any) -> Any:
    """Run a scenario; fail on any warning or schema failure; check every stream's rules."""
    scenario = {"base": server.url, "chatId": "chat-1", "steps": steps, **scenario}
    report = run_node("chat.mjs", version, json.dumps(scenario))
    assert report["warnings"] == []
    assert report["schemaErrors"] == []
    for request in report["requests"]:
        if request["status"] == 200 and not request.get("cut"):
            assert request["headers"]["x-vercel-ai-ui-message-stream"] == "v1"
            check_ui_stream(check_sse_body(request["raw"]))
    return report


def answers(report: Any) -> list[str]:
    return [
        "".join(p["text"] for p in m["parts"] if p["type"] == "text")
        for m in report["messages"]
        if m["role"] == "assistant"
    ]


def parts(message: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    return [p for p in message["parts"] if p["type"].startswith(prefix)]


def outcome_of(server: LiveServer, run_id: str) -> str:
    """The run's outcome, read from its native stream (which ends at its agent_end)."""
    with httpx.stream("GET", f"{server.url}/runs/{run_id}/stream?stream_tokens=false") as r:
        frames = r.read().decode().split("\n\n")
    end = next(f for f in frames if "event: agent_end" in f)
    data = json.loads(next(line for line in end.split("\n") if line.startswith("data: "))[6:])
    return str(data.get("outcome") or data["data"]["outcome"])


@pytest.fixture
def server() -> Iterator[LiveServer]:
    with serve() as live:
        yield live


def test_text_one_tool_parallel_tools_and_the_nested_llm(version: str, server: LiveServer) -> None:
    report = chat(
        version,
        server,
        [
            {"op": "send", "text": "Hello!"},
            {"op": "send", "text": "What is 25 * 4?"},
            {"op": "send", "text": "What is 2+3 and 4*5?"},
            {"op": "send", "text": CAT},
        ],
    )
    assert report["errors"] == [] and report["status"] == "ready"
    hello, one, two, cat = [m for m in report["messages"] if m["role"] == "assistant"]
    assert answers(report)[0]
    assert [p["state"] for p in parts(one, "tool-")] == ["output-available"]
    assert "100" in answers(report)[1]
    parallel = parts(two, "tool-")
    assert len(parallel) == 2 and len({p["toolCallId"] for p in parallel}) == 2
    assert sorted(str(p["output"]) for p in parallel) == ["20", "5"]
    # The answer is in a later step than the tool outputs it follows.
    kinds = [p["type"] for p in two["parts"]]
    assert kinds.index("text") > max(i for i, k in enumerate(kinds) if k.startswith("tool-"))
    assert kinds[kinds.index("text") - 1] == "step-start"
    # The LLM inside get_items: one data part, updated in place, its text never a text part.
    nested = parts(cat, "data-agentcast-llm")
    assert len(nested) == 1 and nested[0]["data"]["text"] == ITEMS
    assert nested[0]["data"]["parentId"] == parts(cat, "tool-get_items")[0]["toolCallId"]
    assert ITEMS in answers(report)[3] and not answers(report)[3].startswith(ITEMS)
    assert cat["metadata"]["outcome"] == "success" and cat["metadata"]["metrics"]["tool_calls"] == 2
    assert [f["finishReason"] for f in report["finishes"]] == ["stop"] * 4


def test_a_three_turn_conversation_and_a_regenerate(version: str, server: LiveServer) -> None:
    report = chat(
        version,
        server,
        [
            {"op": "send", "text": "My name is Alice."},
            {"op": "send", "text": "What is 12 + 30?"},
            {"op": "send", "text": "What's my name?"},
            {"op": "regenerate"},
        ],
    )
    assert report["errors"] == []
    said = answers(report)
    assert len(said) == 3  # the regenerated answer replaced the third
    assert "Alice" in said[0] and "42" in said[1] and "Alice" in said[2]
    third, regenerated = report["finishes"][2]["id"], report["finishes"][3]["id"]
    assert third != regenerated == report["messages"][-1]["id"]
    assert [r["op"] for r in report["requests"]] == ["send", "send", "send", "regenerate"]


def test_client_held_history_on_a_fresh_chat(version: str, server: LiveServer) -> None:
    held = [
        {"id": "u0", "role": "user", "parts": [{"type": "text", "text": "My name is Bob."}]},
        {"id": "a0", "role": "assistant", "parts": [{"type": "text", "text": "Hi Bob!"}]},
    ]
    report = chat(
        version, server, [{"op": "send", "text": "What's my name?"}], chatId="bob", messages=held
    )
    assert report["errors"] == [] and "Bob" in answers(report)[-1]


def test_reasoning(version: str) -> None:
    with serve(OfflineChatModel(token_delay=0, reasoning=True)) as live:
        report = chat(version, live, [{"op": "send", "text": "What is 25 * 4?"}])
    message = report["messages"][-1]
    reasoning = parts(message, "reasoning")
    assert reasoning and all(p["text"] and p["state"] == "done" for p in reasoning)
    assert "100" in answers(report)[-1]


def test_a_client_abort_follows_the_disconnect_policy(version: str) -> None:
    with serve(OfflineChatModel(token_delay=0.02), disconnect="cancel") as live:
        report = chat(version, live, [{"op": "stop", "text": STORY, "when": "text"}])
        stopped = report["finishes"][0]
        assert stopped["isAbort"] and report["requests"][0]["cut"] == "AbortError"
        # Under the default policy (grace) the run would go on to `success`.
        assert outcome_of(live, stopped["id"]) == "cancelled"
        # The next message on the chat, with the partial answer in its history, is answered.
        after = chat(version, live, [{"op": "send", "text": "Hello!"}], messages=report["messages"])
    assert after["errors"] == [] and after["status"] == "ready"
    assert len(answers(after)) == 2 and answers(after)[1]


def test_a_cancelled_run_ends_with_abort_and_its_partial_answer(version: str) -> None:
    with serve(OfflineChatModel(token_delay=0.02)) as live:
        report = chat(version, live, [{"op": "cancel", "text": STORY}])
    request = report["requests"][0]
    assert request["cancelStatus"] == 202
    assert [c["type"] for c in request["chunks"][-2:]] == ["abort", "finish"]
    assert report["errors"] == [] and report["status"] == "ready"
    message = report["messages"][-1]
    assert message["metadata"]["outcome"] == "cancelled" and answers(report)[-1]
    assert report["finishes"][0]["finishReason"] == "other"


def test_an_errored_run_is_an_error_the_client_reports(version: str) -> None:
    model = ScriptedChatModel(turns=[[AIMessageChunk(content="Par"), Fail(RuntimeError("boom"))]])
    with serve(model) as live:
        report = chat(version, live, [{"op": "send", "text": "Hello"}])
    request = report["requests"][0]
    errors = [c for c in request["chunks"] if c["type"] == "error"]
    assert len(errors) == 1 and "boom" in errors[0]["errorText"]
    assert report["status"] == "error" and report["errors"] == [errors[0]["errorText"]]
    assert request["chatError"] == errors[0]["errorText"]
    assert answers(report) == ["Par"]


def test_resume_after_a_dropped_connection_gets_the_whole_answer(version: str) -> None:
    with serve(OfflineChatModel(token_delay=0.02)) as live:
        report = chat(
            version,
            live,
            [
                {"op": "stop", "text": CAT, "when": "tool"},  # the connection drops mid-run
                {"op": "reload"},  # a new page: the messages up to the user's
                {"op": "resume"},  # GET /api/chat/{id}/stream: the run, from its start
                {"op": "resume"},  # it has ended: 204, nothing to resume
            ],
        )
    dropped, resumed, after = report["requests"]
    assert dropped["cut"] == "AbortError"
    assert resumed["status"] == 200 and resumed["url"].endswith("/api/chat/chat-1/stream")
    assert after["status"] == 204
    assert report["errors"] == [] and report["status"] == "ready"
    assert [m["role"] for m in report["messages"]] == ["user", "assistant"]
    message = report["messages"][-1]
    assert message["id"] == report["finishes"][0]["id"]  # the same run
    assert ITEMS in answers(report)[-1] and message["metadata"]["outcome"] == "success"
    assert len(parts(message, "tool-")) == 2
