"""The servers the server benchmark measures, each run alone in a child process.

    plain      the tutorial endpoint: FastAPI + sse-starlette over `model.astream`
    plain-gc   the same, given agentcast's start-up GC tuning (`agentcast.server.tune_gc`)
    agentcast  `create_app(Agent(model))`, `POST /invoke` with `stream: true`
    floor      raw asyncio, no model: a task per stream writing one ~60-byte frame per token at
               the token's due time; what pure-Python delivery costs at best on this machine
    drain      raw asyncio, the model's own `_astream` drained with nothing delivered but one
               closing frame: the bare model's cost (fresh chunks, its pacing sleeps), which
               is subtracted to get a server's own cost per token
    relay      raw asyncio, the model's own `_astream` with one write per chunk: the least a
               server streaming this model can do, so its capacity bounds every server's

Every kind answers `GET /healthz` and `GET /_bench/gc` (its collections, for the report) and
streams `POST /invoke {"prompt": ...}`.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
import resource
import signal
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from langchain_core.messages import HumanMessage
from pydantic import BaseModel

from _memory import MemoryTrace
from _paced import PacedModel, plan_of

HOST = "127.0.0.1"
SERVERS = ("floor", "drain", "relay", "plain", "plain-gc", "agentcast")
RAW_SERVERS = ("floor", "drain", "relay")
GC_MODES = ("default", "freeze", "off")


class Query(BaseModel):
    """The plain endpoint's request body, as a tutorial declares it."""

    prompt: str
    stream: bool = True


def _type_name(obj: object) -> str:
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


class GcWatch:
    """Counts the server's garbage collections per generation and times their pauses."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.pause_ns = [0, 0, 0]
        self.max_pause_ns = [0, 0, 0]
        self._started = 0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter_ns()
            return
        generation = info["generation"]
        pause = time.perf_counter_ns() - self._started
        self.count[generation] += 1
        self.pause_ns[generation] += pause
        self.max_pause_ns[generation] = max(self.max_pause_ns[generation], pause)

    def snapshot(self, reset: bool, tracked: bool = False) -> dict[str, Any]:
        """The counters (and reset them); with `tracked`, the live tracked objects too (slow:
        it walks every object, so the bench asks for it only with --count-objects)."""
        data: dict[str, Any] = {
            "count": list(self.count),
            "pause_ns": list(self.pause_ns),
            "max_pause_ns": list(self.max_pause_ns),
            "enabled": gc.isenabled(),
            "frozen": gc.get_freeze_count(),
        }
        if tracked:
            objects = gc.get_objects()
            data["tracked"] = len(objects)
            # By type, to say whose they are (qualified names: `dict` alone says nothing).
            data["tracked_types"] = dict(Counter(_type_name(o) for o in objects))
            del objects
        if reset:
            self.count, self.pause_ns, self.max_pause_ns = [0, 0, 0], [0, 0, 0], [0, 0, 0]
        return data


# -- the ASGI servers -------------------------------------------------------------------------


def build_app(
    kind: str, watch: GcWatch | None = None, memory: MemoryTrace | None = None, **config: Any
) -> Any:
    """Return the ASGI app of one uvicorn-served kind, plus `/_bench/gc` for the bench (and
    `/_bench/memory` when `memory` traces it).

    `config` goes to agentcast's `create_app` (`bench_cluster.py`: `broker=`, `disconnect=`).
    """
    from fastapi import FastAPI

    model = PacedModel()
    if kind == "agentcast":
        from agentcast import Agent
        from agentcast.server import create_app

        app = create_app(Agent(model), **config)
    elif kind in ("plain", "plain-gc"):
        from sse_starlette import EventSourceResponse

        app = FastAPI()

        @app.post("/invoke")
        async def invoke(query: Query) -> EventSourceResponse:
            async def tokens() -> AsyncIterator[dict[str, str]]:
                async for chunk in model.astream(query.prompt):
                    if chunk.content:
                        yield {"event": "token", "data": json.dumps({"token": chunk.content})}
                yield {"event": "end", "data": "[DONE]"}

            return EventSourceResponse(tokens())

        @app.get("/healthz")
        async def healthz() -> dict[str, str]:
            return {"status": "ok"}

    else:
        raise ValueError(f"unknown server {kind!r}")

    async def gc_stats(reset: bool = False, tracked: bool = False) -> dict[str, Any]:
        return watch.snapshot(reset, tracked) if watch is not None else {}

    app.add_api_route("/_bench/gc", gc_stats, methods=["GET"], include_in_schema=False)
    if memory is not None:

        async def memory_stats(phase: str, streams: int = 1) -> dict[str, Any]:
            return memory.start() if phase == "start" else memory.middle(streams)

        app.add_api_route("/_bench/memory", memory_stats, include_in_schema=False)
    return app


# -- the raw asyncio servers (floor, drain, relay) ----------------------------------------------

_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"connection: close\r\n\r\n"
)
_CONTENT_LENGTH = re.compile(rb"(?im)^content-length: *(\d+)")


class RawServer(asyncio.Protocol):
    """One connection of a raw server (floor, drain, relay): just enough HTTP/1.1 for the bench."""

    def __init__(self, kind: str, watch: GcWatch, model: PacedModel) -> None:
        self.kind, self.watch, self.model = kind, watch, model
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head, found, body = self.buffer.partition(b"\r\n\r\n")
        if not found or self.task is not None:
            return
        length = _CONTENT_LENGTH.search(head)
        if length is not None and len(body) < int(length.group(1)):
            return
        method, target, _ = head.split(b"\r\n", 1)[0].split(b" ", 2)
        if method == b"POST" and target == b"/invoke":
            prompt = json.loads(body)["prompt"]
            stream = {"floor": self._floor, "drain": self._drain, "relay": self._relay}[self.kind]
            self.task = asyncio.get_running_loop().create_task(stream(prompt))
        elif target.startswith(b"/_bench/gc"):
            snapshot = self.watch.snapshot(b"reset=true" in target, b"tracked=true" in target)
            self._answer(json.dumps(snapshot).encode())
        else:
            self._answer(b'{"status":"ok"}')

    def _answer(self, body: bytes) -> None:
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (len(body), body)
        )
        self.transport.close()

    async def _floor(self, prompt: str) -> None:
        # One task per stream, one write per token at its due time: the least a server can do.
        transport = self.transport
        assert transport is not None
        count, rate = plan_of(prompt)
        transport.write(_STREAM_HEAD)
        interval = int(1e9 / rate)
        due = time.time_ns()
        for seq in range(count):
            due += interval
            delay = (due - time.time_ns()) / 1e9
            await asyncio.sleep(delay if delay > 0 else 0)
            if transport.is_closing():
                return
            transport.write(b'event: llm_token\ndata: {"token":"%d "}\nid: %d\n\n' % (due, seq))
        transport.write(b"event: agent_end\ndata: {}\n\n")
        transport.close()

    async def _drain(self, prompt: str) -> None:
        # The bare model: its own stream, no LangChain wrapper (no chunk retention, no
        # callbacks), so whatever a server spends beyond this is the server's own.
        transport = self.transport
        assert transport is not None
        count = 0
        async for _ in self.model._astream([HumanMessage(content=prompt)]):
            count += 1
        transport.write(_STREAM_HEAD + b'event: agent_end\ndata: {"drained": %d}\n\n' % count)
        transport.close()

    async def _relay(self, prompt: str) -> None:
        # The bare model and one write per chunk, the frame built from the chunk's text: no
        # framework, no event objects, no log. No server that streams this model does less.
        transport = self.transport
        assert transport is not None
        transport.write(_STREAM_HEAD)
        seq = 0
        async for chunk in self.model._astream([HumanMessage(content=prompt)]):
            if transport.is_closing():
                return
            text = chunk.message.content
            transport.write(
                b'event: llm_token\ndata: {"token":"%s"}\nid: %d\n\n' % (text.encode(), seq)
            )
            seq += 1
        transport.write(b"event: agent_end\ndata: {}\n\n")
        transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()


def _serve_raw(kind: str, sock: socket.socket, watch: GcWatch, gc_mode: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        model = PacedModel()
        server = await loop.create_server(
            lambda: RawServer(kind, watch, model), sock=sock, backlog=4096
        )
        stop = loop.create_future()
        loop.add_signal_handler(signal.SIGINT, stop.set_result, None)
        _apply_gc(gc_mode)
        from agentcast.server import tune_gc

        tune_gc()  # the floor and the bare model get the GC tuning agentcast has
        print(f"READY {sock.getsockname()[1]} {os.getpid()}", flush=True)
        await stop
        server.close()

    asyncio.run(main())


# -- running one server ---------------------------------------------------------------------------


def raise_open_files(wanted: int = 65536) -> int:
    """Raise the soft open-files limit towards `wanted` (capped by the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def _apply_gc(gc_mode: str) -> None:
    if gc_mode == "freeze":
        gc.collect()
        gc.freeze()
    elif gc_mode == "off":
        gc.disable()


def serve(kind: str, gc_mode: str, trace_memory: bool = False, **config: Any) -> None:
    """Run one server worker on a free port of 127.0.0.1; print `READY <port> <pid>` first.

    With `trace_memory` (uvicorn-served kinds) it traces its allocations from here on;
    `config` goes to agentcast's `create_app` (the agentcast kind only).
    """
    raise_open_files()
    memory = MemoryTrace() if trace_memory and kind not in RAW_SERVERS else None
    watch = GcWatch()
    gc.callbacks.append(watch)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    if kind in RAW_SERVERS:
        _serve_raw(kind, sock, watch, gc_mode)
        return
    import uvicorn

    app = build_app(kind, watch, memory, **config)
    if memory is not None:
        memory.trace()
    options: dict[str, Any] = {
        "loop": "asyncio",
        "http": "h11",
        "lifespan": "on",
        "log_level": "warning",
        "access_log": False,
        "backlog": 4096,
        "timeout_graceful_shutdown": 2,
    }
    if kind == "agentcast":
        from agentcast.server import uvicorn_config

        # What `agentcast serve` runs: its protocol (deadlines, direct event-stream bodies).
        config = uvicorn_config(app, host=HOST, port=0, **options)
    else:
        config = uvicorn.Config(app, **options)
    server = uvicorn.Server(config)
    _apply_gc(gc_mode)
    if kind == "plain-gc":
        from agentcast.server import tune_gc

        tune_gc()  # exactly what agentcast's server does at start-up
    print(f"READY {sock.getsockname()[1]} {os.getpid()}", flush=True)
    server.run(sockets=[sock])
