"""Per-token cost of streaming, in one run, on the same fake model and workload.

    python bench/bench_tokens.py [--tokens 2000] [--repeat 5] [--hop both|on|off] [--json out.json]

Contestants (each consumes the whole workload and counts the token chunks it saw):

1. `model.astream`            - the baseline: LangChain's own chunk stream, consumed in a loop
                                (workload B: a hand-written loop that collects the argument
                                fragments, runs the tools and streams the second turn).
2. `astream_events(v2)`       - the same loop over `model.astream_events(..., version="v2")`.
3. LangGraph `messages`       - a `StateGraph(MessagesState)`: an agent node calling `.ainvoke`
                                (+ `ToolNode` and `tools_condition` for workload B), consumed with
                                `graph.astream(..., stream_mode="messages")`.
4. agentcast `Agent.astream`  - the native path: `Agent(model=fake, tools=...)`, consumed to
                                `agent_end`.

Workloads: (A) a plain answer of `--tokens` chunks; (B) one turn with `--tool-calls` parallel
tool calls whose arguments arrive in `--arg-chunks` chunks each, then an answer of
`--final-tokens` chunks. "Tokens" = the chunks the model yields (text + tool-argument chunks),
the same count for every contestant (each run checks it saw exactly that many).

DESIGN.md budget: agentcast's native path adds at most 1/10 of what `astream_events(v2)` adds
over `model.astream`, per token, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage  # noqa: E402
from langchain_core.runnables import Runnable  # noqa: E402
from langgraph.graph import END, START, MessagesState, StateGraph  # noqa: E402
from langgraph.prebuilt import ToolNode, tools_condition  # noqa: E402

from _fake import FakeStreamModel, lookup  # noqa: E402
from agentcast import Agent, AgentEnd, LLMToken, ToolCallDelta, ToolEnd  # noqa: E402
from agentcast.sessions import MemoryStore  # noqa: E402

PROMPT = "Stream the benchmark answer."
TARGET = 0.10  # agentcast's added cost / astream_events(v2)'s added cost
TOOLS = {lookup.name: lookup}

RAW = "model.astream (baseline)"
EVENTS = "astream_events(v2)"
GRAPH = "LangGraph messages"
AGENTCAST = "agentcast Agent.astream"
CONTESTANTS = (RAW, EVENTS, GRAPH, AGENTCAST)
SHORT = {"raw": RAW, "events": EVENTS, "graph": GRAPH, "agentcast": AGENTCAST}
CLOCKS = {"wall": time.perf_counter_ns, "cpu": time.process_time_ns}


class BenchError(RuntimeError):
    """A contestant did not do the workload (wrong token count, failed run)."""


# -- the setups -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """One workload: what the fake model streams."""

    key: str
    title: str
    answer_tokens: int
    final_tokens: int
    tool_calls: int
    arg_chunks: int

    @property
    def uses_tools(self) -> bool:
        return self.tool_calls > 0

    @property
    def tokens(self) -> int:
        if self.uses_tools:
            return self.tool_calls * self.arg_chunks + self.final_tokens
        return self.answer_tokens


@dataclass
class Setup:
    """Everything a contestant needs, built once per (workload, hop) outside the timings."""

    model: FakeStreamModel
    bound: Runnable[Any, Any]
    graph: Any
    agent: Agent
    sessions: itertools.count[int] = field(default_factory=itertools.count)


def make_setup(workload: Workload, *, hop: bool, layout: str, rebuild: bool) -> Setup:
    model = FakeStreamModel(
        answer_tokens=workload.answer_tokens,
        final_tokens=workload.final_tokens,
        tool_calls=workload.tool_calls,
        arg_chunks=workload.arg_chunks,
        layout=layout,  # type: ignore[arg-type]
        hop=hop,
        rebuild=rebuild,
    )
    tools = [lookup] if workload.uses_tools else []
    bound = model.bind_tools(tools) if tools else model

    async def agent_node(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [await bound.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent_node)
    builder.add_edge(START, "agent")
    if tools:
        builder.add_node("tools", ToolNode(tools))
        builder.add_conditional_edges("agent", tools_condition)
        builder.add_edge("tools", "agent")
    else:
        builder.add_edge("agent", END)
    agent = Agent(model=model, tools=tools, store=MemoryStore())
    return Setup(model=model, bound=bound, graph=builder.compile(), agent=agent)


# -- the contestants ------------------------------------------------------------------------
# Each returns how many token chunks (non-empty text, or a non-empty tool-argument fragment) it saw.


def _is_token(chunk: Any) -> bool:
    if chunk.content:
        return True
    return any(part.get("args") for part in chunk.tool_call_chunks)


async def _run_tools(calls: list[dict[str, Any]]) -> list[BaseMessage]:
    # Concurrently, as ToolNode and agentcast do; a ToolCall in -> a ToolMessage out.
    return list(
        await asyncio.gather(*(TOOLS[c["name"]].ainvoke({**c, "type": "tool_call"}) for c in calls))
    )


async def run_raw(setup: Setup) -> int:
    """The baseline: `astream` chunks, argument fragments collected by index, tools run."""
    messages: list[BaseMessage] = [HumanMessage(PROMPT)]
    seen = 0
    while True:
        calls: dict[int, list[Any]] = {}
        async for chunk in setup.bound.astream(messages):
            if chunk.content:
                seen += 1
            for part in chunk.tool_call_chunks:
                call = calls.get(part["index"])
                if call is None:
                    call = calls[part["index"]] = [part["id"], part["name"], []]
                if part["args"]:
                    seen += 1
                    call[2].append(part["args"])
        if not calls:
            return seen
        tool_calls = [
            {"id": i, "name": n, "args": json.loads("".join(p))} for i, n, p in calls.values()
        ]
        messages.append(AIMessage(content="", tool_calls=tool_calls))
        messages.extend(await _run_tools(tool_calls))


async def run_events(setup: Setup) -> int:
    """The same loop over `astream_events(version="v2")`; the turn's message from the end event."""
    messages: list[BaseMessage] = [HumanMessage(PROMPT)]
    seen = 0
    while True:
        output: Any = None
        async for event in setup.bound.astream_events(messages, version="v2"):
            kind = event["event"]
            if kind == "on_chat_model_stream":
                if _is_token(event["data"]["chunk"]):
                    seen += 1
            elif kind == "on_chat_model_end":
                output = event["data"]["output"]
        if output is None:
            raise BenchError("astream_events gave no on_chat_model_end")
        if not output.tool_calls:
            return seen
        messages.append(AIMessage(content=output.content, tool_calls=output.tool_calls))
        messages.extend(await _run_tools(output.tool_calls))


async def run_graph(setup: Setup) -> int:
    """LangGraph `stream_mode="messages"` on the one-node (or agent + ToolNode) graph."""
    seen = 0
    async for message, _meta in setup.graph.astream(
        {"messages": [HumanMessage(PROMPT)]}, stream_mode="messages"
    ):
        if message.__class__ is AIMessageChunk and _is_token(message):
            seen += 1
    return seen


async def run_agentcast(setup: Setup) -> int:
    """agentcast's native path, consumed to `agent_end`."""
    seen = 0
    last: Any = None
    failed_tools = 0
    async for event in setup.agent.astream(PROMPT, session_id=f"bench-{next(setup.sessions)}"):
        cls = event.__class__
        if cls is LLMToken or cls is ToolCallDelta:
            seen += 1
        elif cls is ToolEnd and event.status != "ok":
            failed_tools += 1
        last = event
    if last.__class__ is not AgentEnd or last.outcome != "success" or failed_tools:
        raise BenchError(f"the agentcast run did not succeed: {last!r}")
    return seen


RUNNERS: dict[str, Callable[[Setup], Awaitable[int]]] = {
    RAW: run_raw,
    EVENTS: run_events,
    GRAPH: run_graph,
    AGENTCAST: run_agentcast,
}


# -- measuring ------------------------------------------------------------------------------


@dataclass
class Row:
    """One contestant's figures in one table (µs per token)."""

    contestant: str
    us_per_token: float
    min_us_per_token: float
    added_us: float
    added_ratio: float | None
    samples: list[float]


@dataclass
class Table:
    """One workload in one hop mode."""

    workload: str
    title: str
    hop: bool
    tokens: int
    rows: list[Row]
    ratio: float | None  # agentcast added / astream_events added
    passed: bool | None  # None: the run did not include the contestants the target needs

    def row(self, contestant: str) -> Row:
        return next(r for r in self.rows if r.contestant == contestant)


async def _timed(
    runner: Callable[[Setup], Awaitable[int]],
    setup: Setup,
    tokens: int,
    clock: str = "wall",
    collect: bool = True,
) -> float:
    now = CLOCKS[clock]
    if collect:  # start each run from the same collector state (gc stays enabled while timing)
        gc.collect()
    started = now()
    seen = await runner(setup)
    elapsed = now() - started
    if seen != tokens:
        raise BenchError(f"{runner.__name__} saw {seen} token chunks, expected {tokens}")
    return elapsed / 1000 / tokens


async def measure(
    workload: Workload,
    *,
    hop: bool,
    repeat: int,
    layout: str,
    rebuild: bool,
    contestants: tuple[str, ...] = CONTESTANTS,
    clock: str = "wall",
    collect: bool = True,
) -> Table:
    setup = make_setup(workload, hop=hop, layout=layout, rebuild=rebuild)
    tokens = workload.tokens
    for name in contestants:  # warm-up: imports, caches, first-call paths
        await _timed(RUNNERS[name], setup, tokens, clock, collect)
    samples: dict[str, list[float]] = {name: [] for name in contestants}
    for r in range(repeat):
        # Rotate the order so no contestant always runs right after the same neighbour.
        shift = r % len(contestants)
        for name in contestants[shift:] + contestants[:shift]:
            samples[name].append(await _timed(RUNNERS[name], setup, tokens, clock, collect))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    base = medians.get(RAW, 0.0)
    events_added = medians[EVENTS] - base if EVENTS in medians and RAW in medians else None
    rows = []
    for name in contestants:
        added = medians[name] - base if RAW in medians else float("nan")
        ratio = (
            added / events_added
            if name != RAW and events_added is not None and events_added > 0
            else None
        )
        rows.append(
            Row(
                contestant=name,
                us_per_token=medians[name],
                min_us_per_token=min(samples[name]),
                added_us=added,
                added_ratio=ratio,
                samples=samples[name],
            )
        )
    ratio = next((r.added_ratio for r in rows if r.contestant == AGENTCAST), None)
    return Table(
        workload=workload.key,
        title=workload.title,
        hop=hop,
        tokens=tokens,
        rows=rows,
        ratio=ratio,
        passed=None if ratio is None else ratio <= TARGET,
    )


def workloads(
    *, tokens: int, final_tokens: int, tool_calls: int, arg_chunks: int, which: str = "all"
) -> list[Workload]:
    """The workloads to run: A (plain answer), B (tool calls, then an answer)."""
    a = Workload("A", f"{tokens}-token plain answer", tokens, 0, 0, 0)
    b = Workload(
        "B",
        f"{tool_calls} parallel tool calls x {arg_chunks} argument chunks, "
        f"then a {final_tokens}-token answer",
        0,
        final_tokens,
        tool_calls,
        arg_chunks,
    )
    return [w for w in (a, b) if which in ("all", w.key)]


def run_bench(
    *,
    tokens: int = 2000,
    final_tokens: int = 500,
    tool_calls: int = 3,
    arg_chunks: int = 20,
    repeat: int = 5,
    hop: str = "both",
    layout: str = "interleaved",
    rebuild: bool = False,
    workload: str = "all",
    only: tuple[str, ...] = (),
    clock: str = "wall",
    collect: bool = True,
) -> list[Table]:
    """Run every workload in the requested hop modes; return one table for each.

    `collect=False` skips the `gc.collect()` before each timed run (~30 ms each with LangChain
    and LangGraph loaded): faster, noisier; for smoke tests.
    """
    hops = {"both": (False, True), "on": (True,), "off": (False,)}[hop]
    chosen = workloads(
        tokens=tokens,
        final_tokens=final_tokens,
        tool_calls=tool_calls,
        arg_chunks=arg_chunks,
        which=workload,
    )

    contestants = tuple(c for c in CONTESTANTS if not only or c in {SHORT[o] for o in only})

    async def main() -> list[Table]:
        return [
            await measure(
                w,
                hop=h,
                repeat=repeat,
                layout=layout,
                rebuild=rebuild,
                contestants=contestants,
                clock=clock,
                collect=collect,
            )
            for h in hops
            for w in chosen
        ]

    return asyncio.run(main())


# -- reporting ------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    """What the figures depend on, for the header and the JSON."""
    tracing = {
        k: v for k, v in os.environ.items() if k.endswith("TRACING_V2") or k.endswith("TRACING")
    }
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "langchain_core": version("langchain-core"),
        "langgraph": version("langgraph"),
        "agentcast": version("agentcast"),
        "gc_enabled": gc.isenabled(),
        "gc_thresholds": list(gc.get_threshold()),
        "tracing_env": tracing,
    }


def _verdict(passed: bool | None) -> str:
    return {True: "[green]PASS[/green]", False: "[red]FAIL[/red]", None: "n/a"}[passed]


def overall_verdict(tables: list[Table]) -> bool | None:
    """PASS only when every table passes; n/a when no table could be judged."""
    judged = [t.passed for t in tables if t.passed is not None]
    return all(judged) if judged else None


def print_report(tables: list[Table], env: dict[str, Any], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable

    console = Console(highlight=False, width=max(Console().width, 112))
    clock = "perf_counter_ns, wall" if args.clock == "wall" else "process_time_ns, CPU"
    console.print(
        "[bold]agentcast token benchmark[/bold] - µs per token, median of "
        f"{args.repeat} repeats after 1 warm-up, all contestants in one process, interleaved"
    )
    console.print(
        f"  Python {env['python']} ({env['implementation']}) on {env['platform']}, "
        f"{env['cpus']} CPUs; langchain-core {env['langchain_core']}, "
        f"langgraph {env['langgraph']}, agentcast {env['agentcast']}; default asyncio loop"
    )
    console.print(
        f"  gc: default state (enabled={env['gc_enabled']}, "
        f"thresholds={tuple(env['gc_thresholds'])}); gc.collect() before each timed run, "
        "never during it"
    )
    if env["tracing_env"]:
        console.print(f"  [yellow]tracing variables set: {env['tracing_env']}[/yellow]")
    console.print(
        "  model: bench/_fake.py FakeStreamModel, zero delay, each text chunk ' tok', "
        + ("chunks rebuilt every call" if args.rebuild_chunks else "chunks pre-built and reused")
        + f"; tool-argument chunks {args.layout}"
    )
    console.print(
        "  tokens = chunks the model yields (text + tool-argument chunks), checked on every run;"
        f" time = whole run ({clock} clock) / tokens"
    )
    console.print(
        "  hop=no: the fake never suspends (best case: a consumer in another task is woken once"
        " per batch); hop=yes: `await asyncio.sleep(0)` before every chunk, one loop iteration"
        " per token as with a network - the realistic case"
    )
    console.print(
        f"  target (DESIGN.md): agentcast adds <= {TARGET:.2f} x what astream_events(v2) adds"
        " over model.astream"
    )
    for table in tables:
        ratio = f"{table.ratio:.4f}" if table.ratio is not None else "n/a"
        rich_table = RichTable(
            title=(
                f"Workload {table.workload}: {table.title} ({table.tokens} tokens), "
                f"hop={'yes' if table.hop else 'no'}"
            ),
            caption=(
                f"agentcast added / astream_events added = {ratio} "
                f"(target <= {TARGET:.2f}): {_verdict(table.passed)}"
            ),
            title_justify="left",
            caption_justify="left",
        )
        rich_table.add_column("contestant")
        rich_table.add_column("µs/token (median)", justify="right")
        rich_table.add_column("min", justify="right")
        rich_table.add_column("added µs/token over astream", justify="right")
        rich_table.add_column("added ÷ astream_events' added", justify="right")
        for row in table.rows:
            rich_table.add_row(
                row.contestant,
                f"{row.us_per_token:.2f}",
                f"{row.min_us_per_token:.2f}",
                "-"
                if row.contestant == RAW or row.added_us != row.added_us
                else f"{row.added_us:+.2f}",
                "-" if row.added_ratio is None else f"{row.added_ratio:.3f}",
            )
        console.print()
        console.print(rich_table)
    console.print()
    ratios = ", ".join(
        f"{t.workload}/hop={'yes' if t.hop else 'no'}: "
        + ("n/a" if t.ratio is None else f"{t.ratio:.3f}")
        for t in tables
    )
    console.print(f"Overall: {_verdict(overall_verdict(tables))} ({ratios})")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=2000, help="workload A answer chunks")
    parser.add_argument("--final-tokens", type=int, default=500, help="workload B answer chunks")
    parser.add_argument("--tool-calls", type=int, default=3, help="workload B parallel tool calls")
    parser.add_argument("--arg-chunks", type=int, default=20, help="argument chunks per tool call")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per contestant")
    parser.add_argument(
        "--hop",
        choices=("both", "on", "off"),
        default="both",
        help="await asyncio.sleep(0) before every chunk: both modes (default), only on, only off",
    )
    parser.add_argument("--layout", choices=("interleaved", "sequential"), default="interleaved")
    parser.add_argument("--workload", choices=("all", "A", "B"), default="all")
    parser.add_argument(
        "--rebuild-chunks",
        action="store_true",
        help="build fresh chunk objects on every model call (adds their construction to all)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=tuple(SHORT),
        default=[],
        help="run only these contestants (repeatable), e.g. to profile one of them",
    )
    parser.add_argument(
        "--clock",
        choices=tuple(CLOCKS),
        default="wall",
        help="wall: perf_counter_ns (default); cpu: process_time_ns, steadier on a busy machine",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)
    for name in ("tokens", "final_tokens", "tool_calls", "arg_chunks", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} is too small")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = environment()
    tables = run_bench(
        tokens=args.tokens,
        final_tokens=args.final_tokens,
        tool_calls=args.tool_calls,
        arg_chunks=args.arg_chunks,
        repeat=args.repeat,
        hop=args.hop,
        layout=args.layout,
        rebuild=args.rebuild_chunks,
        workload=args.workload,
        only=tuple(args.only),
        clock=args.clock,
    )
    print_report(tables, env, args)
    if args.json:
        payload = {
            "environment": env,
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "target": TARGET,
            "tables": [asdict(t) for t in tables],
            "passed": overall_verdict(tables),
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 1 if args.strict and overall_verdict(tables) is False else 0


if __name__ == "__main__":
    sys.exit(main())
