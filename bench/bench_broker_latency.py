"""Added delivery latency through the broker: streams started on worker A, read on A and on B.

Two real `agentcast serve` workers (Postgres store, Redis broker); N runs of the demo agent at
20 tokens/s start on A; each is read live on A (the local fast path) and on B (through the
Redis Stream and B's replica). A token's latency is its arrival at the reader minus its `ts`
(stamped by A when logged; same host clock, millisecond resolution):

    python bench/bench_broker_latency.py 20       # 20 streams on each worker

Needs Postgres and Redis on 127.0.0.1 (a schema and a key prefix of its own, removed after).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.cluster import Cluster, sse_events  # noqa: E402

PROMPT = "what items are in the kitchen? tell me a long story about each"


def read(url: str, out: list[float]) -> None:
    began = time.time() * 1000 + 1000  # tokens logged before the reader caught up: left out
    with httpx.Client(timeout=60) as client, client.stream("GET", url) as response:
        for event in sse_events(response):
            if event.type == "llm_token" and event.ts > began:
                out.append(time.time() * 1000 - event.ts)


def main(streams: int) -> None:
    with Cluster(tempfile.mkdtemp(), delay="0.05") as cluster:
        a = cluster.worker("--on-disconnect", "continue")
        b = cluster.worker("--on-disconnect", "continue")
        run_ids = []
        with httpx.Client(timeout=60) as client:
            for index in range(streams):
                body = {"prompt": PROMPT, "stream": True, "session_id": f"s{index}"}
                with client.stream("POST", f"{a.url}/invoke", json=body) as answer:
                    run_ids.append(answer.headers["x-run-id"])  # the run goes on
        on_a: list[float] = []
        on_b: list[float] = []
        threads = [
            threading.Thread(target=read, args=(f"{w.url}/runs/{r}/stream?after=0", out))
            for r in run_ids
            for w, out in ((a, on_a), (b, on_b))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for name, values in (("A (executing, in memory)", on_a), ("B (through Redis)", on_b)):
        values.sort()
        p99 = values[int(len(values) * 0.99) - 1]
        print(
            f"{name}: {len(values)} tokens, p50 {statistics.median(values):.1f} ms,"
            f" p99 {p99:.1f} ms, max {values[-1]:.1f} ms"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
