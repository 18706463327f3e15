"""What the commands share: the agent they build, the console, the answer loop, JSON lines."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from agentcast._version import __version__
from agentcast.errors import AgentcastError, SessionError, StoreUnavailable

__all__ = [
    "animate",
    "answer_locally",
    "banner",
    "build_agent",
    "check_store",
    "complain",
    "converse",
    "loop_runner",
    "make_console",
    "print_json",
    "prompt_text",
]

_LEAVE = {"exit", "quit", "bye", ":q"}


def complain(message: str) -> None:
    """Print `message` as one line on stderr (drivers' messages span several)."""
    print(f"agentcast: {' '.join(message.split())}", file=sys.stderr)


def build_agent(args: argparse.Namespace) -> Any:
    """Return the local agent the arguments name (`--agent`, else `--model` with the demo tools)."""
    from agentcast.agents import Agent, load_agent
    from agentcast.models import resolve
    from agentcast.models.demo_tools import demo_tools
    from agentcast.sessions import open_store

    if args.agent:
        return load_agent(args.agent, store=open_store(args.store), timeout=args.timeout)
    options = {"base_url": args.base_url} if args.base_url else {}
    model = resolve(args.model, **options)
    return Agent(
        model,
        demo_tools(),
        system_prompt=args.system,
        store=open_store(args.store),
        timeout=args.timeout,
    )


async def check_store(agent: Any, session_id: str) -> None:
    """Read the session once before anything is shown.

    So a store that cannot be used is one error line (exit 2), not a failed run.

    Raises:
        StoreUnavailable: the store cannot be reached or opened (also for a driver's raw
            `OSError`, such as a refused connection).
    """
    store = getattr(agent, "store", None)
    if store is None:
        return
    try:
        await store.load(session_id)
    except SessionError:
        raise
    except OSError as exc:
        raise StoreUnavailable(f"cannot reach the session store: {exc}") from exc


def make_console(*, stderr: bool = False) -> Any:
    """Return a rich console on stdout (or stderr)."""
    from rich.console import Console

    return Console(highlight=False, stderr=stderr)


_SPINNER_INTERVAL = 0.1  # seconds between redraws that animate spinners (not a poll)


async def answer_locally(  # noqa: D417 - the arguments are the chat's state
    agent: Any,
    prompt: str,
    session_id: str,
    console: Any,
    reasoning: bool,
    progress: Any = None,
) -> str:
    """Answer one prompt with a local run, rendered live; return the run's outcome."""
    from agentcast.console import ChatRenderer

    renderer = ChatRenderer(console, show_reasoning=reasoning, progress=progress)
    run = agent.start(prompt, session_id=session_id)
    seen = -1
    ticker = asyncio.create_task(animate(renderer)) if renderer.live else None
    try:
        async with contextlib.aclosing(run.iterate()) as events:
            async for event in events:
                renderer.feed(event)
                seen = event.seq
    finally:
        if ticker is not None:
            ticker.cancel()
        # A stopped run still logged its closers and agent_end: show them (footer, cancelled).
        if run.done:
            for event in run.log.snapshot():
                if event.seq > seen:
                    renderer.feed(event)
        renderer.close()
    return str(run.result.outcome) if run.result is not None else "cancelled"


async def animate(renderer: Any) -> None:
    """Redraw `renderer` every `_SPINNER_INTERVAL` seconds, so its spinners move."""
    while True:
        await asyncio.sleep(_SPINNER_INTERVAL)
        renderer.tick()


def prompt_text(console: Any) -> str:
    """Return the input prompt, in colour on a colour terminal."""
    if console.is_terminal and console.color_system is not None and not console.no_color:
        # \001/\002 tell readline the escape codes take no room on the line.
        return "\001\x1b[1;36m\002you ›\001\x1b[0m\002 "
    return "you › "


def banner(label: str, session_id: str) -> Any:
    """The chat's first line; on a narrow terminal it wraps between its items."""
    from rich.text import Text

    from agentcast.console import SeparatedLine

    name = Text.assemble(("agentcast", "bold"), f" {__version__}")
    return SeparatedLine([name, label, f"session {session_id}"], indent=2)


def converse(console: Any, runner: Any, answer: Callable[[str], Coroutine[Any, Any, Any]]) -> None:
    """Read prompts until the user leaves; answer each with `answer(prompt)` on `runner`."""
    shown = prompt_text(console)
    echo = not sys.stdin.isatty()
    while True:
        try:
            # input() prints the prompt itself, so a Ctrl-C typed at it is never lost.
            prompt = input(shown)
        except (EOFError, KeyboardInterrupt):
            console.print()
            break
        if echo:  # a piped line is not echoed by a terminal: show what was asked
            console.print(prompt, markup=False, highlight=False, soft_wrap=True)
        if prompt.strip().lower() in _LEAVE:
            break
        if not prompt.strip():
            continue
        try:
            runner.run(answer(prompt))
        except KeyboardInterrupt:
            console.print("[yellow]stopped; the partial answer is kept in the session[/yellow]")
        except AgentcastError as exc:
            console.print(f"[red]error: {exc.message}[/red]")


class _LegacyRunner:
    """`asyncio.Runner` for Python 3.10: one loop across calls; Ctrl-C cancels the running call."""

    def __enter__(self) -> _LegacyRunner:
        self._loop = asyncio.new_event_loop()
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.close()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        task = self._loop.create_task(coro)
        try:
            return self._loop.run_until_complete(task)
        except KeyboardInterrupt:
            task.cancel()
            with contextlib.suppress(BaseException):
                self._loop.run_until_complete(task)
            raise


def loop_runner() -> Any:
    """Return an `asyncio.Runner` (or its 3.10 stand-in): one event loop for a whole chat."""
    runner = getattr(asyncio, "Runner", None)
    return runner() if runner is not None else _LegacyRunner()


async def print_json(events: Any) -> str | None:
    """Write each event of `events` to stdout as one JSON line; return the run's outcome.

    None: the stream had no `agent_end` (`tail --after` the run's last event).
    """
    from agentcast.events import to_json

    outcome = None
    out = sys.stdout.buffer
    async with contextlib.aclosing(events):
        async for event in events:
            out.write(to_json(event) + b"\n")
            out.flush()
            if event.type == "agent_end":
                outcome = event.outcome
    return outcome
