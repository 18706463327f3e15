"""Redis commands per token with the broker: one stream entry per event vs one per batch.

Runs the demo agent (offline model) in-process with a `RedisBroker` and counts what the
replicator sent (commands, round trips) for the run's events, at a given token delay:

    AGENTCAST_OFFLINE_DELAY=0 python bench/bench_broker.py      # tokens as fast as possible
    AGENTCAST_OFFLINE_DELAY=0.02 python bench/bench_broker.py   # ~50 tokens/s, one per wake-up

Needs Redis on 127.0.0.1:6379 (db 13, keys under a random prefix, deleted at the end).
"""

from __future__ import annotations

import asyncio
import time
import uuid

from agentcast import default_agent
from agentcast.broker import attach, open_broker
from agentcast.runtime import RunManager

PROMPT = "what items are in the kitchen? tell me a long story about each"


async def measure(per_event: bool, runs: int = 5) -> dict[str, float]:
    prefix = f"bench{uuid.uuid4().hex[:8]}:"
    broker = open_broker(f"redis://127.0.0.1:6379/13?prefix={prefix}", per_event=per_event)
    manager = RunManager(default_agent().start, session_policy="enqueue")
    node = attach(broker, manager)
    await node.start()
    events = tokens = 0
    began = time.perf_counter()
    for _ in range(runs):
        managed = manager.start(PROMPT, session_id=None)
        await managed.run.wait()
        await node.replicator.flushed()  # until the replicator wrote the run's end
        log = managed.run.log.snapshot()
        events += len(log)
        tokens += sum(1 for e in log if e.type == "llm_token")
    took = time.perf_counter() - began
    stats = node.stats
    keys = [k async for k in broker.client.scan_iter(f"{prefix}*")]
    if keys:
        await broker.client.delete(*keys)
    await node.aclose()
    return {
        "events": events,
        "tokens": tokens,
        "commands": stats.commands,
        "round_trips": stats.round_trips,
        "commands_per_token": stats.commands / tokens,
        "events_per_round_trip": stats.events / stats.round_trips,
        "seconds": took,
    }


async def main() -> None:
    for per_event in (True, False):
        result = await measure(per_event)
        mode = "entry per event" if per_event else "entry per batch"
        print(
            f"{mode}: {result['tokens']} tokens, {result['events']} events,"
            f" {result['commands']} commands ({result['commands_per_token']:.3f}/token),"
            f" {result['round_trips']} round trips"
            f" ({result['events_per_round_trip']:.2f} events each), {result['seconds']:.2f} s"
        )


if __name__ == "__main__":
    asyncio.run(main())
