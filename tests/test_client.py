"""`agentcast.client` against a real server, and the `tail` / `chat --url` commands.

Every async test serves `create_app(agent)` with uvicorn on 127.0.0.1 (an ephemeral port) in
the test's own event loop. A broken connection is real: a TCP proxy on 127.0.0.1 that drops
the connection after some bytes, or an ASGI middleware that ends the response early. Runs
that must still be in progress block in a tool on an `anyio.Event` the test controls, so no
test depends on timing. The CLI tests run `python -m agentcast serve` and the client
commands as subprocesses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import re
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import anyio
import httpx
import httpx_sse
import pytest
import uvicorn
from anyio.abc import SocketAttribute, SocketStream
from langchain_core.tools import BaseTool, tool

from agentcast import Agent
from agentcast.client import (
    AsyncClient,
    Client,
    ClientError,
    ConnectionLost,
    NotFound,
    ServerUnreachable,
    StreamError,
    Unauthorized,
)
from agentcast.errors import AgentcastError, ConfigError, InvalidInput, SessionBusy, UserError
from agentcast.events import BaseEvent, from_json, to_dict
from agentcast.models import OfflineChatModel
from agentcast.models.demo_tools import demo_tools
from agentcast.server import create_app
from agentcast.sessions import MemoryStore
from agentcast.testing import check_invariants

pytestmark = pytest.mark.anyio

CAT = "What items are located where the cat is hiding?"
MATH = "What is 25 * 4?"
DEADLINE = 20.0  # seconds: a bound on waits that normally take milliseconds


# -- a real server in the test's event loop ---------------------------------------------------


def offline_agent(delay: float = 0.0, tools: list[BaseTool] | None = None) -> Agent:
    return Agent(OfflineChatModel(token_delay=delay), tools or demo_tools(), store=MemoryStore())


def gated_agent(gate: anyio.Event) -> Agent:
    """The demo agent, but `where_cat_is_hiding` waits for `gate`: a run the test holds open."""

    @tool
    async def where_cat_is_hiding() -> str:
        """Return where the cat is hiding right now."""
        await gate.wait()
        return "under the bed"

    tools = [t for t in demo_tools() if t.name != "where_cat_is_hiding"]
    return offline_agent(tools=[*tools, where_cat_is_hiding])


@dataclass
class Served:
    url: str
    app: Any

    @property
    def manager(self) -> Any:
        return self.app.state.agentcast.manager


@contextlib.asynccontextmanager
async def serving(
    agent: Any, *, middleware: Callable[[Any], Any] | None = None, **config: Any
) -> AsyncIterator[Served]:
    app = create_app(agent, **config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(
            middleware(app) if middleware else app,
            lifespan="on",
            log_level="warning",
            timeout_graceful_shutdown=5,
        )
    )
    started = anyio.Event()
    startup = server.startup

    async def announced_startup(sockets: list[socket.socket] | None = None) -> None:
        await startup(sockets=sockets)
        started.set()

    server.startup = announced_startup  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        with anyio.fail_after(DEADLINE):
            await started.wait()
        yield Served(f"http://127.0.0.1:{sock.getsockname()[1]}", app)
    finally:
        # End every run first, so open streams get their agent_end and uvicorn drains at once.
        await app.state.agentcast.manager.aclose()
        server.should_exit = True
        await task


async def collect(events: Any) -> list[BaseEvent]:
    async with events:
        return [event async for event in events]


def shape(events: list[BaseEvent]) -> list[tuple[type, Any]]:
    """Each event's class and canonical dict, minus what differs between two runs: ids
    (numbered by first appearance), timestamps and durations."""
    timings = {"ts", "ttft_ms", "duration_ms", "tokens_per_s"}
    ids: dict[str, str] = {}

    def scrub(key: str, value: Any) -> Any:
        if key in timings:
            return None
        if key in {"run_id", "session_id", "call_id", "parent_id"} and isinstance(value, str):
            return ids.setdefault(value, f"id{len(ids)}")
        if isinstance(value, dict):
            return {k: scrub(k, v) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(key, v) for v in value]
        return value

    return [(type(event), scrub("", to_dict(event))) for event in events]


# -- streaming ----------------------------------------------------------------------------


@pytest.mark.parametrize("stream_tokens", [True, False], ids=["tokens", "no-tokens"])
async def test_stream_yields_the_same_events_as_the_in_process_api(stream_tokens: bool) -> None:
    agent = offline_agent()
    local = [e async for e in agent.astream(CAT, session_id="local", stream_tokens=stream_tokens)]
    async with serving(agent) as served, AsyncClient(served.url) as client:
        stream = client.stream(CAT, session_id="remote", stream_tokens=stream_tokens)
        remote = await collect(stream)
    assert shape(remote) == shape(local)
    assert any(e.type == "llm_token" and e.depth == 1 for e in remote) is stream_tokens
    assert {e.session_id for e in remote} == {"remote"}
    assert stream.run_id == remote[0].run_id and stream.session_id == "remote"
    assert stream.last_seq == remote[-1].seq and stream.reconnects == 0
    check_invariants(remote, contiguous=stream_tokens)


async def test_stream_events_equal_the_servers_log() -> None:
    async with serving(offline_agent()) as served, AsyncClient(served.url) as client:
        events = await collect(client.stream(MATH))
        log = served.manager.get(events[0].run_id).run.log.snapshot()
    assert events == list(log)  # the very event objects, field for field


async def test_join_a_finished_run_from_a_cursor() -> None:
    async with serving(offline_agent()) as served, AsyncClient(served.url) as client:
        live = await collect(client.stream(MATH))
        run_id = live[0].run_id
        assert await collect(client.join(run_id)) == live
        tail = await collect(client.join(run_id, after=10))
        assert tail == live[11:]
        assert [e.type for e in await collect(client.join(run_id, stream_tokens=False))] == [
            e.type for e in live if e.type != "llm_token"
        ]
        at_the_end = client.join(run_id, after=live[-1].seq)
        assert await collect(at_the_end) == [] and at_the_end.reconnects == 0
        with pytest.raises(InvalidInput, match="past this run's last event"):
            await collect(client.join(run_id, after=live[-1].seq + 5))


async def test_invoke_returns_the_result_and_the_run_is_addressable() -> None:
    async with serving(offline_agent()) as served, AsyncClient(served.url) as client:
        result = await client.invoke(MATH, session_id="inv", custom_data={"ticket": 7})
        status = await client.run(result["run_id"])
    assert set(result) == {"output", "session_id", "run_id", "steps", "metrics", "outcome", "error"}
    assert result["outcome"] == "success" and result["error"] is None
    assert "100" in result["output"] and result["session_id"] == "inv"
    assert result["metrics"]["tool_calls"] == 1
    assert status["status"] == "finished" and status["outcome"] == "success"
    assert status["output"] == result["output"] and status["session_id"] == "inv"


async def test_history_across_turns_and_delete() -> None:
    async with serving(offline_agent()) as served, AsyncClient(served.url) as client:
        await collect(client.stream("My name is Bob", session_id="h"))
        answer = await client.invoke("What's my name?", session_id="h")
        history = await client.history("h")
        assert [s["session_id"] for s in await client.sessions()] == ["h"]
        await client.delete_session("h")
        with pytest.raises(NotFound, match="no session 'h'"):
            await client.history("h")
        with pytest.raises(NotFound):
            await client.delete_session("h")
    assert answer["output"] == "Your name is Bob."
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    assert history[-1]["content"] == "Your name is Bob."


async def test_cancel_mid_run_ends_cancelled_and_keeps_the_partial_turn() -> None:
    gate = anyio.Event()
    async with serving(gated_agent(gate)) as served, AsyncClient(served.url) as client:
        events: list[BaseEvent] = []
        async with client.stream(CAT, session_id="c") as stream:
            async for event in stream:
                events.append(event)
                if event.type == "tool_start":  # the run now waits in the tool
                    assert (await stream.cancel())["status"] == "cancelling"
        status = await client.run(events[0].run_id)
        history = await client.history("c")
        assert (await client.cancel(events[0].run_id))["status"] == "finished"
    assert events[-1].type == "agent_end" and events[-1].outcome == "cancelled"
    assert [e for e in events if e.type == "tool_end"][-1].status == "cancelled"
    check_invariants(events)
    assert status["status"] == "finished" and status["outcome"] == "cancelled"
    assert [m["role"] for m in history] == ["user", "assistant", "tool"]
    assert history[-1]["status"] == "cancelled"


# -- resume after a broken connection ----------------------------------------------------------


class CuttingProxy:
    """A TCP proxy on 127.0.0.1 that drops connection number i after `budget(i)` bytes of
    response (None: never). It records each connection's request bytes."""

    def __init__(self, upstream_port: int, budget: Callable[[int], int | None]) -> None:
        self.upstream_port = upstream_port
        self.budget = budget
        self.requests: list[bytes] = []
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def resume_cursors(self) -> list[str]:
        """The Last-Event-ID header of each connection that sent one."""
        found = []
        for raw in self.requests:
            for line in raw.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.lower() == "last-event-id":
                    found.append(value.strip())
        return found

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[CuttingProxy]:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = listener.extra(SocketAttribute.local_port)
        async with listener, anyio.create_task_group() as group:
            group.start_soon(listener.serve, self._relay)
            yield self
            group.cancel_scope.cancel()

    async def _relay(self, downstream: SocketStream) -> None:
        index = len(self.requests)
        self.requests.append(b"")
        budget = self.budget(index)
        async with (
            downstream,
            await anyio.connect_tcp("127.0.0.1", self.upstream_port) as up,
            anyio.create_task_group() as group,
        ):

            async def requests() -> None:
                with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    async for chunk in downstream:
                        self.requests[index] += chunk
                        await up.send(chunk)
                group.cancel_scope.cancel()

            async def responses() -> None:
                sent = 0
                with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    async for chunk in up:
                        if budget is not None and sent + len(chunk) >= budget:
                            await downstream.send(chunk[: budget - sent])
                            break  # drop both connections: a cut, mid-frame or not
                        await downstream.send(chunk)
                        sent += len(chunk)
                group.cancel_scope.cancel()

            group.start_soon(requests)
            group.start_soon(responses)


@pytest.mark.parametrize("cut_at", [400, 1_500, 4_321])
async def test_a_cut_connection_is_resumed_with_every_event_once(cut_at: int) -> None:
    async with serving(offline_agent(delay=0.002)) as served:
        upstream = int(served.url.rsplit(":", 1)[1])
        proxy = CuttingProxy(upstream, lambda i: cut_at if i == 0 else None)
        async with (
            proxy.running(),
            AsyncClient(proxy.url, backoff=0.01) as client,
        ):
            events: list[BaseEvent] = []
            before_cut: int | None = None  # the last seq delivered by the first connection
            async with client.stream(CAT, session_id="cut") as stream:
                async for event in stream:
                    if stream.reconnects and before_cut is None:
                        before_cut = events[-1].seq if events else -1
                    events.append(event)
        log = list(served.manager.get(stream.run_id).run.log.snapshot())
    assert events == log, "every event exactly once, in order, to agent_end"
    assert [e.seq for e in events] == list(range(len(events)))
    assert events[-1].type == "agent_end" and events[-1].outcome == "success"
    assert stream.reconnects == 1 and len(proxy.requests) == 2
    assert proxy.requests[1].startswith(f"GET /runs/{stream.run_id}/stream".encode())
    # Resumed after the last event delivered (no header: none was, start from the beginning).
    assert proxy.resume_cursors() == ([] if before_cut == -1 else [str(before_cut)])


def end_first_response_early(
    app: Any, *, after_chunks: int, seen: list[str], sent: list[bytes] | None = None
) -> Any:
    """ASGI middleware: the first `POST /invoke` response ends cleanly after `after_chunks`
    body chunks (the rest is swallowed); records the Last-Event-ID of each resume request,
    and in `sent` the body bytes the client did get."""
    armed = [True]

    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if b"last-event-id" in headers:
            seen.append(headers[b"last-event-id"].decode())
        if scope["path"] != "/invoke" or not armed[0]:
            await app(scope, receive, send)
            return
        armed[0] = False
        chunks = 0

        async def truncating_send(message: Any) -> None:
            nonlocal chunks
            if chunks >= after_chunks:
                return  # the response is over as far as the client knows
            if message["type"] == "http.response.body":
                chunks += 1
                if sent is not None:
                    sent.append(message.get("body", b""))
                if chunks >= after_chunks:
                    message = {**message, "more_body": False}
            await send(message)

        await app(scope, receive, truncating_send)

    return middleware


async def test_a_stream_that_ends_without_agent_end_is_resumed() -> None:
    seen: list[str] = []
    sent: list[bytes] = []
    gate = anyio.Event()

    def middleware(app: Any) -> Any:
        return end_first_response_early(app, after_chunks=3, seen=seen, sent=sent)

    async with (
        serving(gated_agent(gate), middleware=middleware) as served,
        AsyncClient(served.url, backoff=0.01) as client,
    ):
        events: list[BaseEvent] = []
        async with client.stream(CAT) as stream:
            async for event in stream:
                events.append(event)
                if event.type == "tool_start":
                    gate.set()  # the resumed stream is live: let the run finish
    # A body chunk may hold several events (one write per wake-up): the client resumes after
    # the last `id:` it received.
    last_id = re.findall(rb"\nid: (\d+)\n", b"".join(sent))[-1].decode()
    assert seen == [last_id], "resumed after the last event the cut stream delivered"
    assert [e.seq for e in events] == list(range(len(events)))
    assert events[-1].type == "agent_end" and events[-1].outcome == "success"
    assert stream.reconnects == 1
    check_invariants(events)


async def test_reconnect_limit_exceeded_is_a_clear_error() -> None:
    gate = anyio.Event()
    async with serving(gated_agent(gate)) as served:
        upstream = int(served.url.rsplit(":", 1)[1])
        # The first connection breaks after a few events; every resume breaks before any.
        proxy = CuttingProxy(upstream, lambda i: 1_200 if i == 0 else 0)
        async with (
            proxy.running(),
            AsyncClient(proxy.url, max_reconnects=2, backoff=0.001) as client,
        ):
            delivered: list[BaseEvent] = []
            with pytest.raises(ConnectionLost) as caught:
                async with client.stream(CAT) as stream:
                    async for event in stream:
                        delivered.append(event)
        gate.set()
    error = caught.value
    assert isinstance(error, ClientError) and error.code == "connection_lost"
    assert error.run_id == stream.run_id and error.last_seq == delivered[-1].seq
    assert "2 reconnect attempts" in error.message and stream.run_id in error.message
    assert isinstance(error.__cause__, httpx.TransportError)
    assert len(proxy.requests) == 3
    assert [e.seq for e in delivered] == list(range(len(delivered)))


def sse(*events: BaseEvent) -> bytes:
    from agentcast.encoders.sse import encode_event

    return b"".join(encode_event(e) for e in events)


async def test_resume_skips_heartbeats_and_unknown_types_and_retries_a_gateway_error() -> None:
    """The wire, scripted: the first response ends early; the resume gets a 503, then the rest."""
    from agentcast.events import AgentEnd, AgentStart, Custom

    start = AgentStart(run_id="r1", seq=0, input="hi")
    step = Custom(run_id="r1", seq=1, name="progress", data={"done": 1})
    end = AgentEnd(run_id="r1", seq=2, outcome="success", output="hello", steps=1)
    requests: list[httpx.Request] = []
    stream_headers = {"Content-Type": "text/event-stream", "X-Run-Id": "r1"}

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.url.path == "/invoke":
            first = sse(start) + b": ping\n\n" + sse(step) + b"event: v2_thing\ndata: {}\n\n"
            return httpx.Response(200, content=first, headers=stream_headers)
        if request.url.path == "/runs/r1":
            return httpx.Response(200, json={"status": "running", "last_seq": 1})
        if len([r for r in requests if r.url.path == "/runs/r1/stream"]) == 1:
            return httpx.Response(503, text="upstream busy")
        # A server that resends what the client has already seen must not duplicate it.
        return httpx.Response(200, content=sse(step, end), headers=stream_headers)

    transport = httpx.MockTransport(handler)
    async with AsyncClient("http://agentcast.test", transport=transport, backoff=0) as client:
        stream = client.stream("hi", stream_tokens=False)
        events = await collect(stream)
    assert events == [start, step, end]
    assert stream.reconnects == 2 and stream.run_id == "r1"
    resumes = [r for r in requests if r.url.path == "/runs/r1/stream"]
    assert [r.headers["last-event-id"] for r in resumes] == ["1", "1"]
    assert all(r.url.params["stream_tokens"] == "false" for r in resumes)
    assert json.loads(requests[0].content)["stream_tokens"] is False


async def test_a_run_the_server_forgot_cannot_be_resumed() -> None:
    from agentcast.events import AgentStart

    start = AgentStart(run_id="r1", seq=0, input="hi")

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/invoke":  # ends early; then the server restarts
            headers = {"Content-Type": "text/event-stream", "X-Run-Id": "r1"}
            return httpx.Response(200, content=sse(start), headers=headers)
        return httpx.Response(404, json={"error": {"code": "run_not_found", "message": "no run"}})

    transport = httpx.MockTransport(handler)
    async with AsyncClient("http://agentcast.test", transport=transport, backoff=0) as client:
        with pytest.raises(ConnectionLost, match="run r1 broke after seq 0") as caught:
            await collect(client.stream("hi"))
    assert isinstance(caught.value.__cause__, NotFound)
    assert caught.value.run_id == "r1" and caught.value.last_seq == 0


# -- errors ---------------------------------------------------------------------------------


async def test_a_busy_session_is_session_busy() -> None:
    gate = anyio.Event()
    async with serving(gated_agent(gate)) as served, AsyncClient(served.url) as client:
        async with client.stream(CAT, session_id="busy") as first:
            async for event in first:
                if event.type == "tool_start":
                    break
            with pytest.raises(SessionBusy, match="already has a run in progress") as caught:
                await client.invoke(MATH, session_id="busy")
            assert caught.value.code == "session_busy"
            with pytest.raises(SessionBusy):
                await collect(client.stream(MATH, session_id="busy"))
            gate.set()
            rest = await collect(client.join(first.run_id, after=first.last_seq))
        assert rest[-1].type == "agent_end" and rest[-1].outcome == "success"
        assert (await client.invoke(MATH, session_id="busy"))["outcome"] == "success"


async def test_api_keys() -> None:
    async with serving(offline_agent(), api_keys={"s3cret": "alice"}) as served:
        for key in (None, "wrong"):
            async with AsyncClient(served.url, api_key=key) as anonymous:
                with pytest.raises(Unauthorized, match="Authorization: Bearer") as caught:
                    await anonymous.invoke(MATH)
                with pytest.raises(Unauthorized):
                    await collect(anonymous.stream(MATH))
            assert caught.value.status_code == 401 and caught.value.code == "unauthorized"
            assert isinstance(caught.value, UserError)
        async with AsyncClient(served.url, api_key="s3cret") as alice:
            events = await collect(alice.stream(MATH, session_id="mine"))
            assert events[0].actor_id == "alice" and events[-1].outcome == "success"
            assert await alice.history("mine")


async def test_another_keys_session_stays_private_past_10000_sessions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import agentcast.sessions.memory

    clock = iter(range(1, 1_000_000))  # every append strictly later than the one before
    fake_time = SimpleNamespace(time_ns=lambda: next(clock) * 1_000_000)
    monkeypatch.setattr(agentcast.sessions.memory, "time", fake_time)
    store = MemoryStore()
    agent = Agent(OfflineChatModel(token_delay=0), demo_tools(), store=store)
    async with (
        serving(agent, api_keys={"key-a": "alice", "key-b": "bob"}) as served,
        AsyncClient(served.url, api_key="key-a") as alice,
        AsyncClient(served.url, api_key="key-b") as bob,
    ):
        await alice.invoke("My name is Alice", session_id="secret")
        # bob's "secret" is bob's own session (per-owner namespaces): never Alice's.
        assert "Alice" not in (await bob.invoke("What's my name?", session_id="secret"))["output"]
        for number in range(10_000):  # other people's newer conversations
            await store.append(f"s{number}", [{"role": "user", "content": "hi"}], actor_id="carol")
        assert "Alice" not in (await bob.invoke("What's my name?", session_id="secret"))["output"]
        assert "Alice" in (await alice.invoke("What's my name?", session_id="secret"))["output"]


async def test_invalid_input_and_unknown_ids() -> None:
    async with serving(offline_agent()) as served, AsyncClient(served.url) as client:
        with pytest.raises(InvalidInput, match="the prompt is empty") as caught:
            await client.invoke("   ")
        assert caught.value.code == "invalid_input"
        with pytest.raises(InvalidInput):
            await collect(client.stream(""))
        for call in (client.run, client.cancel, lambda r: collect(client.join(r))):
            with pytest.raises(NotFound, match=f"no run 'nope' on {served.url}"):
                await call("nope")


async def test_an_unreachable_server_is_named() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with AsyncClient(url) as client:
        with pytest.raises(ServerUnreachable, match=f"cannot reach the agentcast server at {url}"):
            await client.invoke(MATH)
        with pytest.raises(ServerUnreachable):
            await collect(client.stream(MATH))
        with pytest.raises(ServerUnreachable):
            await collect(client.join("run_x"))
    with pytest.raises(ConfigError, match="http:// or https://"):
        AsyncClient("127.0.0.1:8000")


async def test_a_response_that_is_not_an_event_stream_is_a_stream_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, html="<h1>a login page</h1>", headers={"X-Run-Id": "r"})

    transport = httpx.MockTransport(handler)
    async with AsyncClient("http://agentcast.test", transport=transport) as client:
        with pytest.raises(StreamError, match="got 'text/html'") as caught:
            await collect(client.stream(MATH))
    assert isinstance(caught.value, httpx_sse.SSEError)
    assert isinstance(caught.value, AgentcastError)


async def test_an_undecodable_event_is_a_stream_error() -> None:
    body = b"id: 0\nevent: agent_start\ndata: {not json\n\n"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"Content-Type": "text/event-stream"})

    transport = httpx.MockTransport(handler)
    async with AsyncClient("http://agentcast.test", transport=transport) as client:
        with pytest.raises(StreamError, match="undecodable event"):
            await collect(client.join("r"))


# -- the blocking client --------------------------------------------------------------------


def sync_scenario(url: str) -> dict[str, Any]:
    """Plain blocking code, as a script would use the client."""
    with Client(url) as client:
        with client.stream("My name is Ann", session_id="sync") as stream:
            events = list(stream)
        result = client.invoke("What's my name?", session_id="sync")
        status = client.run(result["run_id"])
        history = client.history("sync")
        joined = list(client.join(stream.run_id or "", after=0))
        with pytest.raises(NotFound):
            client.run("nope")
    return {
        "events": events,
        "run_id": stream.run_id,
        "result": result,
        "status": status,
        "history": history,
        "joined": joined,
    }


async def test_the_sync_client_works_from_blocking_code() -> None:
    async with serving(offline_agent()) as served:
        # Blocking code must not run on the server's loop: a worker thread plays the script.
        seen = await anyio.to_thread.run_sync(sync_scenario, served.url)
    events = seen["events"]
    assert events[0].run_id == seen["run_id"] and events[-1].outcome == "success"
    check_invariants(events)
    assert seen["joined"] == events[1:]
    assert seen["result"]["output"] == "Your name is Ann."
    assert seen["status"]["outcome"] == "success"
    assert [m["role"] for m in seen["history"]] == ["user", "assistant"] * 2


def test_the_sync_client_closes_its_loop_thread() -> None:
    client = Client("http://127.0.0.1:9")
    assert "agentcast-client" in {t.name for t in threading.enumerate()}
    with pytest.raises(ServerUnreachable):
        client.health()
    client.close()
    client.close()
    assert "agentcast-client" not in {t.name for t in threading.enumerate()}


def test_the_client_layer_imports_no_server_runtime_or_framework() -> None:
    # rich is not checked: httpx itself imports it (httpx._main) when it is installed.
    probe = textwrap.dedent(
        """
        import sys
        import agentcast.client
        bad = {"starlette", "fastapi", "uvicorn", "langchain_core", "langgraph"}
        ours = ("agentcast.runtime", "agentcast.server", "agentcast.sources",
                "agentcast.console", "agentcast.cli", "agentcast.sessions")
        leaked = sorted(
            m for m in sys.modules
            if m.partition(".")[0] in bad or m in ours or m.startswith(tuple(o + "." for o in ours))
        )
        assert not leaked, leaked
        """
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# -- the commands: tail and chat --url ------------------------------------------------------

_BLOCKING_AGENT = '''
import asyncio

from langchain_core.tools import tool

from agentcast import Agent
from agentcast.models.demo_tools import demo_tools


@tool
async def get_items(place: str) -> str:
    """List the items located in a place (this one never answers: it waits to be stopped)."""
    await asyncio.Event().wait()
    return ""


agent = Agent("offline", [t for t in demo_tools() if t.name != "get_items"] + [get_items])
'''


@dataclass
class CliServer:
    url: str
    process: subprocess.Popen[str]
    env: dict[str, str] = field(default_factory=dict)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def cli_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliServer]:
    """`agentcast serve` in a subprocess: the demo agent, but `get_items` blocks until stopped."""
    home = tmp_path_factory.mktemp("serve")
    (home / "blocking_agent.py").write_text(_BLOCKING_AGENT, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCAST_")}
    env.update(AGENTCAST_HOME=str(home), AGENTCAST_OFFLINE_DELAY="0.01", PYTHONIOENCODING="utf-8")
    port = _free_port()
    agent = f"{home / 'blocking_agent.py'}:agent"
    process = subprocess.Popen(
        [sys.executable, "-m", "agentcast", "serve", "--port", str(port), "--agent", agent],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        # `agentcast serve` prints its banner once it listens: wait for that line, not a timer.
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60)
        banner = process.stdout.readline() if ready else ""
        assert "serving" in banner, f"the server did not start: {process.communicate()[1]}"
        yield CliServer(url, process, env)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def _agentcast(
    *args: str, env: dict[str, str], input: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentcast", *args],
        input=input,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        env=env,
    )


def _one_error_line(result: subprocess.CompletedProcess[str], status: int, fragment: str) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert result.returncode == status, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("agentcast: "), result.stderr
    assert fragment in lines[0]


@pytest.mark.slow
def test_tail_renders_a_finished_run(cli_server: CliServer) -> None:
    with Client(cli_server.url) as client:
        result = client.invoke(MATH)
    plain = _agentcast("tail", result["run_id"], "--url", cli_server.url, env=cli_server.env)
    assert plain.returncode == 0, plain.stderr
    assert plain.stderr == "" and "\x1b" not in plain.stdout
    assert "[tool] multiply" in plain.stdout and "25 * 4 = **100**." in plain.stdout
    assert "1 tool call" in plain.stdout.splitlines()[-1]  # the footer, as in `chat`

    raw = _agentcast(
        "tail", result["run_id"], "--url", cli_server.url, "--json", "--after", "10",
        env=cli_server.env,
    )  # fmt: skip
    assert raw.returncode == 0, raw.stderr
    events = [from_json(line) for line in raw.stdout.splitlines()]
    assert events[0].seq == 11 and events[-1].type == "agent_end"
    assert [e.seq for e in events] == list(range(11, events[-1].seq + 1))
    assert events[-1].output == result["output"]


@pytest.mark.slow
def test_tail_follows_a_live_run_to_its_end(cli_server: CliServer) -> None:
    with Client(cli_server.url) as client, client.stream("My name is Tailor") as stream:
        first = next(stream)
        tail = subprocess.Popen(
            [sys.executable, "-m", "agentcast", "tail", first.run_id, "--url", cli_server.url],
            env=cli_server.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        rest = list(stream)
        out, err = tail.communicate(timeout=60)
    assert rest[-1].type == "agent_end"
    assert tail.returncode == 0, err
    assert "Nice to meet you, Tailor!" in out


@pytest.mark.slow
def test_tail_errors_are_one_line(cli_server: CliServer) -> None:
    unknown = _agentcast("tail", "run_nope", "--url", cli_server.url, env=cli_server.env)
    _one_error_line(unknown, 2, f"no run 'run_nope' on {cli_server.url}")
    closed = f"http://127.0.0.1:{_free_port()}"
    unreachable = _agentcast("tail", "run_nope", "--url", closed, env=cli_server.env)
    _one_error_line(unreachable, 1, f"cannot reach the agentcast server at {closed}")
    bad_url = _agentcast("tail", "run_nope", "--url", "localhost:1", env=cli_server.env)
    _one_error_line(bad_url, 2, "http:// or https://")
    local_only = _agentcast(
        "chat", "--url", cli_server.url, "--store", "memory://", env=cli_server.env
    )
    _one_error_line(local_only, 2, "--store configure a local agent")


@pytest.mark.slow
def test_chat_with_a_remote_server_remembers_across_turns(cli_server: CliServer) -> None:
    result = _agentcast(
        "chat", "--url", cli_server.url, "--session", "remote-bob",
        input="My name is Bob\nWhat's my name?\nexit\nMy name is Eve\n",
        env=cli_server.env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and "\x1b" not in result.stdout
    assert "offline demo model" in result.stdout and cli_server.url in result.stdout
    assert "Your name is Bob." in result.stdout
    with Client(cli_server.url) as client:
        history = client.history("remote-bob")
    assert [m["content"] for m in history if m["role"] == "user"] == [
        "My name is Bob",
        "What's my name?",
    ]


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT is POSIX")
def test_ctrl_c_in_a_remote_chat_cancels_the_run_on_the_server(cli_server: CliServer) -> None:
    chat = subprocess.Popen(
        [sys.executable, "-m", "agentcast", "chat", "--url", cli_server.url, "--session", "stop"],
        env=cli_server.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        bufsize=1,
    )
    assert chat.stdin is not None and chat.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert chat.stdout is not None
        for line in chat.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()

    def wait_for(fragment: str) -> list[str]:
        seen = []
        deadline = time.monotonic() + DEADLINE
        while True:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            assert line is not None, f"output ended before {fragment!r}: {seen}"
            seen.append(line)
            if fragment in line:
                return seen

    try:
        chat.stdin.write(CAT + "\n")
        chat.stdin.flush()
        wait_for('[tool] get_items {"place": "under the bed"}')  # it blocks there for good
        chat.send_signal(signal.SIGINT)
        shown = wait_for("stopped; the partial answer is kept in the session")
        chat.stdin.write("exit\n")
        chat.stdin.flush()
        assert chat.wait(timeout=60) == 0
    finally:
        if chat.poll() is None:
            chat.kill()
        chat.wait()
        chat.stdin.close()
        reader.join(timeout=DEADLINE)
        chat.stdout.close()
        assert chat.stderr is not None
        err = chat.stderr.read()
        chat.stderr.close()
    assert "Traceback" not in err, err
    assert "[tool] get_items cancelled\n" in shown
    assert any(line.startswith("⏱ stopped") for line in shown)  # the run's footer
    with Client(cli_server.url) as client:
        history = client.history("stop")
        assert client.health()["active_runs"] == 0
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "assistant", "tool"]
    assert history[-1]["name"] == "get_items" and history[-1]["status"] == "cancelled"
