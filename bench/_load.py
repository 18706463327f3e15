"""The server benchmark's load client and its watch on the server process.

The client is a raw asyncio protocol, far cheaper per frame than httpx: it opens C streams,
their starts spread evenly over a ramp, and for every token computes the added delivery
latency, receive time - due time (one machine clock). The server's CPU (all its threads,
`/proc/<pid>/task/*/schedstat`), RSS and collections are read around each level.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _memory import server_memory
from _paced import prompt_for
from _servers import HOST

LATENCY_TARGET_MS = 50.0
TRACKED_TYPES_SHOWN = 12  # --count-objects: how many types of live objects a level reports
BENCH_SERVER = Path(__file__).resolve().with_name("bench_server.py")


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


def start_server(
    kind: str,
    *,
    gc_mode: str,
    command: Sequence[str] | None = None,
    trace_memory: bool = False,
) -> ServerProcess:
    """Start one server worker and wait until it answers `/healthz`.

    `command` replaces bench_server.py's `--serve KIND` (`bench_cluster.py`'s brokered workers);
    it must print `READY <port> <pid>` as `_servers.serve` does.
    """
    if command is None:
        command = [sys.executable, str(BENCH_SERVER), "--serve", kind, "--server-gc", gc_mode]
        command += ["--trace-memory"] if trace_memory else []
    log = tempfile.TemporaryFile()  # noqa: SIM115 - owned by ServerProcess, closed in stop()
    proc = subprocess.Popen(
        list(command), stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL
    )
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
    with socket.create_connection((HOST, port), timeout=60) as conn:
        conn.sendall(f"GET {path} HTTP/1.0\r\nHost: {HOST}\r\n\r\n".encode())
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def server_gc(port: int, *, reset: bool, tracked: bool = False) -> dict[str, Any]:
    """The server's GC counters since the last reset (and its live tracked objects)."""
    query = f"reset={'true' if reset else 'false'}&tracked={'true' if tracked else 'false'}"
    status, body = http_get(port, f"/_bench/gc?{query}")
    return json.loads(body) if status == 200 else {}


_WRITES = re.compile(rb"^agentcast_stream_(writes|events)_total (\S+)$", re.M)


def stream_writes(port: int) -> dict[str, float]:
    """agentcast's SSE write counters from `/metrics` (empty for the other servers)."""
    status, body = http_get(port, "/metrics")
    if status != 200:
        return {}
    return {name.decode(): float(value) for name, value in _WRITES.findall(body)}


# -- the load client ------------------------------------------------------------------------

STAMP = re.compile(rb'"token": ?"(\d{19}) "')
DRAINED = re.compile(rb'"drained": ?(\d+)')
TERMINAL = {
    "agentcast": b"event: agent_end",
    "floor": b"event: agent_end",
    "drain": b"event: agent_end",
    "relay": b"event: agent_end",
    "plain": b"event: end\r",
    "plain-gc": b"event: end\r",
}


class StreamProtocol(asyncio.Protocol):
    """One SSE stream read off the socket with no HTTP library: status line, stamps, terminal.

    Nothing is decoded beyond what is needed: every `"token":"<19 digits> "` in the bytes gives
    one latency sample, taken when the bytes arrived. The chunked-encoding framing is skipped
    over (a chunk-size line can never look like a stamp).
    """

    def __init__(
        self, request: bytes, terminal: bytes, latencies: list[int], since: int = 0
    ) -> None:
        self.request = request
        # Tokens due before `since` (ns) are counted but give no sample: a reader that joins a
        # run already going gets them replayed, late by construction (bench_cluster --cross).
        self.since = since
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
        since = self.since
        for match in STAMP.finditer(buffer):
            due = int(match.group(1))
            if due >= since:
                append(now - due)
            end = match.end()
            count += 1
        self.tokens += count
        if self.terminal in buffer:
            drained = DRAINED.search(buffer)
            if drained is not None:  # the drain server delivers no token, only their count
                self.tokens += int(drained.group(1))
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
    run: int = 0
    events_per_write: float = float("nan")
    tracked_per_token: float = float("nan")
    # --count-objects: the types of those live tracked objects, per stream, most first
    tracked_types_per_stream: dict[str, float] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)  # --trace-memory: `_memory.middle`

    @property
    def server_cpu_us_per_token_without_gc(self) -> float:
        """Server CPU per token minus the time its garbage collections took."""
        if not self.tokens or self.gc_pause_ms != self.gc_pause_ms:
            return float("nan")
        return self.server_cpu_us_per_token - self.gc_pause_ms * 1e3 / self.tokens

    @property
    def passed(self) -> bool:
        """p99 added latency within the budget, and every stream complete (never for drain,
        which delivers no token and so has no latency)."""
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
        results.append(await finish(protocol, timeout))

    await asyncio.gather(*(one(k) for k in range(streams)))
    return tally(results, tokens)


async def finish(protocol: StreamProtocol, timeout: float) -> StreamProtocol:
    """Wait for a stream to end, hanging it up after `timeout` s (then it counts as an error)."""
    try:
        await asyncio.wait_for(asyncio.shield(protocol.done), timeout)
    except asyncio.TimeoutError:
        protocol.error = "timed out"
        protocol._end()  # noqa: SLF001 - the protocol's own hang-up
    return protocol


def tally(results: Sequence[StreamProtocol | str], tokens: int) -> tuple[int, int, int, list[str]]:
    """(tokens delivered, streams that failed, streams cut short, the first five reasons).

    A str in `results` is a stream that never started (why); a stream answered with another
    status than 200 failed; one that ended early or with an error was cut short.
    """
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
    count_objects: bool = False,
    trace_memory: bool = False,
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
        return await _measure(
            server,
            level,
            streams=streams,
            tokens=tokens,
            rate=rate,
            ramp=ramp,
            count_objects=count_objects,
            trace_memory=trace_memory,
        )


async def _measure(
    server: ServerProcess,
    level: Level,
    *,
    streams: int,
    tokens: int,
    rate: float,
    ramp: float,
    count_objects: bool = False,
    trace_memory: bool = False,
) -> Level:
    loop = asyncio.get_running_loop()
    if trace_memory:
        server_memory(server.port, "start")
    base = server_gc(server.port, reset=True, tracked=count_objects)
    writes_before = stream_writes(server.port) if server.kind == "agentcast" else {}
    middle: dict[str, Any] = {}

    async def count_mid_level() -> None:
        # Halfway through the streams: live tracked objects, over the tokens in flight.
        await asyncio.sleep(ramp + tokens / rate / 2)
        if count_objects:
            middle.update(
                await loop.run_in_executor(
                    None, lambda: server_gc(server.port, reset=False, tracked=True)
                )
            )
        if trace_memory:
            level.memory = await loop.run_in_executor(
                None, lambda: server_memory(server.port, "middle", streams)
            )

    counter = asyncio.create_task(count_mid_level()) if count_objects or trace_memory else None
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
        if counter is not None:
            await counter
        if was_enabled:
            gc.enable()
    rss_after = rss_bytes(server.pid)
    if writes_before:
        after = stream_writes(server.port)
        writes = after.get("writes", 0) - writes_before.get("writes", 0)
        if writes:
            level.events_per_write = (after["events"] - writes_before["events"]) / writes
    if "tracked" in middle and "tracked" in base:
        level.tracked_per_token = (middle["tracked"] - base["tracked"]) / (streams * tokens / 2)
        before, now = base.get("tracked_types", {}), middle.get("tracked_types", {})
        grown = {name: (n - before.get(name, 0)) / streams for name, n in now.items()}
        top = sorted(grown.items(), key=lambda item: -item[1])[:TRACKED_TYPES_SHOWN]
        level.tracked_types_per_stream = {name: round(n, 1) for name, n in top if n >= 0.5}
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
