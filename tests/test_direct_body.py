"""Event-stream bodies written straight to the connection (`DirectBody`) under `agentcast serve`.

The fast path must be invisible: the same bytes as the ASGI path, HTTP/1.1 chunk framing a
client can parse, the ASGI path whenever it cannot apply (an HTTP/1.0 client, a middleware
added after `create_app` that must see the body), and a client that leaves an idle stream
frees its reader at once. The body outlives its ASGI call: an open stream keeps no request
task alive, yet its end completes uvicorn's cycle (keep-alive) and a shutdown waits for it.
The servers are real uvicorns built by `uvicorn_config`.
"""

from __future__ import annotations

import asyncio
import json
import re

import anyio
import httpx
import pytest

from agentcast import Agent
from agentcast.encoders import PING
from agentcast.encoders.sse import decode_event
from agentcast.events import LLMToken
from agentcast.models import OfflineChatModel
from agentcast.server import create_app
from agentcast.sessions import MemoryStore
from agentcast.testing import check_invariants
from tests.test_http_edges import HANG_GUARD, Served, in_process, read_until_closed

pytestmark = pytest.mark.anyio

PROMPT = "Tell me about streaming."


def app_with(token_delay: float = 0.0, **config):
    agent = Agent(OfflineChatModel(token_delay=token_delay), store=MemoryStore())
    return create_app(agent, tune_gc=False, **config)


def request(path: str, body: dict, *, version: str = "1.1", close: bool = True) -> bytes:
    data = json.dumps(body).encode()
    connection = "connection: close\r\n" if close else ""
    return (
        f"POST {path} HTTP/{version}\r\nhost: test\r\ncontent-type: application/json\r\n"
        f"content-length: {len(data)}\r\n{connection}\r\n"
    ).encode() + data


def dechunk(body: bytes) -> bytes:
    """Parse an HTTP/1.1 chunked body strictly: every size line, every CRLF, the last chunk."""
    out, rest = b"", body
    while True:
        size_line, sep, rest = rest.partition(b"\r\n")
        assert sep, f"truncated chunk size line: {size_line!r}"
        size = int(size_line, 16)
        if size == 0:
            assert rest == b"\r\n", f"bytes after the last chunk: {rest!r}"
            return out
        out += rest[:size]
        assert rest[size : size + 2] == b"\r\n", "a chunk not followed by CRLF"
        rest = rest[size + 2 :]


def shape(sse: bytes) -> tuple[list[str], str]:
    """The types of the events other than tokens, and the tokens' text, checked for the
    invariants: what two runs of the same prompt have in common (with a model that never
    waits, how many tokens a reader finds at once, and so joins, is up to the loop)."""
    frames = [f for f in sse.decode().split("\n\n") if f.strip() and not f.startswith(":")]
    events = []
    for frame in frames:
        fields = dict(line.split(": ", 1) for line in frame.splitlines())
        events.append(decode_event(fields["event"], fields["data"]))
    check_invariants(events, contiguous=False)
    text = "".join(e.token for e in events if isinstance(e, LLMToken))
    return [e.type for e in events if e.type != "llm_token"], text


async def raw_exchange(served: Served, data: bytes) -> tuple[bytes, bytes]:
    sock = await served.connect()
    await asyncio.get_running_loop().sock_sendall(sock, data)
    response = await read_until_closed(sock)
    sock.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return head, body


def parse_counters(text: str) -> dict[str, float]:
    found = re.findall(r"^agentcast_stream_(\w+)_total (\S+)$", text, re.M)
    return {name: float(value) for name, value in found}


async def stream_counters(client: httpx.AsyncClient) -> dict[str, float]:
    """The streams' counters on /metrics: writes, events, direct (`WriteStats`)."""
    return parse_counters((await client.get("/metrics")).text)


async def open_stream(served: Served):
    """A raw socket that has sent `POST /invoke` for a stream (and reads nothing yet)."""
    sock = await served.connect()
    data = request("/invoke", {"prompt": PROMPT, "stream": True})
    await asyncio.get_running_loop().sock_sendall(sock, data)
    return sock


async def open_stream_until_started(served: Served):
    """`open_stream`, read until the stream's `llm_start`: the socket and what it read."""
    sock = await open_stream(served)
    loop = asyncio.get_running_loop()
    seen = b""
    with anyio.fail_after(HANG_GUARD):
        while b"llm_start" not in seen:
            seen += await loop.sock_recv(sock, 65536)
    return sock, seen


async def direct_streams(client: httpx.AsyncClient) -> float:
    return (await stream_counters(client))["direct"]


async def reference_body(app) -> bytes:
    """The stream's body through the ASGI path (in process), to compare the direct one with."""
    async with in_process(app) as c:
        return (await c.post("/invoke", json={"prompt": PROMPT, "stream": True})).content


async def test_the_direct_body_is_the_asgi_body_in_valid_chunks():
    app = app_with()
    reference = await reference_body(app)
    async with Served(app) as served, httpx.AsyncClient(base_url=served.url) as c:
        head, body = await raw_exchange(
            served, request("/invoke", {"prompt": PROMPT, "stream": True})
        )
        assert b"transfer-encoding: chunked" in head.lower()
        assert shape(dechunk(body)) == shape(reference)
        assert await direct_streams(c) == 1


async def test_a_kept_alive_connection_serves_its_next_request_after_a_direct_stream():
    # The body was written outside its ASGI call: its end must still complete uvicorn's
    # request cycle, so the connection serves the next request and closes when asked.
    app = app_with()
    async with Served(app) as served:
        loop = asyncio.get_running_loop()
        sock = await served.connect()
        first = request("/invoke", {"prompt": PROMPT, "stream": True}, close=False)
        await loop.sock_sendall(sock, first)
        seen = b""
        with anyio.fail_after(HANG_GUARD):
            while not seen.endswith(b"\r\n0\r\n\r\n"):  # the stream's last chunk
                seen += await loop.sock_recv(sock, 65536)
        await loop.sock_sendall(
            sock, b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        )
        with anyio.fail_after(HANG_GUARD):
            second = await read_until_closed(sock)
        sock.close()
    head, _, body = seen.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"agent_end" in dechunk(body)
    assert second.startswith(b"HTTP/1.1 200 OK") and second.count(b"HTTP/1.1") == 1


async def test_a_shutdown_lets_a_direct_stream_end_before_its_connection_closes():
    # uvicorn closes at once a connection whose response it thinks complete; a body written
    # outside its ASGI call is not, so the shutdown waits for its end, as for any response.
    app = app_with(token_delay=3600, heartbeat=3600)
    async with Served(app) as served:
        sock, seen = await open_stream_until_started(served)
        for connection in list(served.server.server_state.connections):
            connection.shutdown()  # what uvicorn's shutdown does to each connection first
        await app.state.agentcast.manager.aclose()  # then the run ends (`agentcast serve`)
        with anyio.fail_after(HANG_GUARD):
            seen += await read_until_closed(sock)
        sock.close()
    head, _, body = seen.partition(b"\r\n\r\n")
    events = dechunk(body).decode()
    assert "event: agent_end" in events and '"outcome":"cancelled"' in events


async def test_an_http10_client_gets_the_asgi_path_and_the_whole_body():
    app = app_with()
    reference = await reference_body(app)
    async with Served(app) as served, httpx.AsyncClient(base_url=served.url) as c:
        head, body = await raw_exchange(
            served, request("/invoke", {"prompt": PROMPT, "stream": True}, version="1.0")
        )
        assert b"chunked" not in head.lower()  # close-delimited: no chunk framing to bypass
        assert shape(body) == shape(reference)
        assert await direct_streams(c) == 0


async def test_a_middleware_added_after_create_app_sees_every_body_byte():
    app = app_with()
    seen: list[bytes] = []

    class Recorder:
        def __init__(self, inner):
            self.inner = inner

        async def __call__(self, scope, receive, send):
            async def recording(message):
                if message["type"] == "http.response.body" and scope["path"] == "/invoke":
                    seen.append(message.get("body", b""))
                await send(message)

            await self.inner(scope, receive, recording)

    app.add_middleware(Recorder)
    async with Served(app) as served, httpx.AsyncClient(base_url=served.url) as c:
        _, body = await raw_exchange(served, request("/invoke", {"prompt": PROMPT, "stream": True}))
        assert b"".join(seen) == dechunk(body)
        assert shape(dechunk(body))[0][-1] == "agent_end"
        assert await direct_streams(c) == 0


async def test_a_client_leaving_an_idle_direct_stream_frees_its_reader_at_once():
    # The run waits an hour for its first token, and the stream an hour for its heartbeat.
    app = app_with(token_delay=3600, heartbeat=3600)
    manager = app.state.agentcast.manager
    async with Served(app) as served:
        sock, head = await open_stream_until_started(served)  # waiting for its first token
        run_id = next(
            line.split(b":", 1)[1].strip().decode()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"x-run-id:")
        )
        managed = manager.get(run_id)
        assert managed is not None and managed.readers == 1
        sock.close()
        with anyio.fail_after(HANG_GUARD):  # no heartbeat or token is needed to notice
            await managed.idle.wait()
        assert managed.readers == 0
        managed.run.cancel()
        await managed.run.wait()


async def test_an_open_direct_stream_keeps_one_task_of_its_own_and_no_asgi_call():
    # An open stream's tasks and the calls they are suspended in stay alive for its whole
    # life: a thousand open streams are a thousand of each the GC walks. The ASGI call has
    # returned (its two dozen middleware and routing coroutines are freed); the body is one
    # task, and the protocol reports a lost connection, so no task waits on `receive`. The
    # run's model call streams in a task of its own (`feed_model`: one chunk resumes two
    # frames, not the run's whole chain).
    app = app_with(token_delay=3600, heartbeat=3600)
    async with Served(app) as served:
        before = set(asyncio.all_tasks())
        sock, _ = await open_stream_until_started(served)
        opened = [task for task in asyncio.all_tasks() if task not in before]
        coroutines = sorted(task.get_coro().__qualname__ for task in opened)  # type: ignore[union-attr]
        assert coroutines == ["DirectBody._own", "RunManager._execute", "_feed_call"]
        [managed] = app.state.agentcast.manager._runs.values()  # noqa: SLF001
        sock.close()
        with anyio.fail_after(HANG_GUARD):  # the lost connection still ends the stream
            await managed.idle.wait()
        managed.run.cancel()
        await managed.run.wait()


async def test_a_caught_up_direct_stream_still_gets_its_heartbeat():
    # Caught up, the stream is written by the run's task (`PushWriter`) and its own task
    # sleeps: the silence of the run must still wake it for the keep-alive comment.
    app = app_with(token_delay=3600, heartbeat=0.05)
    async with Served(app) as served:
        sock = await open_stream(served)
        loop = asyncio.get_running_loop()
        seen = b""
        with anyio.fail_after(HANG_GUARD):
            while seen.count(PING) < 2:  # two: the silence is measured again after each
                seen += await loop.sock_recv(sock, 65536)
        assert b"llm_start" in seen.split(PING)[0]
        sock.close()
        [managed] = app.state.agentcast.manager._runs.values()  # noqa: SLF001
        managed.run.cancel()
        await managed.run.wait()


async def test_a_direct_stream_writes_each_token_as_the_run_logs_it():
    # One token per loop iteration (a network-like model): each goes out in a write of its
    # own, from the run's task, and the counters say so.
    app = app_with(token_delay=0.001)
    async with Served(app) as served, httpx.AsyncClient(base_url=served.url) as c:
        _, body = await raw_exchange(served, request("/invoke", {"prompt": PROMPT, "stream": True}))
        text = (await c.get("/metrics")).text
    events, answer = shape(dechunk(body))
    assert events[-1] == "agent_end" and answer
    counters = parse_counters(text)
    frames = dechunk(body).count(b"\nid: ")
    assert counters["events"] == frames
    assert counters["writes"] >= frames * 0.9  # one event per write


async def test_a_burst_of_tokens_goes_out_in_few_writes(monkeypatch):
    # A model that hands over many chunks at once (one network read holding them): the
    # pushed stream writes the first at once and the rest of the burst in one send.
    from langchain_core.messages import AIMessageChunk

    from agentcast.runtime import EventLog
    from agentcast.testing import ScriptedChatModel

    chunks = [AIMessageChunk(content=f"t{i} ") for i in range(60)]
    listening = asyncio.Event()
    listen = EventLog.listen

    def listen_and_tell(log, listener):
        listen(log, listener)
        listening.set()

    monkeypatch.setattr(EventLog, "listen", listen_and_tell)

    async def until_the_stream_listens(call: int, index: int) -> None:
        # Before the burst the stream has caught up and listens; then the 60 chunks come
        # without a suspension.
        if index == 0:
            await listening.wait()

    model = ScriptedChatModel(turns=[chunks], before_chunk=until_the_stream_listens)
    app = create_app(Agent(model, store=MemoryStore()), tune_gc=False)
    async with Served(app) as served, httpx.AsyncClient(base_url=served.url) as c:
        _, body = await raw_exchange(served, request("/invoke", {"prompt": PROMPT, "stream": True}))
        text = (await c.get("/metrics")).text
    events, answer = shape(dechunk(body))
    assert answer == "".join(chunk.content for chunk in chunks) and events[-1] == "agent_end"
    counters = parse_counters(text)
    assert counters["events"] >= 60
    assert counters["writes"] <= 20, counters


async def test_a_direct_reader_that_stops_reading_catches_up_with_joined_tokens():
    # The client stops reading (4 KB socket buffers each side): the pushed writes fill the
    # connection, the stream hands back to its task, which waits for the drain while the run
    # goes on (the log absorbs it); once the client reads again, the backlog comes as joined
    # tokens: the same text, the last seq of each join, lifecycle events as they were.
    from langchain_core.messages import AIMessageChunk

    from agentcast.testing import ScriptedChatModel

    async def hop(call: int, index: int) -> None:
        await asyncio.sleep(0)  # one loop iteration per token, as a network gives

    chunks = [AIMessageChunk(content=f"token{i:04d} ") for i in range(3000)]
    model = ScriptedChatModel(turns=[chunks], before_chunk=hop)
    app = create_app(Agent(model, store=MemoryStore()), tune_gc=False)
    manager = app.state.agentcast.manager
    async with Served(app, send_buffer=4096) as served:
        loop = asyncio.get_running_loop()
        sock = await served.connect(receive_buffer=4096)
        await loop.sock_sendall(sock, request("/invoke", {"prompt": PROMPT, "stream": True}))
        head = b""
        with anyio.fail_after(HANG_GUARD):
            while b"\r\n\r\n" not in head:
                head += await loop.sock_recv(sock, 1)
            [managed] = manager._runs.values()  # noqa: SLF001
            await managed.run.wait()  # the run ended while its only reader read nothing
        body = head.partition(b"\r\n\r\n")[2] + await read_until_closed(sock)
        sock.close()
    events = []
    for frame in dechunk(body).decode().split("\n\n"):
        if frame.startswith("event:"):
            fields = dict(line.split(": ", 1) for line in frame.splitlines())
            events.append(decode_event(fields["event"], fields["data"]))
    check_invariants(events, contiguous=False)
    tokens = [e for e in events if isinstance(e, LLMToken)]
    assert "".join(t.token for t in tokens) == "".join(c.content for c in chunks)
    assert len(tokens) < len(chunks) / 4, "the backlog came as joined tokens"
    seqs = [e.seq for e in events]
    assert seqs == sorted(set(seqs)) and events[-1].type == "agent_end"


async def test_a_frame_that_fails_to_build_fails_the_stream_not_the_run(monkeypatch):
    # The pushed path builds frames inside the run's append: a failure there must end the
    # stream (its task raises it) and leave the run to finish and save its turn.
    from agentcast.server import _stream

    encode = _stream.encode_event
    failed = []

    def fails_at_the_third_token(event):
        if isinstance(event, LLMToken) and event.seq >= 5 and not failed:
            failed.append(event.seq)
            raise UnicodeEncodeError("utf-8", "x", 0, 1, "a frame that cannot be built")
        return encode(event)

    monkeypatch.setattr(_stream._Native, "frames", staticmethod(fails_at_the_third_token))
    app = app_with(token_delay=0.001)
    manager = app.state.agentcast.manager
    async with Served(app) as served:
        _, body = await raw_exchange(served, request("/invoke", {"prompt": PROMPT, "stream": True}))
        [managed] = manager._runs.values()  # noqa: SLF001
        with anyio.fail_after(HANG_GUARD):
            result = await managed.run.wait()
    assert failed, "the failing frame was built"
    assert not body.endswith(b"0\r\n\r\n"), "the stream was cut, not ended as if complete"
    assert result.outcome == "success"
    assert managed.run.log.get(managed.run.log.next_seq - 1).type == "agent_end"
