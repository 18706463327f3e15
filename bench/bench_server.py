"""One server worker under many concurrent SSE streams: agentcast against plain sse-starlette.

    python bench/bench_server.py [--streams 10,100,1000] [--tokens 100] [--rate 20] [--json F]

Two servers stream the same fake model (`PacedModel`: a LangChain `BaseChatModel` whose
`_astream` yields `--tokens` fresh chunks at `--rate` tokens/s, each stamped with the wall-clock
time it is due, in ns):

1. `plain`     - the tutorial endpoint: FastAPI `POST /invoke` returning sse-starlette's
                 `EventSourceResponse` over `model.astream(prompt)`, each chunk serialized as
                 `json.dumps({"token": chunk.content})`, then an `end` event.
2. `agentcast` - `create_app(Agent(model))`, `POST /invoke` with `stream: true`.

Each (server, stream count) level gets a fresh server process: one uvicorn worker (asyncio loop,
h11) on 127.0.0.1, so the client's CPU is not counted. The load client (this process) is a raw
asyncio protocol, far cheaper per frame than httpx: it opens C streams, their starts spread
evenly over `--ramp` seconds, and for every token computes the added delivery latency,
receive time - due time (one machine clock). A due time is when a network-backed model would
hand over the token, so a stalled server loop (garbage collection, CPU saturation) shows up as
latency even though the model itself runs in that loop.

Per level: p50/p99/max added latency; server CPU per token (all of the server's threads,
`/proc/<pid>/task/*/schedstat`, from after a warm-up to after the last stream); server RSS growth
per stream at peak (sampled every 50 ms) and after all streams ended; the server's garbage
collections and their longest pause; errors and dropped streams; and the client's own CPU per token
and event-loop lag, to show that the client is not the bottleneck.

DESIGN.md budget: one server worker holds at least 20x the concurrent streams that the plain
sse-starlette endpoint holds at the same rate within p99 added latency <= 50 ms (target: 1,000
streams at 20 tok/s), with at most 1/3 of its server CPU per token, memory per stream bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import BaseModel

HOST = "127.0.0.1"
SERVERS = ("plain", "agentcast")
LATENCY_TARGET_MS = 50.0
STREAMS_TARGET = 1000
CAPACITY_RATIO_TARGET = 20.0
CPU_RATIO_TARGET = 1 / 3
GC_MODES = ("default", "freeze", "off")

# -- the fake model (runs in the server process) --------------------------------------------

_PROMPT = re.compile(r"(\d+) tokens at ([0-9.]+) tok/s")


def prompt_for(tokens: int, rate: float) -> str:
    """The prompt that makes `PacedModel` stream `tokens` tokens at `rate` tokens/s."""
    return f"stream {tokens} tokens at {rate:g} tok/s"


class PacedModel(BaseChatModel):
    """Streams N tokens at a fixed rate; each token is `"<due time, ns since epoch> "`.

    Token i (from 1) is due at start + i / rate, on the wall clock. The model sleeps until then
    (or not at all when the loop is already late, as data waiting on a socket) and yields a fresh
    chunk, as a provider client does. The stamp is the due time, not the time the loop got
    round to it, so loop stalls count as delivery latency. The prompt (`prompt_for`) sets N and
    the rate.
    """

    default_tokens: int = 100
    default_rate: float = 20.0

    @property
    def _llm_type(self) -> str:
        return "bench-paced"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": "bench-paced"}

    def _plan(self, messages: Sequence[BaseMessage]) -> tuple[int, float]:
        text = messages[-1].content if messages else ""
        found = _PROMPT.search(text if isinstance(text, str) else str(text))
        if found is None:
            return self.default_tokens, self.default_rate
        return int(found.group(1)), float(found.group(2))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        count, _ = self._plan(messages)
        now = time.time_ns()
        text = "".join(f"{now} " for _ in range(count))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        count, rate = self._plan(messages)
        interval = int(1e9 / rate)
        due = time.time_ns()
        for _ in range(count):
            due += interval
            delay = (due - time.time_ns()) / 1e9
            await asyncio.sleep(delay if delay > 0 else 0)
            yield ChatGenerationChunk(message=AIMessageChunk(content=f"{due} "))


# -- the servers (in a child process: `--serve plain|agentcast`) ----------------------------


class Query(BaseModel):
    """The plain endpoint's request body, as a tutorial declares it."""

    prompt: str
    stream: bool = True


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

    def snapshot(self, reset: bool) -> dict[str, Any]:
        data = {
            "count": list(self.count),
            "pause_ns": list(self.pause_ns),
            "max_pause_ns": list(self.max_pause_ns),
            "enabled": gc.isenabled(),
            "frozen": gc.get_freeze_count(),
        }
        if reset:
            self.count, self.pause_ns, self.max_pause_ns = [0, 0, 0], [0, 0, 0], [0, 0, 0]
        return data


def build_app(kind: str, watch: GcWatch | None = None) -> Any:
    """Return the ASGI app of one server kind, plus `/healthz` and `/_bench/gc` for the bench."""
    from fastapi import FastAPI

    model = PacedModel()
    if kind == "agentcast":
        from agentcast import Agent
        from agentcast.server import create_app

        app = create_app(Agent(model))
    elif kind == "plain":
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

    async def gc_stats(reset: bool = False) -> dict[str, Any]:
        return watch.snapshot(reset) if watch is not None else {}

    app.add_api_route("/_bench/gc", gc_stats, methods=["GET"], include_in_schema=False)
    return app


def raise_open_files(wanted: int = 65536) -> int:
    """Raise the soft open-files limit towards `wanted` (capped by the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def serve(kind: str, gc_mode: str) -> None:
    """Run one server worker on a free port of 127.0.0.1; print `READY <port> <pid>` first."""
    import uvicorn

    raise_open_files()
    watch = GcWatch()
    gc.callbacks.append(watch)
    app = build_app(kind, watch)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    config = uvicorn.Config(
        app,
        loop="asyncio",
        http="h11",
        lifespan="on",
        log_level="warning",
        access_log=False,
        backlog=4096,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    if gc_mode == "freeze":
        gc.collect()
        gc.freeze()
    elif gc_mode == "off":
        gc.disable()
    print(f"READY {sock.getsockname()[1]} {os.getpid()}", flush=True)
    server.run(sockets=[sock])


# -- watching the server process from outside -----------------------------------------------


def cpu_ns(pid: int) -> tuple[int, int]:
    """(CPU time, run-queue wait) of every thread of `pid`, ns.

    From `/proc/<pid>/task/*/schedstat`; the wait is time the server was ready to run but another
    process had the CPU. Without schedstat: CPU from `/proc/<pid>/stat` ticks, no wait.
    """
    run = wait = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                fields = f.read().split()
            run += int(fields[0])
            wait += int(fields[1])
    except (OSError, ValueError, IndexError):
        run = wait = 0
    if run:
        return run, wait
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK"), 0


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes(pid: int) -> int:
    """Resident set size of `pid`, bytes."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * _PAGE


@dataclass
class ServerProcess:
    """A running server worker."""

    kind: str
    proc: subprocess.Popen[bytes]
    port: int
    pid: int
    log: Any

    def stop(self) -> None:
        """Stop the worker gracefully, then by force; always reaps it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()


def start_server(kind: str, *, gc_mode: str) -> ServerProcess:
    """Start one server worker and wait until it answers `/healthz`."""
    command = [sys.executable, str(Path(__file__).resolve()), "--serve", kind]
    command += ["--server-gc", gc_mode]
    log = tempfile.TemporaryFile()  # noqa: SIM115 - owned by ServerProcess, closed in stop()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
    server: ServerProcess | None = None
    try:
        assert proc.stdout is not None
        line = b""
        deadline = time.monotonic() + 60
        while not line.startswith(b"READY") and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        if not line.startswith(b"READY"):
            log.seek(0)
            raise RuntimeError(f"the {kind} server did not start:\n{log.read().decode()[-3000:]}")
        _, port, pid = line.split()
        server = ServerProcess(kind, proc, int(port), int(pid), log)
        while True:
            try:
                status, _ = http_get(server.port, "/healthz")
                if status == 200:
                    return server
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the {kind} server does not answer /healthz")
            time.sleep(0.05)
    except BaseException:
        if server is not None:
            server.stop()
        else:
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
            log.close()
        raise


@contextlib.contextmanager
def profiling(pid: int, out: Path | None, py_spy: str) -> Iterator[None]:
    """Sample `pid` with py-spy (raw collapsed stacks into `out`) while the block runs."""
    if out is None:
        yield
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [py_spy, "record", "--pid", str(pid), "-r", "250", "--nonblocking", "-f", "raw"]
    spy = subprocess.Popen(
        [*command, "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        time.sleep(0.5)  # py-spy attaches
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


def http_get(port: int, path: str) -> tuple[int, bytes]:
    """A blocking HTTP/1.0 GET on 127.0.0.1 (for health and stats; never timed)."""
    with socket.create_connection((HOST, port), timeout=5) as conn:
        conn.sendall(f"GET {path} HTTP/1.0\r\nHost: {HOST}\r\n\r\n".encode())
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def server_gc(port: int, *, reset: bool) -> dict[str, Any]:
    """The server's GC counters since the last reset."""
    status, body = http_get(port, f"/_bench/gc?reset={'true' if reset else 'false'}")
    return json.loads(body) if status == 200 else {}


# -- the load client ------------------------------------------------------------------------

STAMP = re.compile(rb'"token": ?"(\d{19}) "')
TERMINAL = {"agentcast": b"event: agent_end", "plain": b"event: end\r"}


class StreamProtocol(asyncio.Protocol):
    """One SSE stream read off the socket with no HTTP library: status line, stamps, terminal.

    Nothing is decoded beyond what is needed: every `"token":"<19 digits> "` in the bytes gives
    one latency sample, taken when the bytes arrived. The chunked-encoding framing is skipped
    over (a chunk-size line can never look like a stamp).
    """

    def __init__(self, request: bytes, terminal: bytes, latencies: list[int]) -> None:
        self.request = request
        self.terminal = terminal
        self.latencies = latencies
        self.status: int | None = None
        self.tokens = 0
        self.finished = False
        self.error: str | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self._buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        buffer = self._buffer + data if self._buffer else data
        if self.status is None:
            if len(buffer) < 12:
                self._buffer = buffer
                return
            try:
                self.status = int(buffer[9:12])
            except ValueError:
                self.status = -1
            if self.status != 200:
                self.error = f"HTTP {self.status}: {buffer[:200]!r}"
                self._end()
                return
        end = count = 0
        append = self.latencies.append
        for match in STAMP.finditer(buffer):
            append(now - int(match.group(1)))
            end = match.end()
            count += 1
        self.tokens += count
        if self.terminal in buffer:
            self.finished = True
            self._end()
            return
        buffer = buffer[end:]
        self._buffer = buffer[-64:] if len(buffer) > 256 else buffer

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished and self.error is None:
            self.error = f"connection lost: {exc}" if exc else "connection closed early"
        self._end()

    def _end(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if not self.done.done():
            self.done.set_result(None)


@dataclass
class Level:
    """One (server, stream count) measurement."""

    server: str
    streams: int
    tokens_per_stream: int
    rate: float
    tokens: int = 0
    expected_tokens: int = 0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    max_ms: float = float("nan")
    server_cpu_us_per_token: float = float("nan")
    server_cpu_share: float = float("nan")
    server_wait_share: float = float("nan")
    rss_base_mb: float = 0.0
    peak_kb_per_stream: float = float("nan")
    after_kb_per_stream: float = float("nan")
    gc_count: list[int] = field(default_factory=list)
    gc_max_pause_ms: float = float("nan")
    gc_pause_ms: float = float("nan")
    errors: int = 0
    dropped: int = 0
    error_samples: list[str] = field(default_factory=list)
    client_cpu_us_per_token: float = float("nan")
    client_lag_p99_ms: float = float("nan")
    wall_s: float = 0.0

    @property
    def server_cpu_us_per_token_without_gc(self) -> float:
        """Server CPU per token minus the time its garbage collections took."""
        if not self.tokens or self.gc_pause_ms != self.gc_pause_ms:
            return float("nan")
        return self.server_cpu_us_per_token - self.gc_pause_ms * 1e3 / self.tokens

    @property
    def passed(self) -> bool:
        """p99 added latency within the budget, and every stream complete."""
        return (
            self.errors == 0
            and self.dropped == 0
            and self.tokens == self.expected_tokens
            and self.p99_ms <= LATENCY_TARGET_MS
        )


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


async def open_streams(
    server: str,
    port: int,
    *,
    streams: int,
    tokens: int,
    rate: float,
    ramp: float,
    latencies: list[int],
    timeout: float,
) -> tuple[int, int, int, list[str]]:
    """Run `streams` streams, starts spread over `ramp` s; return (tokens, errors, dropped, why)."""
    loop = asyncio.get_running_loop()
    body = json.dumps({"prompt": prompt_for(tokens, rate), "stream": True}).encode()
    request = (
        f"POST /invoke HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: text/event-stream\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    terminal = TERMINAL[server]
    start = loop.time()
    results: list[StreamProtocol | str] = []

    async def one(k: int) -> None:
        await asyncio.sleep(max(0.0, start + ramp * k / streams - loop.time()))
        try:
            _, protocol = await loop.create_connection(
                lambda: StreamProtocol(request, terminal, latencies), HOST, port
            )
        except OSError as exc:
            results.append(f"connect: {exc}")
            return
        try:
            await asyncio.wait_for(asyncio.shield(protocol.done), timeout)
        except asyncio.TimeoutError:
            protocol.error = "timed out"
            protocol._end()
        results.append(protocol)

    await asyncio.gather(*(one(k) for k in range(streams)))
    delivered = errors = dropped = 0
    why: list[str] = []
    for result in results:
        if isinstance(result, str):
            errors += 1
            why.append(result)
            continue
        delivered += result.tokens
        if result.status != 200 or (result.error and result.error.startswith("HTTP")):
            errors += 1
            why.append(result.error or f"HTTP {result.status}")
        elif result.error or result.tokens != tokens:
            dropped += 1
            why.append(result.error or f"{result.tokens}/{tokens} tokens")
    return delivered, errors, dropped, why[:5]


async def measure_level(
    server: ServerProcess,
    *,
    streams: int,
    tokens: int,
    rate: float,
    ramp: float,
    profile: Path | None = None,
    py_spy: str = "py-spy",
) -> Level:
    """Warm the server up, then run one level against it and read its counters around it."""
    level = Level(server.kind, streams, tokens, rate, expected_tokens=streams * tokens)
    warm: list[int] = []
    await open_streams(
        server.kind,
        server.port,
        streams=min(streams, 20),
        tokens=5,
        rate=200.0,
        ramp=0.05,
        latencies=warm,
        timeout=30,
    )
    await asyncio.sleep(0.3)
    with profiling(server.pid, profile, py_spy):
        return await _measure(server, level, streams=streams, tokens=tokens, rate=rate, ramp=ramp)


async def _measure(
    server: ServerProcess, level: Level, *, streams: int, tokens: int, rate: float, ramp: float
) -> Level:
    loop = asyncio.get_running_loop()
    server_gc(server.port, reset=True)
    rss_base = rss_bytes(server.pid)
    peak = rss_base
    lags: list[float] = []
    running = True

    async def sample() -> None:
        nonlocal peak
        while running:
            peak = max(peak, rss_bytes(server.pid))
            before = loop.time()
            await asyncio.sleep(0.05)
            lags.append(loop.time() - before - 0.05)

    sampler = asyncio.create_task(sample())
    latencies: list[int] = []
    was_enabled = gc.isenabled()
    gc.disable()  # the client's own collections must not show up as server latency
    (cpu_before, wait_before), client_before = cpu_ns(server.pid), time.process_time_ns()
    wall_before = loop.time()
    try:
        delivered, errors, dropped, why = await open_streams(
            server.kind,
            server.port,
            streams=streams,
            tokens=tokens,
            rate=rate,
            ramp=ramp,
            latencies=latencies,
            timeout=ramp + 3 * tokens / rate + 20,
        )
        await asyncio.sleep(0.2)  # let the server finish what follows a stream (saves, closes)
        (cpu_after, wait_after), client_after = cpu_ns(server.pid), time.process_time_ns()
        wall = loop.time() - wall_before
    finally:
        running = False
        await sampler
        if was_enabled:
            gc.enable()
    rss_after = rss_bytes(server.pid)
    collected = server_gc(server.port, reset=False)
    samples = sorted(latencies)
    level.tokens = delivered
    level.errors, level.dropped, level.error_samples = errors, dropped, why
    level.p50_ms = percentile(samples, 50) / 1e6
    level.p99_ms = percentile(samples, 99) / 1e6
    level.max_ms = (samples[-1] / 1e6) if samples else float("nan")
    if delivered:
        level.server_cpu_us_per_token = (cpu_after - cpu_before) / 1e3 / delivered
        level.client_cpu_us_per_token = (client_after - client_before) / 1e3 / delivered
    level.server_cpu_share = (cpu_after - cpu_before) / 1e9 / wall
    level.server_wait_share = (wait_after - wait_before) / 1e9 / wall
    level.rss_base_mb = rss_base / 2**20
    level.peak_kb_per_stream = (peak - rss_base) / 1024 / streams
    level.after_kb_per_stream = (rss_after - rss_base) / 1024 / streams
    if collected:
        level.gc_count = collected["count"]
        level.gc_max_pause_ms = max(collected["max_pause_ns"]) / 1e6
        level.gc_pause_ms = sum(collected["pause_ns"]) / 1e6
    level.client_lag_p99_ms = percentile(sorted(lags), 99) * 1e3
    level.wall_s = wall
    return level


def run_bench(
    *,
    streams: Sequence[int] = (10, 100, 1000),
    tokens: int = 100,
    rate: float = 20.0,
    ramp: float = 2.0,
    servers: Sequence[str] = SERVERS,
    gc_mode: str = "default",
    profile: Path | None = None,
    py_spy: str = "py-spy",
    progress: Any = None,
) -> list[Level]:
    """Measure every server at every stream count, each level on a fresh server process.

    The order of the servers alternates from one stream count to the next.
    """
    raise_open_files()
    levels: list[Level] = []
    for position, count in enumerate(streams):
        order = list(servers) if position % 2 == 0 else list(reversed(servers))
        for kind in order:
            server = start_server(kind, gc_mode=gc_mode)
            try:
                level = asyncio.run(
                    measure_level(
                        server,
                        streams=count,
                        tokens=tokens,
                        rate=rate,
                        ramp=ramp,
                        profile=None if profile is None else profile / f"{kind}-{count}.txt",
                        py_spy=py_spy,
                    )
                )
            finally:
                server.stop()
            levels.append(level)
            if progress is not None:
                progress(level)
    return levels


# -- the verdicts ---------------------------------------------------------------------------


@dataclass
class Capacity:
    """What the levels say about how many streams a server holds within the latency budget."""

    held: int | None  # the largest stream count that passed
    failed: int | None  # the smallest stream count above `held` that failed


def capacity(levels: Sequence[Level], server: str) -> Capacity:
    """The largest passing stream count (below any failing one) and the first failing one."""
    mine = sorted((lv for lv in levels if lv.server == server), key=lambda lv: lv.streams)
    held: int | None = None
    for level in mine:
        if not level.passed:
            return Capacity(held, level.streams)
        held = level.streams
    return Capacity(held, None)


@dataclass
class Verdict:
    """The DESIGN.md comparison."""

    agentcast: Capacity
    plain: Capacity
    ratio_low: float | None  # agentcast holds more than this many times plain's streams
    ratio_high: float | None  # ... and fewer than this (None: unbounded by the levels run)
    streams_passed: bool | None
    target_streams_passed: bool | None
    cpu_ratios: dict[int, float]
    cpu_passed: bool | None
    cpu_ratios_without_gc: dict[int, float]


def verdict(levels: Sequence[Level]) -> Verdict:
    """Judge the stream-capacity ratio, the 1,000-stream target and the CPU-per-token ratio."""
    ours, theirs = capacity(levels, "agentcast"), capacity(levels, "plain")
    tested = sorted({lv.streams for lv in levels})

    # agentcast holds A streams, a_lo <= A < a_hi; plain P, p_lo <= P < p_hi (from the levels run).
    a_lo, a_hi = ours.held or 0, ours.failed
    p_lo, p_hi = theirs.held or 0, theirs.failed
    low = a_lo / p_hi if p_hi is not None and a_lo else None  # A / P > low
    high = a_hi / p_lo if a_hi is not None and p_lo else None  # A / P < high
    passed: bool | None = None
    if low is not None and low >= CAPACITY_RATIO_TARGET:
        passed = True
    elif high is not None and high <= CAPACITY_RATIO_TARGET:
        passed = False
    target: bool | None = None
    at_target = [lv for lv in levels if lv.server == "agentcast" and lv.streams >= STREAMS_TARGET]
    if at_target:
        target = all(lv.passed for lv in at_target)
    cpu: dict[int, float] = {}
    cpu_without_gc: dict[int, float] = {}
    for count in tested:
        pair = {lv.server: lv for lv in levels if lv.streams == count}
        if "agentcast" in pair and "plain" in pair:
            ours_level, theirs_level = pair["agentcast"], pair["plain"]
            a, p = ours_level.server_cpu_us_per_token, theirs_level.server_cpu_us_per_token
            if a == a and p == p and p > 0:
                cpu[count] = a / p
            a = ours_level.server_cpu_us_per_token_without_gc
            p = theirs_level.server_cpu_us_per_token_without_gc
            if a == a and p == p and p > 0:
                cpu_without_gc[count] = a / p
    cpu_passed = all(r <= CPU_RATIO_TARGET for r in cpu.values()) if cpu else None
    return Verdict(ours, theirs, low, high, passed, target, cpu, cpu_passed, cpu_without_gc)


# -- profiles -------------------------------------------------------------------------------

PROFILE_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    # First match wins, in this order, over the whole stack of a sample.
    ("socket send() (kernel, loopback)", ("_SelectorSocketTransport.write (",)),
    ("epoll_wait (kernel)", ("EpollSelector.select (",)),
    ("fake model: sleep, fresh chunk", ("PacedModel._astream (",)),
    ("LangChain BaseChatModel.astream", ("BaseChatModel.astream (",)),
    ("agentcast event JSON + SSE framing", ("(agentcast/encoders/", "(agentcast/events/")),
    ("h11 (HTTP chunked framing)", ("(h11/",)),
    ("agentcast runtime + native source", ("(agentcast/runtime/", "(agentcast/sources/")),
    ("agentcast server: route, reader", ("(agentcast/",)),
    ("plain endpoint: json.dumps", ("(json/",)),
    ("sse-starlette", ("(sse_starlette/",)),
    ("uvicorn/starlette/fastapi/anyio", ("(uvicorn/", "(starlette/", "(fastapi/", "(anyio/")),
    ("asyncio loop", ("(asyncio/", "(selectors.py")),
)


def summarize_profile(path: Path) -> dict[str, float]:
    """Share of py-spy's samples (raw collapsed stacks) per category of `PROFILE_CATEGORIES`.

    Garbage collection has no frame of its own: its time lands in whatever frame allocated.
    """
    counts: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        total += int(number)
        name = "other"
        for category, needles in PROFILE_CATEGORIES:
            if any(needle in stack for needle in needles):
                name = category
                break
        counts[name] = counts.get(name, 0) + int(number)
    return {name: count / total for name, count in counts.items()} if total else {}


def print_profiles(console: Any, levels: Sequence[Level], directory: Path) -> None:
    from rich.table import Table

    for count in sorted({lv.streams for lv in levels}):
        mine = sorted(
            (lv for lv in levels if lv.streams == count), key=lambda lv: SERVERS.index(lv.server)
        )
        shares = {}
        for level in mine:
            path = directory / f"{level.server}-{count}.txt"
            if path.is_file():
                shares[level.server] = (level, summarize_profile(path))
        if not shares:
            continue
        table = Table(
            title=f"Where the server's CPU goes, {count} streams (py-spy samples; µs/token ="
            " share x CPU µs/token; gc time lands in the frame that allocated)",
            title_justify="left",
        )
        table.add_column("category")
        for server in shares:
            table.add_column(f"{server} %", justify="right")
            table.add_column(f"{server} µs/tok", justify="right")
        names = [name for name, _ in PROFILE_CATEGORIES] + ["other"]
        for name in names:
            cells = []
            for level, share in shares.values():
                value = share.get(name, 0.0)
                cells += [f"{value * 100:.1f}", _f(value * level.server_cpu_us_per_token, ".1f")]
            table.add_row(name, *cells)
        gc_cells = []
        for level, _ in shares.values():
            gc_cells += [
                "",
                _f(level.server_cpu_us_per_token - level.server_cpu_us_per_token_without_gc, ".1f"),
            ]
        table.add_row("(of which garbage collection, measured)", *gc_cells)
        console.print()
        console.print(table)


# -- reporting ------------------------------------------------------------------------------


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "-"


def environment() -> dict[str, Any]:
    """What the figures depend on, for the header and the JSON."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "versions": {
            name: _version(name)
            for name in (
                "agentcast",
                "langchain-core",
                "fastapi",
                "starlette",
                "sse-starlette",
                "uvicorn",
                "h11",
                "msgspec",
            )
        },
    }


def _verdict(passed: bool | None) -> str:
    return {True: "[green]PASS[/green]", False: "[red]FAIL[/red]", None: "n/a"}[passed]


def _f(value: float, spec: str) -> str:
    return "-" if value != value else format(value, spec)


def _capacity_text(cap: Capacity) -> str:
    held = "none of the levels" if cap.held is None else f"{cap.held}"
    failed = "" if cap.failed is None else f" (fails at {cap.failed})"
    return held + failed


def print_report(levels: list[Level], env: dict[str, Any], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=max(Console().width, 160))
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    console.print(
        "[bold]agentcast server benchmark[/bold] - one uvicorn worker (asyncio loop, h11) on"
        f" 127.0.0.1 per level, {args.tokens} tokens per stream at {args.rate:g} tok/s,"
        f" starts spread over {args.ramp:g} s"
    )
    console.print(
        f"  Python {env['python']} ({env['implementation']}) on {env['platform']},"
        f" {env['cpus']} CPUs, load average {env['loadavg']}; {versions}"
    )
    console.print(
        "  model: PacedModel (a BaseChatModel, fresh chunk per token, stamped with its due time);"
        f" server gc: {args.server_gc}; client: raw asyncio protocol, its gc off while measuring"
    )
    console.print(
        "  latency = client receive time - token due time; server CPU = all threads, warm-up"
        " excluded; ΔRSS per stream = (peak RSS during the level - RSS before) / streams"
    )
    table = Table(
        title="Per level (latencies in ms; µs/tok and busy: server CPU; wait: the server ready to"
        " run but the CPU taken by another process (machine contention); KB/str: peak ΔRSS per"
        " stream; gc2: the server's full collections, gc ms/max: time in all its"
        " collections and the longest pause;"
        " cli: the client's CPU per token and loop lag p99, ms)",
        title_justify="left",
    )
    for name in (
        "streams",
        "server",
        "tokens",
        "p50",
        "p99",
        "max",
        "µs/tok",
        "busy",
        "wait",
        "KB/str",
        "gc2",
        "gc ms",
        "gc max",
        "err/drop",
        "cli µs/tok",
        "cli lag",
        "p99≤50",
    ):
        table.add_column(name, justify="left" if name in ("server", "p99≤50") else "right")
    for level in sorted(levels, key=lambda lv: (lv.streams, SERVERS.index(lv.server))):
        table.add_row(
            str(level.streams),
            level.server,
            str(level.tokens)
            if level.tokens == level.expected_tokens
            else f"{level.tokens}/{level.expected_tokens}",
            _f(level.p50_ms, ".1f"),
            _f(level.p99_ms, ".1f"),
            _f(level.max_ms, ".0f"),
            _f(level.server_cpu_us_per_token, ".1f"),
            _f(level.server_cpu_share * 100, ".0f") + "%",
            _f(level.server_wait_share * 100, ".0f") + "%",
            _f(level.peak_kb_per_stream, ".0f"),
            str(level.gc_count[2]) if level.gc_count else "-",
            _f(level.gc_pause_ms, ".0f"),
            _f(level.gc_max_pause_ms, ".0f"),
            f"{level.errors}/{level.dropped}",
            _f(level.client_cpu_us_per_token, ".1f"),
            _f(level.client_lag_p99_ms, ".1f"),
            _verdict(level.passed),
        )
    console.print()
    console.print(table)
    for level in levels:
        if level.error_samples:
            console.print(f"  {level.server} x{level.streams}: {'; '.join(level.error_samples)}")
    result = verdict(levels)
    console.print()
    console.print(
        f"Streams held within p99 ≤ {LATENCY_TARGET_MS:g} ms: agentcast"
        f" {_capacity_text(result.agentcast)}; plain sse-starlette {_capacity_text(result.plain)}"
    )
    low = "-" if result.ratio_low is None else f"> {result.ratio_low:.3g}"
    high = (
        "unbounded by these levels" if result.ratio_high is None else f"< {result.ratio_high:.3g}"
    )
    console.print(
        f"  agentcast ÷ plain streams: {low}, {high} (target ≥ {CAPACITY_RATIO_TARGET:g}):"
        f" {_verdict(result.streams_passed)}"
        + ("" if result.streams_passed is not None else " - add stream counts to decide")
    )
    console.print(
        f"  agentcast at {STREAMS_TARGET} streams within p99 ≤ {LATENCY_TARGET_MS:g} ms:"
        f" {_verdict(result.target_streams_passed)}"
        + (" (not run: add 1000 to --streams)" if result.target_streams_passed is None else "")
    )
    ratios = ", ".join(f"{count}: {ratio:.2f}" for count, ratio in result.cpu_ratios.items())
    console.print(
        f"  server CPU per token, agentcast ÷ plain: {ratios or '-'} (target ≤ 0.33):"
        f" {_verdict(result.cpu_passed)}"
    )
    ratios = ", ".join(f"{c}: {r:.2f}" for c, r in result.cpu_ratios_without_gc.items())
    console.print(f"  the same without the time spent in garbage collection: {ratios or '-'}")
    if args.profile is not None:
        print_profiles(console, levels, args.profile)


def parse_streams(text: str) -> list[int]:
    counts = sorted({int(part) for part in text.split(",") if part.strip()})
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError("stream counts must be positive integers")
    return counts


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--streams",
        type=parse_streams,
        default=[10, 100, 1000],
        help="concurrent stream counts, comma-separated (default 10,100,1000)",
    )
    parser.add_argument("--max-streams", type=int, help="skip stream counts above this")
    parser.add_argument("--tokens", type=int, default=100, help="tokens per stream")
    parser.add_argument("--rate", type=float, default=20.0, help="tokens/s of every stream")
    parser.add_argument("--ramp", type=float, default=2.0, help="seconds over which streams start")
    parser.add_argument(
        "--only", choices=SERVERS, action="append", default=[], help="run only this server"
    )
    parser.add_argument(
        "--server-gc",
        choices=GC_MODES,
        default="default",
        help="the servers' garbage collector: default, gc.freeze() after start-up, or off",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="sample every server with py-spy while it is measured; raw collapsed stacks into"
        " this directory (one file per level)",
    )
    parser.add_argument("--py-spy", default="py-spy", help="the py-spy executable")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.max_streams is not None:
        args.streams = [c for c in args.streams if c <= args.max_streams]
        if not args.streams:
            parser.error("--max-streams leaves no stream count")
    if args.tokens < 1 or args.rate <= 0 or args.ramp < 0:
        parser.error("--tokens, --rate must be positive and --ramp not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        serve(args.serve, args.server_gc)
        return 0
    env = environment()

    def progress(level: Level) -> None:
        print(
            f"  {level.server:>9} x{level.streams:<5} p99 {level.p99_ms:8.1f} ms,"
            f" {level.server_cpu_us_per_token:6.1f} µs/token, {level.wall_s:5.1f} s",
            file=sys.stderr,
            flush=True,
        )

    levels = run_bench(
        streams=args.streams,
        tokens=args.tokens,
        rate=args.rate,
        ramp=args.ramp,
        servers=tuple(s for s in SERVERS if not args.only or s in args.only),
        gc_mode=args.server_gc,
        profile=args.profile,
        py_spy=args.py_spy,
        progress=progress,
    )
    print_report(levels, env, args)
    result = verdict(levels)
    if args.json:
        payload = {
            "environment": env,
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "levels": [asdict(lv) | {"passed": lv.passed} for lv in levels],
            "verdict": asdict(result),
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    missed = False in (result.streams_passed, result.target_streams_passed, result.cpu_passed)
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
