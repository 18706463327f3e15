"""What agentcast adds per token when it streams a LangGraph graph or a LangChain runnable.

    python bench/bench_sources.py [--suite all|graph|runnable] [--repeat 5] [--hop both|on|off]

The same fake model (`_fake.py`) and workloads as `bench_tokens.py` (A: a plain answer of
`--tokens` chunks; B: `--tool-calls` parallel tool calls of `--arg-chunks` argument chunks each,
then an answer of `--final-tokens` chunks), run through agentcast's two wrapping sources. Each
contestant is measured against the stream the source itself consumes (its "native" stream):

LangGraph suite - the `StateGraph(MessagesState)` of `bench_tokens.py` (agent node calling
`.ainvoke`, + `ToolNode`/`tools_condition` for B), compiled with an `InMemorySaver`, a fresh
`thread_id` per run (the threads are deleted between runs, outside the timings):

1. `graph.astream(messages)`    - the native stream: `stream_mode="messages"`.
2. `graph.astream_events(v2)`   - the same graph through `astream_events(version="v2")`.
3. agentcast `wrap(graph)`      - `agentcast.wrap(graph).astream(prompt, session_id=...)`, to
                                  `agent_end` (LangGraphSource: `astream(stream_mode=["messages",
                                  "updates", "custom"], subgraphs=True)` + its callback tracker).

Runnable suite - A: the LCEL chain `ChatPromptTemplate | model`; B: a classic `AgentExecutor`
(langchain-classic `create_tool_calling_agent`) over the same model and tool:

1. `chain.astream_events(v2)`   - the native stream (RunnableSource is built on it).
2. agentcast `wrap(chain)`      - `agentcast.wrap(chain).astream(...)`, to `agent_end`.

DESIGN.md budget: the LangGraph source adds at most 1/4 of what `astream_events(v2)` adds on the
same graph, i.e. (agentcast - messages) / (astream_events - messages) <= 0.25, per token, in the
same run. The runnable figure (agentcast - astream_events) is agentcast's pure mapping cost; it
has no budget of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from langchain_core.messages import AIMessageChunk, BaseMessage, HumanMessage  # noqa: E402
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder  # noqa: E402
from langchain_core.runnables import Runnable  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from langgraph.graph import END, START, MessagesState, StateGraph  # noqa: E402
from langgraph.prebuilt import ToolNode, tools_condition  # noqa: E402

import bench_tokens as bt  # noqa: E402
from _fake import FakeStreamModel, lookup  # noqa: E402
from agentcast import AgentEnd, LLMToken, Runner, ToolCallDelta, ToolEnd, wrap  # noqa: E402

PROMPT = bt.PROMPT
GRAPH_TARGET = 0.25  # agentcast's added cost / astream_events' added cost, over the graph's stream

GRAPH_NATIVE = "graph.astream(messages)"
GRAPH_EVENTS = "graph.astream_events(v2)"
GRAPH_AGENTCAST = "agentcast wrap(graph)"
CHAIN_EVENTS = "chain.astream_events(v2)"
CHAIN_AGENTCAST = "agentcast wrap(chain)"

SUITES: dict[str, tuple[str, ...]] = {
    "graph": (GRAPH_NATIVE, GRAPH_EVENTS, GRAPH_AGENTCAST),
    "runnable": (CHAIN_EVENTS, CHAIN_AGENTCAST),
}
NATIVE = {"graph": GRAPH_NATIVE, "runnable": CHAIN_EVENTS}
AGENTCAST = {"graph": GRAPH_AGENTCAST, "runnable": CHAIN_AGENTCAST}
SHORT = {
    "graph-messages": GRAPH_NATIVE,
    "graph-events": GRAPH_EVENTS,
    "graph-agentcast": GRAPH_AGENTCAST,
    "chain-events": CHAIN_EVENTS,
    "chain-agentcast": CHAIN_AGENTCAST,
}
CONTESTANTS = tuple(c for names in SUITES.values() for c in names)


# -- the setups -----------------------------------------------------------------------------


@dataclass
class Setup:
    """Everything a contestant needs, built once per (workload, hop) outside the timings."""

    model: FakeStreamModel
    graph: Any
    saver: InMemorySaver
    graph_runner: Runner
    chain: Runnable[Any, Any]
    chain_runner: Runner
    threads: list[str] = field(default_factory=list)
    counter: int = 0

    def thread(self, prefix: str) -> str:
        """A fresh thread / session id, remembered so `reset` can delete its checkpoints."""
        self.counter += 1
        thread_id = f"{prefix}-{self.counter}"
        self.threads.append(thread_id)
        return thread_id

    def reset(self) -> None:
        """Drop the checkpoints of finished runs (between runs, never inside a timing)."""
        for thread_id in self.threads:
            self.saver.delete_thread(thread_id)
        self.threads.clear()


def make_graph(model: FakeStreamModel, tools: list[Any], saver: InMemorySaver) -> Any:
    """The graph of `bench_tokens.py`, compiled with `saver`."""
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
    return builder.compile(checkpointer=saver)


def make_chain(model: FakeStreamModel, tools: list[Any]) -> Runnable[Any, Any]:
    """A: `prompt | model`; B: a classic tool-calling `AgentExecutor` (langchain-classic)."""
    if not tools:
        return ChatPromptTemplate.from_messages([("human", "{input}")]) | model
    from langchain_classic.agents import AgentExecutor, create_tool_calling_agent

    prompt = ChatPromptTemplate.from_messages(
        [("human", "{input}"), MessagesPlaceholder("agent_scratchpad")]
    )
    agent = create_tool_calling_agent(model, tools, prompt)
    return AgentExecutor(agent=agent, tools=tools)


def make_setup(workload: bt.Workload, *, hop: bool, layout: str, rebuild: bool) -> Setup:
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
    saver = InMemorySaver()
    graph = make_graph(model, tools, saver)
    chain = make_chain(model, tools)
    return Setup(
        model=model,
        graph=graph,
        saver=saver,
        graph_runner=wrap(graph),
        chain=chain,
        chain_runner=wrap(chain),
    )


# -- the contestants ------------------------------------------------------------------------
# Each returns how many token chunks (non-empty text, or a non-empty tool-argument fragment) it saw.


async def run_graph_messages(setup: Setup) -> int:
    """The graph's own typed stream, `stream_mode="messages"`."""
    config = {"configurable": {"thread_id": setup.thread("messages")}}
    seen = 0
    async for message, _meta in setup.graph.astream(
        {"messages": [HumanMessage(PROMPT)]}, config, stream_mode="messages"
    ):
        if message.__class__ is AIMessageChunk and bt._is_token(message):
            seen += 1
    return seen


async def _count_events(events: Any) -> int:
    seen = 0
    async for event in events:
        if event["event"] == "on_chat_model_stream" and bt._is_token(event["data"]["chunk"]):
            seen += 1
    return seen


async def run_graph_events(setup: Setup) -> int:
    """The same graph through `astream_events(version="v2")`."""
    config = {"configurable": {"thread_id": setup.thread("events")}}
    return await _count_events(
        setup.graph.astream_events({"messages": [HumanMessage(PROMPT)]}, config, version="v2")
    )


async def _count_agentcast(runner: Runner, session_id: str) -> int:
    seen = 0
    last: Any = None
    failed_tools = 0
    async for event in runner.astream(PROMPT, session_id=session_id):
        cls = event.__class__
        if cls is LLMToken or cls is ToolCallDelta:
            seen += 1
        elif cls is ToolEnd and event.status != "ok":
            failed_tools += 1
        last = event
    if last.__class__ is not AgentEnd or last.outcome != "success" or failed_tools:
        raise bt.BenchError(f"the agentcast run did not succeed: {last!r}")
    return seen


async def run_graph_agentcast(setup: Setup) -> int:
    """`agentcast.wrap(graph).astream(...)` (LangGraphSource), consumed to `agent_end`."""
    return await _count_agentcast(setup.graph_runner, setup.thread("agentcast"))


async def run_chain_events(setup: Setup) -> int:
    """The chain's `astream_events(version="v2")`: what RunnableSource consumes."""
    return await _count_events(setup.chain.astream_events({"input": PROMPT}, version="v2"))


async def run_chain_agentcast(setup: Setup) -> int:
    """`agentcast.wrap(chain).astream(...)` (RunnableSource), consumed to `agent_end`."""
    setup.counter += 1
    return await _count_agentcast(setup.chain_runner, f"chain-{setup.counter}")


RUNNERS: dict[str, Callable[[Setup], Awaitable[int]]] = {
    GRAPH_NATIVE: run_graph_messages,
    GRAPH_EVENTS: run_graph_events,
    GRAPH_AGENTCAST: run_graph_agentcast,
    CHAIN_EVENTS: run_chain_events,
    CHAIN_AGENTCAST: run_chain_agentcast,
}


# -- measuring ------------------------------------------------------------------------------


@dataclass
class Row:
    """One contestant's figures in one table (µs per token)."""

    contestant: str
    us_per_token: float
    min_us_per_token: float
    added_us: float | None  # over the suite's native stream (None: the native one is missing)
    added_ratio: float | None  # graph: added / astream_events' added; runnable: added / native
    samples: list[float]


@dataclass
class Table:
    """One suite, one workload, one hop mode."""

    suite: str
    workload: str
    title: str
    hop: bool
    tokens: int
    native: str
    rows: list[Row]
    agentcast_added_us: float | None  # agentcast's added µs/token over the native stream
    ratio: float | None  # graph: agentcast added / astream_events added; runnable: None
    passed: bool | None  # None: no target, or not the contestants the target needs

    def row(self, contestant: str) -> Row:
        return next(r for r in self.rows if r.contestant == contestant)


async def _timed(
    runner: Callable[[Setup], Awaitable[int]],
    setup: Setup,
    tokens: int,
    clock: str = "wall",
    collect: bool = True,
) -> float:
    now = bt.CLOCKS[clock]
    setup.reset()
    if collect:  # start each run from the same collector state (gc stays enabled while timing)
        gc.collect()
    started = now()
    seen = await runner(setup)
    elapsed = now() - started
    if seen != tokens:
        raise bt.BenchError(f"{runner.__name__} saw {seen} token chunks, expected {tokens}")
    return elapsed / 1000 / tokens


async def measure(
    suite: str,
    setup: Setup,
    workload: bt.Workload,
    *,
    hop: bool,
    repeat: int,
    contestants: tuple[str, ...],
    clock: str = "wall",
    collect: bool = True,
) -> Table:
    tokens = workload.tokens
    for name in contestants:  # warm-up: imports, caches, first-call paths
        await _timed(RUNNERS[name], setup, tokens, clock, collect)
    samples: dict[str, list[float]] = {name: [] for name in contestants}
    for r in range(repeat):
        # Rotate the order so no contestant always runs right after the same neighbour.
        shift = r % len(contestants)
        for name in contestants[shift:] + contestants[:shift]:
            samples[name].append(await _timed(RUNNERS[name], setup, tokens, clock, collect))
    setup.reset()
    medians = {name: statistics.median(values) for name, values in samples.items()}
    native = NATIVE[suite]
    base = medians.get(native)
    events_added = (
        medians[GRAPH_EVENTS] - base
        if suite == "graph" and base is not None and GRAPH_EVENTS in medians
        else None
    )
    rows = []
    for name in contestants:
        added = None if base is None or name == native else medians[name] - base
        if added is None:
            ratio = None
        elif suite == "graph":
            ratio = added / events_added if events_added else None
        else:
            ratio = added / base if base else None
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
    mine = next((r for r in rows if r.contestant == AGENTCAST[suite]), None)
    ratio = mine.added_ratio if mine is not None and suite == "graph" else None
    return Table(
        suite=suite,
        workload=workload.key,
        title=workload.title,
        hop=hop,
        tokens=tokens,
        native=native,
        rows=rows,
        agentcast_added_us=None if mine is None else mine.added_us,
        ratio=ratio,
        passed=None if ratio is None else ratio <= GRAPH_TARGET,
    )


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
    suite: str = "all",
    only: tuple[str, ...] = (),
    clock: str = "wall",
    collect: bool = True,
) -> list[Table]:
    """Run the suites on every workload in the requested hop modes; one table for each.

    `collect=False` skips the `gc.collect()` before each timed run: faster, noisier; for smoke
    tests.
    """
    hops = {"both": (False, True), "on": (True,), "off": (False,)}[hop]
    chosen = bt.workloads(
        tokens=tokens,
        final_tokens=final_tokens,
        tool_calls=tool_calls,
        arg_chunks=arg_chunks,
        which=workload,
    )
    wanted = {SHORT[o] for o in only}
    suites = {
        name: tuple(c for c in names if not wanted or c in wanted)
        for name, names in SUITES.items()
        if suite in ("all", name)
    }
    suites = {name: names for name, names in suites.items() if names}

    async def main() -> list[Table]:
        tables = []
        for h in hops:
            for w in chosen:
                setup = make_setup(w, hop=h, layout=layout, rebuild=rebuild)
                for name, contestants in suites.items():
                    tables.append(
                        await measure(
                            name,
                            setup,
                            w,
                            hop=h,
                            repeat=repeat,
                            contestants=contestants,
                            clock=clock,
                            collect=collect,
                        )
                    )
        return tables

    return asyncio.run(main())


# -- reporting ------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    """What the figures depend on, for the header and the JSON."""
    from importlib.metadata import PackageNotFoundError, version

    env = bt.environment()
    try:
        env["langchain_classic"] = version("langchain-classic")
    except PackageNotFoundError:
        env["langchain_classic"] = None
    return env


def overall_verdict(tables: list[Table]) -> bool | None:
    """PASS only when every judged (graph) table passes; n/a when none could be judged."""
    judged = [t.passed for t in tables if t.passed is not None]
    return all(judged) if judged else None


def _suite_title(table: Table) -> str:
    kind = "LangGraph source" if table.suite == "graph" else "Runnable source"
    what = (
        "StateGraph + InMemorySaver"
        if table.suite == "graph"
        else ("prompt | model" if table.workload == "A" else "AgentExecutor")
    )
    return (
        f"{kind} ({what}), workload {table.workload}: {table.title} ({table.tokens} tokens), "
        f"hop={'yes' if table.hop else 'no'}"
    )


def _caption(table: Table) -> str:
    added = table.agentcast_added_us
    added_text = "n/a" if added is None else f"{added:+.2f} µs/token"
    if table.suite == "graph":
        ratio = "n/a" if table.ratio is None else f"{table.ratio:.4f}"
        return (
            f"agentcast added over messages = {added_text}; agentcast added / astream_events "
            f"added = {ratio} (target <= {GRAPH_TARGET:.2f}): {bt._verdict(table.passed)}"
        )
    return f"agentcast added over astream_events (pure mapping cost) = {added_text}; no target"


def print_report(tables: list[Table], env: dict[str, Any], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable

    console = Console(highlight=False, width=max(Console().width, 112))
    clock = "perf_counter_ns, wall" if args.clock == "wall" else "process_time_ns, CPU"
    console.print(
        "[bold]agentcast source benchmark[/bold] - µs per token, median of "
        f"{args.repeat} repeats after 1 warm-up, all contestants of a suite in one process, "
        "interleaved"
    )
    console.print(
        f"  Python {env['python']} ({env['implementation']}) on {env['platform']}, "
        f"{env['cpus']} CPUs; langchain-core {env['langchain_core']}, "
        f"langchain-classic {env['langchain_classic']}, langgraph {env['langgraph']}, "
        f"agentcast {env['agentcast']}; default asyncio loop"
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
        "  hop=no: the fake never suspends; hop=yes: `await asyncio.sleep(0)` before every chunk,"
        " one loop iteration per token as with a network - the realistic case"
    )
    console.print(
        "  graph: compiled with InMemorySaver, a fresh thread per run; agentcast = "
        "wrap(graph).astream(), consumed to agent_end"
    )
    console.print(
        "  added = µs/token over the source's native stream (graph: astream(stream_mode="
        "'messages'); chain: astream_events(v2))"
    )
    console.print(
        f"  target (DESIGN.md): the LangGraph source adds <= {GRAPH_TARGET:.2f} x what "
        "astream_events(v2) adds on the same graph (both over the graph's messages stream)"
    )
    for table in tables:
        rich_table = RichTable(
            title=_suite_title(table),
            caption=_caption(table),
            title_justify="left",
            caption_justify="left",
        )
        native = "messages" if table.suite == "graph" else "astream_events"
        native += " (native)"
        last = "added ÷ astream_events' added" if table.suite == "graph" else "added ÷ native"
        rich_table.add_column("contestant")
        rich_table.add_column("µs/token (median)", justify="right")
        rich_table.add_column("min", justify="right")
        rich_table.add_column(f"added µs/token over {native}", justify="right")
        rich_table.add_column(last, justify="right")
        for row in table.rows:
            rich_table.add_row(
                row.contestant,
                f"{row.us_per_token:.2f}",
                f"{row.min_us_per_token:.2f}",
                "-" if row.added_us is None else f"{row.added_us:+.2f}",
                "-" if row.added_ratio is None else f"{row.added_ratio:.3f}",
            )
        console.print()
        console.print(rich_table)
    console.print()
    graph = [t for t in tables if t.suite == "graph"]
    ratios = ", ".join(
        f"{t.workload}/hop={'yes' if t.hop else 'no'}: "
        + ("n/a" if t.ratio is None else f"{t.ratio:.3f}")
        for t in graph
    )
    console.print(
        f"Overall (LangGraph source, target <= {GRAPH_TARGET:.2f}): "
        f"{bt._verdict(overall_verdict(tables))}" + (f" ({ratios})" if graph else "")
    )
    chains = [t for t in tables if t.suite == "runnable" and t.agentcast_added_us is not None]
    if chains:
        added = ", ".join(
            f"{t.workload}/hop={'yes' if t.hop else 'no'}: {t.agentcast_added_us:+.2f}"
            for t in chains
        )
        console.print(f"Runnable source, agentcast added µs/token over astream_events: {added}")


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
        "--suite",
        choices=("all", *SUITES),
        default="all",
        help="graph: the LangGraph source; runnable: the Runnable source; all (default)",
    )
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
        choices=tuple(bt.CLOCKS),
        default="wall",
        help="wall: perf_counter_ns (default); cpu: process_time_ns, steadier on a busy machine",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when the LangGraph target is missed"
    )
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
        suite=args.suite,
        only=tuple(args.only),
        clock=args.clock,
    )
    print_report(tables, env, args)
    if args.json:
        payload = {
            "environment": env,
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "graph_target": GRAPH_TARGET,
            "tables": [asdict(t) for t in tables],
            "passed": overall_verdict(tables),
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 1 if args.strict and overall_verdict(tables) is False else 0


if __name__ == "__main__":
    sys.exit(main())
