"""The server benchmark's report: the per-level table, the verdicts, where the CPU goes."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from _load import LATENCY_TARGET_MS, Level
from _servers import SERVERS

# -- profiles -------------------------------------------------------------------------------

PROFILE_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    # First match wins, in this order, over the part of a sample's stack below the event
    # loop's dispatch (`loop_work`).
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


_DISPATCH = ("Handle._run (asyncio/", "BaseEventLoop._run_once (asyncio/")


def loop_work(stack: str) -> str:
    """The part of a collapsed stack from the event loop's innermost dispatch frame down.

    The frames above it only say who runs the loop: under uvicorn every sample's stack starts
    in `uvicorn/_compat.py`, and matching those frames would file the loop's own work (task
    steps, timers, `select`) under uvicorn. A sample outside the loop keeps its whole stack.
    """
    frames = stack.split(";")
    for index in range(len(frames) - 1, -1, -1):
        if frames[index].startswith(_DISPATCH):
            return ";".join(frames[index:])
    return stack


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
        stack = loop_work(stack)
        name = "other"
        for category, needles in PROFILE_CATEGORIES:
            if any(needle in stack for needle in needles):
                name = category
                break
        counts[name] = counts.get(name, 0) + int(number)
    return {name: count / total for name, count in counts.items()} if total else {}


def print_profiles(console: Any, levels: Sequence[Level], directory: Path, runs: int) -> None:
    from rich.table import Table

    for count in sorted({lv.streams for lv in levels}):
        mine = sorted(
            (lv for lv in levels if lv.streams == count and lv.run == 0),
            key=lambda lv: SERVERS.index(lv.server),
        )
        shares = {}
        for level in mine:
            suffix = "-run0" if runs > 1 else ""
            path = directory / f"{level.server}-{count}{suffix}.txt"
            if path.is_file():
                shares[level.server] = (level, summarize_profile(path))
        if not shares:
            continue
        table = Table(
            title=f"Where the server's CPU goes, {count} streams, first run (py-spy samples;"
            " µs/token ="
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


def spread(values: Sequence[float], spec: str = ".1f") -> str:
    """`median (min-max)` of the values (just the value when there is one); NaNs (not
    measured) left out."""
    values = [v for v in values if v == v]
    if not values:
        return "-"
    if len(values) == 1:
        return format(values[0], spec)
    low, high = min(values), max(values)
    return f"{statistics.median(values):{spec}} ({low:{spec}}-{high:{spec}})"


def _capacity_text(cap: Any) -> str:
    held = "none" if cap.held is None else f"{cap.held}"
    return held + ("" if cap.failed is None else f" (fails at {cap.failed})")


def _bounds(low: float | None, high: float | None) -> str:
    lo = "-" if low is None else f"> {low:.3g}"
    hi = "unbounded by these levels" if high is None else f"< {high:.3g}"
    return f"{lo}, {hi}"


def _per_run(results: Sequence[Any], pick: Callable[[Any], str]) -> str:
    return "; ".join(pick(v) for v in results)


def _collect(results: Sequence[Any], attr: str) -> dict[int, list[float]]:
    table: dict[int, list[float]] = {}
    for result in results:
        for count, value in getattr(result, attr).items():
            table.setdefault(count, []).append(value)
    return table


def _level_table(levels: Sequence[Level], runs: int) -> Any:
    from rich.table import Table

    table = Table(
        title="Per level (latencies in ms; µs/tok and busy: server CPU; wait: the server ready to"
        " run but the CPU taken by another process (machine contention); KB/str: peak ΔRSS per"
        " stream; ev/write: events per SSE write (agentcast; the others write one per token);"
        " obj/tok: live tracked objects per token in flight (--count-objects); gc2: the"
        " server's full collections, gc ms/max: time in all its"
        " collections and the longest pause;"
        " cli: the client's CPU per token and loop lag p99, ms)",
        title_justify="left",
    )
    columns = ["run"] if runs > 1 else []
    columns += ["streams", "server", "tokens", "p50", "p99", "max", "µs/tok", "busy", "wait"]
    columns += ["KB/str", "ev/write", "obj/tok", "gc2", "gc ms", "gc max", "err/drop"]
    columns += ["cli µs/tok", "cli lag", "p99≤50"]
    for name in columns:
        table.add_column(name, justify="left" if name in ("server", "p99≤50") else "right")
    for level in sorted(levels, key=lambda lv: (lv.run, lv.streams, SERVERS.index(lv.server))):
        cells = [str(level.run + 1)] if runs > 1 else []
        cells += [
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
            _f(level.events_per_write, ".2f"),
            _f(level.tracked_per_token, ".2f"),
            str(level.gc_count[2]) if level.gc_count else "-",
            _f(level.gc_pause_ms, ".0f"),
            _f(level.gc_max_pause_ms, ".0f"),
            f"{level.errors}/{level.dropped}",
            _f(level.client_cpu_us_per_token, ".1f"),
            _f(level.client_lag_p99_ms, ".1f"),
            "n/a" if level.server == "drain" else _verdict(level.passed),
        ]
        table.add_row(*cells)
    return table


def print_report(
    levels: list[Level], results: Sequence[Any], env: dict[str, Any], args: argparse.Namespace
) -> None:
    """Print the header, the per-level table, the verdicts and (with --profile) the profiles."""
    from rich.console import Console

    console = Console(highlight=False, width=max(Console().width, 160))
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    console.print(
        "[bold]agentcast server benchmark[/bold] - one worker per level on 127.0.0.1,"
        f" {args.tokens} tokens per stream at {args.rate:g} tok/s, starts spread over"
        f" {args.ramp:g} s, {args.runs} run(s)"
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
        " excluded; own = CPU per token - drain's (the model alone) at the same stream count"
    )
    console.print()
    console.print(_level_table(levels, args.runs))
    for level in levels:
        if level.error_samples:
            console.print(f"  {level.server} x{level.streams}: {'; '.join(level.error_samples)}")
    typed = [lv for lv in levels if lv.tracked_types_per_stream]
    if typed:
        console.print("Live tracked objects per stream halfway through, by type (--count-objects):")
        for level in typed:
            kinds = ", ".join(f"{n:g} {name}" for name, n in level.tracked_types_per_stream.items())
            console.print(f"  run {level.run + 1} {level.server} x{level.streams}: {kinds}")
    console.print()
    console.print(f"Streams held within p99 ≤ {LATENCY_TARGET_MS:g} ms, per run:")
    named = (("agentcast", "agentcast"), ("plain-gc", "plain_gc"), ("plain", "plain"))
    for name, attr in (*named, ("relay", "relay")):
        text = _per_run(results, lambda v, a=attr: _capacity_text(getattr(v, a)))
        console.print(f"  {name}: {text}")
    console.print(
        "  agentcast ÷ plain-gc streams (target ≥ 3): "
        + _per_run(
            results,
            lambda v: (
                f"{_bounds(v.tuned_ratio_low, v.tuned_ratio_high)}"
                f" {_verdict(v.tuned_streams_passed)}"
            ),
        )
    )
    console.print(
        "  relay ÷ plain-gc streams (the most any server streaming this model can reach): "
        + _per_run(results, lambda v: _bounds(v.bound_ratio_low, v.bound_ratio_high))
    )
    console.print(
        "  agentcast ÷ plain streams (DESIGN target ≥ 20): "
        + _per_run(
            results, lambda v: f"{_bounds(v.ratio_low, v.ratio_high)} {_verdict(v.streams_passed)}"
        )
    )
    console.print(
        "  agentcast at 1000 streams within the budget: "
        + _per_run(results, lambda v: _verdict(v.target_streams_passed))
    )
    console.print("Own CPU per token (µs, median (min-max) over runs; own = CPU - drain's):")
    floor = {}
    for level in levels:
        if level.server == "floor":
            floor.setdefault(level.streams, []).append(level.server_cpu_us_per_token)
    owns = {
        name: {c: [v.own_us[name][c] for v in results if c in v.own_us.get(name, {})] for c in cs}
        for name in ("agentcast", "plain-gc", "plain")
        for cs in [sorted({lv.streams for lv in levels})]
    }
    for count in sorted({lv.streams for lv in levels}):
        parts = [f"floor {spread(floor.get(count, []), '.1f')}"]
        parts += [f"{name} {spread(owns[name].get(count, []), '.1f')}" for name in owns]
        console.print(f"  {count} streams: " + ", ".join(parts))
    floor_ratios = _collect(results, "own_floor_ratios")
    tuned_ratios = _collect(results, "own_plain_gc_ratios")
    console.print(
        "  agentcast own ÷ floor (target ≤ 1.5): "
        + (", ".join(f"{c}: {spread(r, '.2f')}" for c, r in floor_ratios.items()) or "-")
    )
    console.print(
        "  agentcast own ÷ plain-gc own (target ≤ 0.33): "
        + (", ".join(f"{c}: {spread(r, '.2f')}" for c, r in tuned_ratios.items()) or "-")
        + "  "
        + _per_run(results, lambda v: _verdict(v.own_passed))
    )
    cpu = _collect(results, "cpu_ratios")
    console.print(
        "  server CPU per token, agentcast ÷ plain: "
        + (", ".join(f"{c}: {spread(r, '.2f')}" for c, r in cpu.items()) or "-")
    )
    if args.profile is not None:
        print_profiles(console, levels, args.profile, args.runs)
