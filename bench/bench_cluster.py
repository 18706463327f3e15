"""Broker mode against in-process: what sharing runs through Redis costs per token and in latency.

    python bench/bench_cluster.py [--streams 100,1000] [--workers 1,2] [--cross]
                                  [--tokens 100] [--rate 20] [--redis private|URL] [--runs 1]
                                  [--json F]

Per stream count it measures, each level on fresh server processes: the in-process baseline
(one worker, no broker) and then broker mode with each `--workers` count. A worker is
`create_app(Agent(PacedModel()), broker=...)` run by `agentcast.server.uvicorn_config`
(`_servers.serve`). The streams are spread round-robin over the workers (`POST /invoke`,
`stream: true`); with `--cross` (2 workers or more) each run is started on one worker and read
through `GET /runs/{id}/stream` on the next one: the replica path, through the Redis Stream.

Per level: p50/p99/max added latency (receive time - the token's due time, `_load`), server CPU
per token summed over the workers, Redis commands and Redis CPU per token (`INFO commandstats`
and `INFO cpu` deltas; the replicators' own count from the workers' `/metrics` too), the
workers' and the machine's run-queue wait (`/proc/<pid>/task/*/schedstat`,
`/proc/pressure/cpu`).
With `--workers-mode`, also `agentcast serve --agent bench/_paced.py:PacedModel --workers N`
on one port (its parent and forked workers' CPU summed; no per-worker `/metrics` there).

`--redis private` (the default) starts a redis-server of its own on a free port, so that the
command counts are this benchmark's alone; a URL uses that Redis under a key prefix of its own
(removed after), and its command counts include whatever else uses it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cluster import (  # noqa: E402
    ServeWorkers,
    machine_wait_ns,
    redis_counters,
    redis_url,
    replicator_commands,
)
from _cluster_report import print_summary, print_table  # noqa: E402
from _load import (  # noqa: E402
    LATENCY_TARGET_MS,
    ServerProcess,
    StreamProtocol,
    cpu_ns,
    finish,
    percentile,
    start_server,
    tally,
)
from _paced import prompt_for  # noqa: E402
from _report import environment  # noqa: E402
from _servers import HOST, raise_open_files, serve  # noqa: E402

SCRIPT = Path(__file__).resolve()
TERMINAL = b"event: agent_end"
_RUN_ID = re.compile(rb"(?im)^x-run-id: *(\S+)")


@dataclass
class ClusterLevel:
    """One (mode, workers, stream count) measurement."""

    mode: str  # inproc, broker, or broker-cross
    workers: int
    streams: int
    tokens: int = 0
    expected_tokens: int = 0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    max_ms: float = float("nan")
    cpu_us_per_token: float = float("nan")  # all workers' CPU over all delivered tokens
    cpu_share: float = float("nan")  # the workers' CPU-seconds per second, summed
    worker_wait_share: float = float("nan")  # the workers' run-queue wait per second, summed
    machine_wait_share: float = float("nan")  # share of the wall time some task waited for a CPU
    redis_commands_per_token: float = float("nan")  # INFO commandstats, all commands
    redis_cpu_us_per_token: float = float("nan")  # INFO cpu: Redis's own CPU, not in cpu_us
    replicator_commands_per_token: float = float("nan")  # the workers' /metrics counters
    errors: int = 0
    dropped: int = 0
    error_samples: tuple[str, ...] = ()
    wall_s: float = 0.0

    @property
    def passed(self) -> bool:
        """Every stream complete and p99 within the latency budget."""
        return (
            self.errors == 0
            and self.dropped == 0
            and self.tokens == self.expected_tokens
            and self.p99_ms <= LATENCY_TARGET_MS
        )


# -- the load -------------------------------------------------------------------------------


def _post(port: int, body: bytes) -> bytes:
    return (
        f"POST /invoke HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: text/event-stream\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _start_run(port: int, body: bytes) -> str:
    """Start a streamed run on `port`, read its run id from the headers, hang up (the workers
    run with `disconnect="continue"`)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(_post(port, body))
        head = await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()
    found = _RUN_ID.search(head)
    if found is None:
        raise RuntimeError(f"no run id: {head[:200]!r}")
    return found.group(1).decode()


async def spread_streams(
    ports: Sequence[int],
    *,
    streams: int,
    tokens: int,
    rate: float,
    ramp: float,
    cross: bool,
    latencies: list[int],
    timeout: float,
) -> tuple[int, int, int, list[str]]:
    """Run `streams` streams round-robin over `ports`, starts spread over `ramp` s; with `cross`
    each is read on the next port. Return (tokens, errors, dropped, why)."""
    loop = asyncio.get_running_loop()
    body = json.dumps({"prompt": prompt_for(tokens, rate), "stream": True}).encode()
    start = loop.time()
    results: list[StreamProtocol | str] = []

    async def one(k: int) -> None:
        await asyncio.sleep(max(0.0, start + ramp * k / streams - loop.time()))
        port = ports[k % len(ports)]
        request, since = _post(port, body), 0
        try:
            if cross:
                run_id = await _start_run(port, body)
                port = ports[(k + 1) % len(ports)]
                since = time.time_ns()  # tokens due before the join are replayed, not timed
                request = (
                    f"GET /runs/{run_id}/stream?after=0 HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                    "Accept: text/event-stream\r\n\r\n"
                ).encode()
            _, protocol = await loop.create_connection(
                lambda: StreamProtocol(request, TERMINAL, latencies, since), HOST, port
            )
        except (OSError, RuntimeError, asyncio.IncompleteReadError) as exc:
            results.append(f"start: {exc!r}")
            return
        results.append(await finish(protocol, timeout))

    await asyncio.gather(*(one(k) for k in range(streams)))
    return tally(results, tokens)


async def measure(
    ports: Sequence[int],
    pids: Callable[[], list[int]],
    level: ClusterLevel,
    *,
    tokens: int,
    rate: float,
    ramp: float,
    broker: str | None,
) -> ClusterLevel:
    """Warm the workers up, then run one level and read every counter around it."""
    cross = level.mode == "broker-cross"
    # One port's /metrics is one worker's only when the port is not shared (not serve-workers).
    per_worker_metrics = broker is not None and level.mode != "serve-workers"
    warm: list[int] = []
    await spread_streams(
        ports,
        streams=min(level.streams, 20),
        tokens=5,
        rate=200,
        ramp=0.05,
        cross=cross,
        latencies=warm,
        timeout=30,
    )
    await asyncio.sleep(0.3)

    def counters() -> tuple[int, int, int, float, tuple[int, float]]:
        run = wait = 0
        for pid in pids():
            r, w = cpu_ns(pid)
            run, wait = run + r, wait + w
        sent = sum(replicator_commands(p) for p in ports) if per_worker_metrics else 0.0
        return run, wait, machine_wait_ns(), sent, redis_counters(broker) if broker else (0, 0.0)

    before, began = counters(), time.monotonic()
    latencies: list[int] = []
    delivered, errors, dropped, why = await spread_streams(
        ports,
        streams=level.streams,
        tokens=tokens,
        rate=rate,
        ramp=ramp,
        cross=cross,
        latencies=latencies,
        timeout=ramp + 3 * tokens / rate + 20,
    )
    await asyncio.sleep(0.2)  # what follows a stream (saves, the replicators' last writes)
    after, wall = counters(), time.monotonic() - began
    samples = sorted(latencies)
    level.tokens, level.errors, level.dropped = delivered, errors, dropped
    level.error_samples = tuple(why)
    level.p50_ms, level.p99_ms = percentile(samples, 50) / 1e6, percentile(samples, 99) / 1e6
    level.max_ms = samples[-1] / 1e6 if samples else float("nan")
    level.cpu_share = (after[0] - before[0]) / 1e9 / wall
    level.worker_wait_share = (after[1] - before[1]) / 1e9 / wall
    level.machine_wait_share = (after[2] - before[2]) / 1e9 / wall
    if delivered:
        level.cpu_us_per_token = (after[0] - before[0]) / 1e3 / delivered
        if per_worker_metrics:
            level.replicator_commands_per_token = (after[3] - before[3]) / delivered
        if broker:
            level.redis_commands_per_token = (after[4][0] - before[4][0]) / delivered
            level.redis_cpu_us_per_token = (after[4][1] - before[4][1]) * 1e6 / delivered
    level.wall_s = wall
    return level


def run_level(
    mode: str, workers: int, streams: int, *, tokens: int, rate: float, ramp: float, redis: str
) -> ClusterLevel:
    """Start the level's workers (and its Redis, but for inproc), measure, stop them all."""
    level = ClusterLevel(mode, workers, streams, expected_tokens=streams * tokens)
    with nullcontext(None) if mode == "inproc" else redis_url(redis) as broker:
        options = {"tokens": tokens, "rate": rate, "ramp": ramp, "broker": broker}
        if mode == "serve-workers":
            assert broker is not None
            with tempfile.TemporaryDirectory() as home:
                group = ServeWorkers(workers, broker, home)
                try:
                    return asyncio.run(measure([group.port], group.pids, level, **options))
                finally:
                    group.stop()
        command = [sys.executable, str(SCRIPT), "--serve-worker", broker or ""]
        started: list[ServerProcess] = []
        try:
            for _ in range(workers):
                started.append(start_server("agentcast", gc_mode="default", command=command))
            ports = [w.port for w in started]
            return asyncio.run(measure(ports, lambda: [w.pid for w in started], level, **options))
        finally:
            for worker in started:
                worker.stop()


def plan(
    streams: Sequence[int], workers: Sequence[int], cross: bool, baseline: bool, serve: bool
) -> list[tuple[str, int, int]]:
    """The (mode, workers, streams) levels, in the order they run."""
    levels: list[tuple[str, int, int]] = []
    for count in streams:
        if baseline:
            levels.append(("inproc", 1, count))
        for n in workers:
            levels.append(("broker", n, count))
            if cross and n >= 2:
                levels.append(("broker-cross", n, count))
            if serve and n >= 2:
                levels.append(("serve-workers", n, count))
    return levels


# -- the command ------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    values = sorted({int(part) for part in text.split(",") if part.strip()})
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError("expected positive integers, comma-separated")
    return values


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with the hidden `--serve-worker URL`, be one of its workers)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=_ints, default=[100, 1000], help="stream counts")
    parser.add_argument("--workers", type=_ints, default=[1, 2], help="broker worker counts")
    parser.add_argument("--cross", action="store_true", help="also read each run on another worker")
    parser.add_argument(
        "--workers-mode",
        action="store_true",
        help="also run `agentcast serve --workers N` on one port (N from --workers, ≥ 2)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the in-process level")
    parser.add_argument("--tokens", type=int, default=100, help="tokens per stream")
    parser.add_argument("--rate", type=float, default=20.0, help="tokens/s of every stream")
    parser.add_argument("--ramp", type=float, default=2.0, help="seconds over which streams start")
    parser.add_argument("--redis", default="private", help="`private` or a redis:// URL")
    parser.add_argument("--runs", type=int, default=1, help="repeat every level this many times")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--serve-worker", metavar="BROKER", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_worker is not None:
        serve("agentcast", "default", broker=args.serve_worker or None, disconnect="continue")
        return 0
    if args.tokens < 1 or args.rate <= 0 or args.ramp < 0 or args.runs < 1:
        parser.error("--tokens, --rate and --runs must be positive and --ramp not negative")
    raise_open_files()
    runs: list[list[ClusterLevel]] = []
    for run in range(args.runs):  # every level once per run, so all levels see the same hours
        levels = []
        for mode, workers, count in plan(
            args.streams, args.workers, args.cross, not args.no_baseline, args.workers_mode
        ):
            level = run_level(
                mode,
                workers,
                count,
                tokens=args.tokens,
                rate=args.rate,
                ramp=args.ramp,
                redis=args.redis,
            )
            print(
                f"  run {run + 1}/{args.runs} {mode} x{workers} {count} streams:"
                f" p99 {level.p99_ms:.1f} ms, {level.cpu_us_per_token:.1f} µs/token,"
                f" {level.wall_s:.1f} s",
                file=sys.stderr,
                flush=True,
            )
            levels.append(level)
        runs.append(levels)
    print(f"{os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}")
    for number, levels in enumerate(runs, 1):
        if args.runs > 1:
            print(f"\nRun {number}:")
        print_table(levels)
    if args.runs > 1:
        print_summary(runs)
    if args.json:
        payload = {
            "environment": environment(),
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "runs": [[asdict(lv) | {"passed": lv.passed} for lv in levels] for levels in runs],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    ok = all(lv.errors == 0 and lv.dropped == 0 for levels in runs for lv in levels)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
