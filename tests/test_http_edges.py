"""The HTTP edges: one error shape for every failure, request limits, slow clients.

Where the transport matters (chunked bodies, half-open sockets, a client that stops reading)
the tests talk raw sockets to a real uvicorn on 127.0.0.1, built the way `agentcast serve`
builds it (`agentcast.server.uvicorn_config`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket

import anyio
import httpx
import pytest
import uvicorn
from langchain_core.messages import AIMessageChunk

from agentcast import Agent
from agentcast.models import OfflineChatModel
from agentcast.server import create_app, uvicorn_config
from agentcast.sessions import MemoryStore
from agentcast.testing import ScriptedChatModel

pytestmark = pytest.mark.anyio

# Generous: only there so that an unbounded wait fails the test instead of hanging it.
HANG_GUARD = 30


def demo_app(**config):
    return create_app(Agent(OfflineChatModel(token_delay=0), store=MemoryStore()), **config)


def in_process(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def assert_error_shape(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code and body["error"]["message"]


class Served:
    """`app` on a real uvicorn (127.0.0.1, an ephemeral port) with agentcast's deadlines."""

    def __init__(self, app, *, send_buffer: int | None = None) -> None:
        self.app = app
        self.sock = socket.socket()
        if send_buffer is not None:  # accepted sockets inherit it: a small kernel send buffer
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        started = asyncio.Event()

        class Server(uvicorn.Server):
            async def startup(self, sockets=None):
                await super().startup(sockets)
                started.set()

        config = uvicorn_config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = Server(config)
        self.started = started

    async def __aenter__(self):
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        await self.started.wait()
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    async def __aexit__(self, *exc):
        self.server.should_exit = True
        # After a failure, a connection the test left stuck must not hang the shutdown.
        self.server.force_exit = exc[0] is not None
        await self.task

    async def connect(self, receive_buffer: int | None = None):
        sock = socket.socket()
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.port))
        return sock


async def read_until_closed(sock: socket.socket) -> bytes:
    """Read everything the server sends until it closes the connection."""
    loop = asyncio.get_running_loop()
    data = b""
    with anyio.fail_after(HANG_GUARD), contextlib.suppress(ConnectionResetError):
        while chunk := await loop.sock_recv(sock, 65536):
            data += chunk
    return data


# -- one error shape ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b'{"prompt": "caf\xe9"}', 400, "invalid_json"),  # Latin-1, not UTF-8
        (b"[" * 100_000 + b"]" * 100_000, 400, "invalid_json"),  # deeper than any parser goes
        (b'{"prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "invalid_json"),
        (b'{"prompt": "hi"', 422, "invalid_input"),  # truncated
        (b'{"prompt": ""}', 422, "invalid_input"),
    ],
    ids=["latin-1", "deep-array", "deep-field", "truncated", "empty-prompt"],
)
async def test_undecodable_bodies_answer_the_error_shape(body, status, code):
    async with in_process(demo_app()) as c:
        r = await c.post("/invoke", content=body, headers={"content-type": "application/json"})
    assert_error_shape(r, status, code)


async def test_routing_errors_answer_the_error_shape():
    async with in_process(demo_app()) as c:
        assert_error_shape(await c.get("/invoke"), 405, "method_not_allowed")
        assert_error_shape(await c.delete("/healthz"), 405, "method_not_allowed")
        assert_error_shape(await c.get("/no/such/route"), 404, "not_found")
        assert_error_shape(await c.get("/sessions?limit=many"), 422, "invalid_input")


@pytest.mark.parametrize("prompt", ["", " ", "\t\n", "\u3000\u2028", "\x1c\x85"])
async def test_a_blank_prompt_is_refused_by_the_schema_and_by_the_server_alike(prompt):
    import re

    schema = (await in_process(demo_app()).get("/openapi.json")).json()
    field = schema["components"]["schemas"]["InvokeRequest"]["properties"]["prompt"]
    assert field["minLength"] == 1
    assert not re.search(field["pattern"], prompt)  # what a client validating the schema sees
    assert re.search(field["pattern"], "  x ")
    async with in_process(demo_app()) as c:
        assert_error_shape(await c.post("/invoke", json={"prompt": prompt}), 422, "invalid_input")


async def test_openapi_declares_the_error_model_for_every_error_status():
    schema = (await in_process(demo_app()).get("/openapi.json")).json()
    assert schema["components"]["schemas"]["ErrorBody"]["required"] == ["error"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    expected = {
        ("post", "/invoke"): {"400", "401", "404", "408", "409", "413", "422", "503"},
        # 503: with a broker, a run of another worker is looked up there (issue 11).
        ("get", "/runs/{run_id}/stream"): {"400", "401", "404", "410", "422", "503"},
        ("get", "/runs/{run_id}"): {"400", "401", "404", "422", "503"},
        ("get", "/sessions"): {"401", "404", "422", "503"},
        ("delete", "/sessions/{session_id}"): {"400", "401", "404", "409", "422", "503"},
        ("get", "/readyz"): {"503"},
    }
    for (method, path), statuses in expected.items():
        responses = schema["paths"][path][method]["responses"]
        errors = {status for status in responses if not status.startswith("2")}
        assert errors == statuses, (method, path)
        for status in errors:
            ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/ErrorBody"


# -- request limits, on the wire ---------------------------------------------------------------


async def test_a_chunked_body_over_the_limit_is_413_not_400():
    async def chunks(size):
        yield b'{"prompt": "'
        for _ in range(size):
            yield b"x" * 100
        yield b'"}'

    async with Served(demo_app(max_body_bytes=1000)) as served, httpx.AsyncClient() as c:
        r = await c.post(f"{served.url}/invoke", content=chunks(20))
        assert r.request.headers["transfer-encoding"] == "chunked"
        assert_error_shape(r, 413, "body_too_large")
        # A chunked body within the limit is read whole and works.
        small = await c.post(
            f"{served.url}/invoke", content=chunks(5), headers={"content-type": "application/json"}
        )
        assert small.json()["outcome"] == "success"


async def test_a_partial_body_is_408_and_the_connection_closed():
    async with Served(demo_app(body_timeout=0.2)) as served:
        sock = await served.connect()
        head = b"POST /invoke HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        await asyncio.get_running_loop().sock_sendall(
            sock, head + b"content-length: 100\r\n\r\n" + b'{"prompt": '
        )
        answer = await read_until_closed(sock)  # ... and never the other 89 bytes
        sock.close()
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 408 Request Timeout"
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"]["code"] == "request_timeout"


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET /healthz HTTP/1.1\r\n", b"GET /healthz HTTP/1.1\r\nhost: x\r\nuser-ag"],
    ids=["nothing", "request-line", "half-a-header"],
)
async def test_partial_headers_are_closed_after_the_header_timeout(sent):
    async with Served(demo_app(header_timeout=0.2)) as served:
        sock = await served.connect()
        await asyncio.get_running_loop().sock_sendall(sock, sent)
        assert await read_until_closed(sock) == b""
        sock.close()


async def test_partial_headers_after_a_kept_alive_request_are_closed_too():
    async with Served(demo_app(header_timeout=0.2)) as served:
        loop = asyncio.get_running_loop()
        sock = await served.connect()
        await loop.sock_sendall(sock, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\nGET /heal")
        answer = await read_until_closed(sock)
        sock.close()
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.count(b"HTTP/1.1") == 1


async def test_streams_and_websockets_outlive_the_header_timeout():
    gate = Gate()
    app = gated_app(gate, header_timeout=0.05, heartbeat=0.2)
    async with Served(app) as served, httpx.AsyncClient(base_url=served.url) as c:
        async with c.stream("POST", "/invoke", json={"prompt": "go", "stream": True}) as r:
            lines = r.aiter_lines()
            with anyio.fail_after(HANG_GUARD):
                while await lines.__anext__() != ": ping":  # a heartbeat: 0.2 s have passed
                    pass
            gate.release.set()
            assert "agent_end" in "".join([line async for line in lines])
        import websockets.asyncio.client

        url = served.url.replace("http", "ws") + "/ws"
        async with websockets.asyncio.client.connect(url) as ws:
            with anyio.fail_after(HANG_GUARD):
                await ws.send(json.dumps({"type": "start", "prompt": "go"}))
                while json.loads(await ws.recv())["type"] != "agent_end":
                    pass  # the answer streams well past the header timeout
                await ws.send(json.dumps({"type": "ping"}))
                assert json.loads(await ws.recv()) == {"type": "pong"}


# -- a client that stops reading ---------------------------------------------------------------


class Gate:
    """A scripted-model hook that blocks before chunk `at` until released."""

    def __init__(self, at: int = 1) -> None:
        self.at = at
        self.release = anyio.Event()

    async def __call__(self, call: int, index: int) -> None:
        if index == self.at:
            await self.release.wait()


def gated_app(gate: Gate, chunks=("one ", "two ", "three"), **config):
    model = ScriptedChatModel(
        turns=[[AIMessageChunk(content=t) for t in chunks]], before_chunk=gate
    )
    return create_app(Agent(model, store=MemoryStore()), **config)


async def test_a_client_that_stops_reading_is_closed_and_frees_its_reader_slot():
    # 400 KB of answer before the gate: far more than the socket buffers (4 KB each side)
    # and asyncio's 64 KB write buffer hold, so the server's writes stall.
    gate = Gate(at=100)
    chunks = ["x" * 4000] * 100 + ["done"]
    app = gated_app(gate, chunks, send_timeout=0.2)
    server = app.state.agentcast
    async with Served(app, send_buffer=4096) as served:
        loop = asyncio.get_running_loop()
        sock = await served.connect(receive_buffer=4096)
        body = json.dumps({"prompt": "go", "stream": True}).encode()
        await loop.sock_sendall(
            sock,
            b"POST /invoke HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body,
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += await loop.sock_recv(sock, 1)  # the head only; then the client stops reading
        run_id = next(
            line.split(b": ")[1].decode()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"x-run-id")
        )
        managed = server.manager.get(run_id)
        with anyio.fail_after(HANG_GUARD):
            await managed.idle.wait()  # the stalled write was given up, the reader detached
        assert managed.readers == 0
        assert "agentcast_active_streams 0.0" in server.metrics.render()[0].decode()
        gate.release.set()
        result = await managed.run.wait()  # the run never noticed
        assert result.outcome == "success" and result.output.endswith("done")
        await read_until_closed(sock)  # the server closed (reset) the socket
        sock.close()


async def test_a_websocket_client_that_stops_reading_is_closed_and_frees_its_reader_slot():
    import websockets.asyncio.client

    gate = Gate(at=100)
    app = gated_app(gate, ["x" * 4000] * 100 + ["done"], send_timeout=0.2)
    server = app.state.agentcast
    async with Served(app, send_buffer=4096) as served:
        sock = await served.connect(receive_buffer=4096)
        # max_queue=1: once a frame waits unread, the client stops reading the socket; no
        # compression, or 400 KB of "x" would fit in any buffer.
        async with websockets.asyncio.client.connect(
            served.url.replace("http", "ws") + "/ws",
            sock=sock,
            max_queue=1,
            compression=None,
            close_timeout=0.1,
        ) as ws:
            await ws.send(json.dumps({"type": "start", "prompt": "go"}))
            started = json.loads(await ws.recv())
            managed = server.manager.get(started["run_id"])
            with anyio.fail_after(HANG_GUARD):
                await managed.idle.wait()  # the stalled send was given up, the reader detached
            assert managed.readers == 0
            assert "agentcast_active_streams 0.0" in server.metrics.render()[0].decode()
            gate.release.set()
            result = await managed.run.wait()
        assert result.outcome == "success" and result.output.endswith("done")
