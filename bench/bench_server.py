"""One server worker under many concurrent SSE streams: agentcast against its anchors.

    python bench/bench_server.py [--streams 100,1000] [--tokens 100] [--rate 20] [--runs 5]
                                 [--only agentcast --only plain-gc ...] [--json F]

Six servers (`_servers.py`) stream the same fake model (`_paced.PacedModel`: a LangChain
`BaseChatModel` whose `_astream` yields `--tokens` fresh chunks at `--rate` tokens/s, each
stamped with the wall-clock time it is due, in ns): the tutorial endpoint (`plain`,
FastAPI + sse-starlette), the same given agentcast's start-up GC tuning (`plain-gc`),
agentcast (`create_app(Agent(model))`, `POST /invoke` streaming), a raw-asyncio `floor` that
only delivers pre-encoded frames on time (no model), `drain`, the model's own `_astream`
drained with nothing delivered (the model's own cost), and `relay`, that same stream with one
raw write per chunk (the least a server streaming this model can do).

Each (server, stream count) level gets a fresh server process: one worker (uvicorn, asyncio
loop, h11; the raw servers: a bare asyncio protocol) on 127.0.0.1, so the client's CPU is not
counted. The load client (`_load.py`, this process) measures per level: p50/p99/max added
latency (receive time - due time: a stalled server loop shows up as latency); server CPU per
token (all of its threads, from after a warm-up to after the last stream); RSS growth per
stream; the server's garbage collections and longest pause; errors and dropped streams; and
the client's own CPU and loop lag, to show the client is not the bottleneck.

Verdicts (issue 10 and DESIGN.md budgets), per run and as medians over `--runs`:
- a server's **own cost per token** = its CPU per token - `drain`'s at the same stream count;
  agentcast's own ≤ 1.5 × the floor's CPU per token, and ≤ 1/3 of `plain-gc`'s own;
- streams held within p99 ≤ 50 ms: agentcast ≥ 3 × `plain-gc` (and DESIGN's 20 × `plain`);
  `relay` ÷ `plain-gc` is reported beside it: no server streaming this model can exceed it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _load import LATENCY_TARGET_MS, Level, measure_level, start_server  # noqa: E402
from _memory import print_memory  # noqa: E402
from _report import environment, print_report  # noqa: E402
from _servers import GC_MODES, SERVERS, raise_open_files, serve  # noqa: E402

STREAMS_TARGET = 1000
CAPACITY_RATIO_TARGET = 20.0  # DESIGN.md: against the tutorial endpoint
TUNED_CAPACITY_RATIO_TARGET = 3.0  # issue 10: against the same endpoint given our GC tuning
CPU_RATIO_TARGET = 1 / 3
OWN_FLOOR_RATIO_TARGET = 1.5

__all__ = ["LATENCY_TARGET_MS", "Level", "Verdict", "main", "run_bench", "verdict"]


def run_bench(
    *,
    streams: Sequence[int] = (100, 1000),
    tokens: int = 100,
    rate: float = 20.0,
    ramp: float = 2.0,
    servers: Sequence[str] = SERVERS,
    gc_mode: str = "default",
    runs: int = 1,
    profile: Path | None = None,
    py_spy: str = "py-spy",
    count_objects: bool = False,
    trace_memory: bool = False,
    progress: Any = None,
) -> list[Level]:
    """Measure every server at every stream count, each level on a fresh server process.

    The order of the servers alternates from one level to the next, and `runs` repeats it all.
    """
    raise_open_files()
    levels: list[Level] = []
    position = 0
    for run in range(runs):
        for count in streams:
            order = list(servers) if position % 2 == 0 else list(reversed(servers))
            position += 1
            for kind in order:
                server = start_server(kind, gc_mode=gc_mode, trace_memory=trace_memory)
                name = f"{kind}-{count}" + (f"-run{run}" if runs > 1 else "")
                try:
                    level = asyncio.run(
                        measure_level(
                            server,
                            streams=count,
                            tokens=tokens,
                            rate=rate,
                            ramp=ramp,
                            profile=None if profile is None else profile / f"{name}.txt",
                            py_spy=py_spy,
                            count_objects=count_objects,
                            trace_memory=trace_memory,
                        )
                    )
                finally:
                    server.stop()
                level.run = run
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


def capacity_ratio(ours: Capacity, theirs: Capacity) -> tuple[float | None, float | None]:
    """Bounds on ours ÷ theirs: (more than, fewer than); None where the levels do not bound it."""
    a_lo, a_hi = ours.held or 0, ours.failed
    p_lo, p_hi = theirs.held or 0, theirs.failed
    low = a_lo / p_hi if p_hi is not None and a_lo else None
    high = a_hi / p_lo if a_hi is not None and p_lo else None
    return low, high


def _judge(low: float | None, high: float | None, target: float) -> bool | None:
    if low is not None and low >= target:
        return True
    if high is not None and high <= target:
        return False
    return None


@dataclass
class Verdict:
    """The budget comparisons of one run's levels."""

    agentcast: Capacity
    plain: Capacity
    plain_gc: Capacity
    relay: Capacity
    ratio_low: float | None  # agentcast holds more than this many times plain's streams
    ratio_high: float | None  # ... and fewer than this (None: unbounded by the levels run)
    streams_passed: bool | None
    tuned_ratio_low: float | None  # the same against plain-gc
    tuned_ratio_high: float | None
    tuned_streams_passed: bool | None
    # relay ÷ plain-gc: the most any server streaming this model can get past plain-gc here
    bound_ratio_low: float | None
    bound_ratio_high: float | None
    target_streams_passed: bool | None
    cpu_ratios: dict[int, float]  # agentcast ÷ plain, CPU per token
    cpu_passed: bool | None
    cpu_ratios_without_gc: dict[int, float]
    own_us: dict[str, dict[int, float]]  # server -> count -> own CPU per token (minus drain)
    own_floor_ratios: dict[int, float]  # agentcast own ÷ floor
    own_plain_gc_ratios: dict[int, float]  # agentcast own ÷ plain-gc own
    own_passed: bool | None


def _per_count(levels: Sequence[Level]) -> dict[int, dict[str, Level]]:
    table: dict[int, dict[str, Level]] = {}
    for level in levels:
        table.setdefault(level.streams, {})[level.server] = level
    return dict(sorted(table.items()))


def _ratio(a: float, b: float) -> float | None:
    return a / b if a == a and b == b and b > 0 else None


def verdict(levels: Sequence[Level]) -> Verdict:
    """Judge one run: capacities and their ratios, CPU ratios, agentcast's own cost."""
    ours, theirs, tuned = (capacity(levels, s) for s in ("agentcast", "plain", "plain-gc"))
    low, high = capacity_ratio(ours, theirs)
    tuned_low, tuned_high = capacity_ratio(ours, tuned)
    relay = capacity(levels, "relay")
    bound_low, bound_high = capacity_ratio(relay, tuned)
    at_target = [lv for lv in levels if lv.server == "agentcast" and lv.streams >= STREAMS_TARGET]
    target = all(lv.passed for lv in at_target) if at_target else None
    cpu: dict[int, float] = {}
    cpu_without_gc: dict[int, float] = {}
    own: dict[str, dict[int, float]] = {}
    own_floor: dict[int, float] = {}
    own_plain_gc: dict[int, float] = {}
    for count, pair in _per_count(levels).items():
        if "agentcast" in pair and "plain" in pair:
            a, p = pair["agentcast"], pair["plain"]
            if (r := _ratio(a.server_cpu_us_per_token, p.server_cpu_us_per_token)) is not None:
                cpu[count] = r
            r = _ratio(a.server_cpu_us_per_token_without_gc, p.server_cpu_us_per_token_without_gc)
            if r is not None:
                cpu_without_gc[count] = r
        if "drain" in pair:
            model = pair["drain"].server_cpu_us_per_token
            for name in ("plain", "plain-gc", "agentcast"):
                if name in pair and model == model:
                    own.setdefault(name, {})[count] = pair[name].server_cpu_us_per_token - model
        mine = own.get("agentcast", {}).get(count, float("nan"))
        floor = pair["floor"].server_cpu_us_per_token if "floor" in pair else float("nan")
        if (r := _ratio(mine, floor)) is not None:
            own_floor[count] = r
        if (r := _ratio(mine, own.get("plain-gc", {}).get(count, float("nan")))) is not None:
            own_plain_gc[count] = r
    own_passed: bool | None = None
    if own_floor or own_plain_gc:
        own_passed = all(r <= OWN_FLOOR_RATIO_TARGET for r in own_floor.values()) and all(
            r <= CPU_RATIO_TARGET for r in own_plain_gc.values()
        )
    return Verdict(
        agentcast=ours,
        plain=theirs,
        plain_gc=tuned,
        relay=relay,
        ratio_low=low,
        ratio_high=high,
        streams_passed=_judge(low, high, CAPACITY_RATIO_TARGET),
        tuned_ratio_low=tuned_low,
        tuned_ratio_high=tuned_high,
        tuned_streams_passed=_judge(tuned_low, tuned_high, TUNED_CAPACITY_RATIO_TARGET),
        bound_ratio_low=bound_low,
        bound_ratio_high=bound_high,
        target_streams_passed=target,
        cpu_ratios=cpu,
        cpu_passed=all(r <= CPU_RATIO_TARGET for r in cpu.values()) if cpu else None,
        cpu_ratios_without_gc=cpu_without_gc,
        own_us=own,
        own_floor_ratios=own_floor,
        own_plain_gc_ratios=own_plain_gc,
        own_passed=own_passed,
    )


def verdicts(levels: Sequence[Level]) -> list[Verdict]:
    """One verdict per run, in run order."""
    runs = sorted({lv.run for lv in levels})
    return [verdict([lv for lv in levels if lv.run == run]) for run in runs]


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, min, max) of the values."""
    return statistics.median(values), min(values), max(values)


# -- the command ------------------------------------------------------------------------------


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
        default=[100, 1000],
        help="concurrent stream counts, comma-separated (default 100,1000)",
    )
    parser.add_argument("--max-streams", type=int, help="skip stream counts above this")
    parser.add_argument("--tokens", type=int, default=100, help="tokens per stream")
    parser.add_argument("--rate", type=float, default=20.0, help="tokens/s of every stream")
    parser.add_argument("--ramp", type=float, default=2.0, help="seconds over which streams start")
    parser.add_argument("--runs", type=int, default=1, help="repeat every level this many times")
    parser.add_argument(
        "--only", choices=SERVERS, action="append", default=[], help="run only this server"
    )
    parser.add_argument(
        "--server-gc",
        choices=GC_MODES,
        default="default",
        help="every server's garbage collector: default, gc.freeze() after start-up, or off"
        " (plain-gc and agentcast tune theirs on top)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="sample every server with py-spy while it is measured; raw collapsed stacks into"
        " this directory (one file per level)",
    )
    parser.add_argument("--py-spy", default="py-spy", help="the py-spy executable")
    parser.add_argument(
        "--count-objects",
        action="store_true",
        help="count the server's live tracked objects halfway through each level (walks every"
        " object once: a pause of some ms, so it is off by default)",
    )
    parser.add_argument(
        "--trace-memory",
        action="store_true",
        help="trace the uvicorn-served servers' allocations (tracemalloc) and report, halfway"
        " through each level, the memory grown per stream by owner (agentcast, its event log,"
        " the framework, the model, other); slows the server several times over: off by default",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.max_streams is not None:
        args.streams = [c for c in args.streams if c <= args.max_streams]
        if not args.streams:
            parser.error("--max-streams leaves no stream count")
    if args.tokens < 1 or args.rate <= 0 or args.ramp < 0 or args.runs < 1:
        parser.error("--tokens, --rate, --runs must be positive and --ramp not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with the hidden `--serve KIND`, be one of its servers)."""
    args = parse_args(argv)
    if args.serve:
        serve(args.serve, args.server_gc, args.trace_memory)
        return 0
    env = environment()

    def progress(level: Level) -> None:
        print(
            f"  run {level.run + 1}/{args.runs} {level.server:>9} x{level.streams:<5}"
            f" p99 {level.p99_ms:8.1f} ms, {level.server_cpu_us_per_token:6.1f} µs/token,"
            f" {level.wall_s:5.1f} s",
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
        runs=args.runs,
        profile=args.profile,
        py_spy=args.py_spy,
        count_objects=args.count_objects,
        trace_memory=args.trace_memory,
        progress=progress,
    )
    results = verdicts(levels)
    print_report(levels, results, env, args)
    if args.trace_memory:
        print_memory(levels)
    if args.json:
        payload = {
            "environment": env,
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "levels": [asdict(lv) | {"passed": lv.passed} for lv in levels],
            "verdicts": [asdict(v) for v in results],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    missed = any(
        False in (v.tuned_streams_passed, v.target_streams_passed, v.own_passed) for v in results
    )
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
