"""The `agentcast` command: `chat` (interactive), `run` (one prompt), `serve`, and `tail`.

`chat --url URL` chats with a remote agentcast server and `tail RUN_ID --url URL` renders a
remote run, both through `agentcast.client` and with the same renderer as a local chat.

A user mistake (an unknown model, a missing package or key, an empty prompt, a session store
that cannot be reached or opened, a port in use) ends with one readable line on stderr and exit
status 2; a run that fails ends with status 1; a stopped run with 130. No traceback is shown for
any of these. The answer goes to stdout; progress, tool lines and the footer of `run` go to
stderr, so `agentcast run "..." > answer.txt` keeps only the answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from agentcast._version import __version__
from agentcast.errors import AgentcastError, SessionError, StoreUnavailable, UserError

__all__ = ["main"]

_LEAVE = {"exit", "quit", "bye", ":q"}


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["chat", *(argv or [])])
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "serve":
            return _serve(args)
        if args.command == "tail":
            return _tail(args)
        return _chat(args)
    except KeyboardInterrupt:
        return 130
    except (UserError, SessionError) as exc:
        # A session error reaching here comes from the start-up check of the store the user
        # named (`_check_store`): the fix is on their side, like a bad URL.
        _complain(exc.message)
        return 2
    except AgentcastError as exc:
        _complain(exc.message)
        return 1


def _complain(message: str) -> None:
    """Print `message` as one line on stderr (drivers' messages span several)."""
    print(f"agentcast: {' '.join(message.split())}", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentcast",
        description="Stream LLM agent runs: tokens, tool calls, nested LLM calls, answers.",
    )
    parser.add_argument("--version", action="version", version=f"agentcast {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def remote_key(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--api-key",
            default=os.environ.get("AGENTCAST_API_KEY"),
            help="the remote server's API key (default: AGENTCAST_API_KEY)",
        )

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--model",
            default=os.environ.get("AGENTCAST_MODEL", "offline"),
            help="offline (default; also offline:reasoning, offline:blocks) or provider:model, "
            "e.g. openai:gpt-4o-mini, anthropic:claude-sonnet-4-5, bedrock:<id>, ollama:llama3.1",
        )
        sub.add_argument("--base-url", help="base URL of an OpenAI-compatible server (openai:)")
        sub.add_argument(
            "--agent",
            help="your own agent instead of the demo agent: module:attribute or"
            " path/to/file.py:attribute (an agentcast Agent, a LangGraph graph, a LangChain"
            " runnable or chat model, or a function returning one)",
        )
        sub.add_argument("--session", help="session id to continue (default: a new session)")
        sub.add_argument(
            "--store",
            help="session store URL: sqlite:///path.db (default: sessions.db in AGENTCAST_HOME)"
            " or memory://",
        )
        sub.add_argument("--system", help="system prompt")
        sub.add_argument("--timeout", type=float, help="seconds before a run is stopped")
        sub.add_argument(
            "--no-reasoning", action="store_true", help="do not show the model's reasoning"
        )

    serve = commands.add_parser(
        "serve", help="serve the agent over HTTP (SSE, WebSocket, web chat)"
    )
    common(serve)
    serve.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)"
    )
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument(
        "--session-policy",
        choices=("reject", "enqueue", "interrupt"),
        default="reject",
        help="a request on a session with a run in progress: 409, wait, or stop the old run",
    )
    serve.add_argument(
        "--on-disconnect",
        choices=("grace", "continue", "cancel"),
        default="grace",
        help="when a run's last reader leaves (default: cancel after --grace seconds)",
    )
    serve.add_argument("--grace", type=float, default=30.0, help="grace period in seconds")
    serve.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="[NAME=]KEY",
        help="require 'Authorization: Bearer KEY' (repeatable; also AGENTCAST_API_KEYS=k1,k2);"
        " NAME owns the key's sessions (default: a name derived from the key)",
    )
    serve.add_argument("--cors-origin", action="append", default=[], help="allowed CORS origin")
    chat = commands.add_parser("chat", help="chat interactively in the terminal (default)")
    common(chat)
    chat.add_argument(
        "--url",
        help="chat with the agentcast server at this URL (e.g. http://127.0.0.1:8000) instead"
        " of a local agent; --model, --agent, --store, --system and --timeout do not apply",
    )
    remote_key(chat)
    run = commands.add_parser("run", help="answer one prompt and exit")
    run.add_argument("prompt", help="the prompt")
    run.add_argument("--json", action="store_true", help="print one JSON event per line")
    common(run)
    tail = commands.add_parser(
        "tail",
        help="follow a run on an agentcast server to its end, rendered as in chat",
        description="Follow a run on an agentcast server to its end, rendered as in chat."
        " Exit status: 0 when the run succeeded, 1 when it failed or was stopped.",
    )
    tail.add_argument("run_id", metavar="RUN_ID", help="the run (the X-Run-Id of /invoke)")
    tail.add_argument(
        "--url",
        default=os.environ.get("AGENTCAST_URL", "http://127.0.0.1:8000"),
        help="the server (default: AGENTCAST_URL or http://127.0.0.1:8000)",
    )
    remote_key(tail)
    tail.add_argument(
        "--after",
        type=int,
        default=-1,
        metavar="N",
        help="show only the events after seq N (default: from the start)",
    )
    tail.add_argument("--json", action="store_true", help="print one JSON event per line")
    tail.add_argument(
        "--no-reasoning", action="store_true", help="do not show the model's reasoning"
    )
    return parser


def _agent(args: argparse.Namespace) -> Any:
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


async def _check_store(agent: Any, session_id: str) -> None:
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


def _console(*, stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(highlight=False, stderr=stderr)


_SPINNER_INTERVAL = 0.1  # seconds between redraws that animate spinners (not a poll)


async def _answer(
    agent: Any,
    prompt: str,
    session_id: str,
    console: Any,
    reasoning: bool,
    progress: Any = None,
) -> str:
    from agentcast.console import ChatRenderer

    renderer = ChatRenderer(console, show_reasoning=reasoning, progress=progress)
    run = agent.start(prompt, session_id=session_id)
    seen = -1
    ticker = asyncio.create_task(_animate(renderer)) if renderer.live else None
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


async def _animate(renderer: Any) -> None:
    while True:
        await asyncio.sleep(_SPINNER_INTERVAL)
        renderer.tick()


def _run(args: argparse.Namespace) -> int:
    from agentcast.agents import check_prompt
    from agentcast.runtime import new_id

    prompt = check_prompt(args.prompt)
    agent = _agent(args)
    session_id = args.session or new_id("session")
    reasoning = not args.no_reasoning

    async def answer() -> int:
        await _check_store(agent, session_id)
        if args.json:
            return await _run_json(agent, prompt, session_id)
        # The answer goes to stdout; tool lines, reasoning, errors and the footer to stderr.
        outcome = await _answer(
            agent, prompt, session_id, _console(), reasoning, _console(stderr=True)
        )
        return {"success": 0, "cancelled": 130}.get(outcome, 1)

    try:
        return asyncio.run(answer())
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as Unix tools do on SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


async def _run_json(agent: Any, prompt: str, session_id: str) -> int:
    from agentcast.events import to_json

    outcome = "success"
    out = sys.stdout.buffer
    async with contextlib.aclosing(agent.astream(prompt, session_id=session_id)) as events:
        async for event in events:
            out.write(to_json(event) + b"\n")
            out.flush()
            if event.type == "agent_end":
                outcome = event.outcome
    return 0 if outcome == "success" else 1


def _prompt(console: Any) -> str:
    if console.is_terminal and console.color_system is not None and not console.no_color:
        # \001/\002 tell readline the escape codes take no room on the line.
        return "\001\x1b[1;36m\002you ›\001\x1b[0m\002 "
    return "you › "


def _chat(args: argparse.Namespace) -> int:
    from agentcast.runtime import new_id

    if args.url is not None:
        return _remote_chat(args)
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401 - line editing and history for input()

    agent = _agent(args)
    console = _console()
    session_id = args.session or new_id("session")
    reasoning = not args.no_reasoning
    with _runner() as runner:
        try:
            runner.run(_check_store(agent, session_id))
            console.print(_banner(agent.label, session_id))
            console.print(
                "[dim]Type a message. exit, quit or bye leaves; Ctrl-C stops an answer, "
                "Ctrl-C at the prompt leaves.[/dim]",
            )
            _converse(
                console,
                runner,
                lambda prompt: _answer(agent, prompt, session_id, console, reasoning),
            )
        finally:
            if getattr(agent, "store", None) is not None:
                runner.run(agent.store.aclose())
    return 0


def _banner(label: str, session_id: str) -> Any:
    """The chat's first line; on a narrow terminal it wraps between its items."""
    from rich.text import Text

    from agentcast.console import SeparatedLine

    name = Text.assemble(("agentcast", "bold"), f" {__version__}")
    return SeparatedLine([name, label, f"session {session_id}"], indent=2)


def _converse(console: Any, runner: Any, answer: Callable[[str], Coroutine[Any, Any, Any]]) -> None:
    """Read prompts until the user leaves; answer each with `answer(prompt)` on `runner`."""
    prompt_text = _prompt(console)
    echo = not sys.stdin.isatty()
    while True:
        try:
            # input() prints the prompt itself, so a Ctrl-C typed at it is never lost.
            prompt = input(prompt_text)
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


# -- remote: chat --url, tail ---------------------------------------------------------------

_LOCAL_ONLY = ("agent", "store", "base_url", "system", "timeout")
_STOP_GRACE = 10.0  # seconds to wait for a cancelled remote run's closers and agent_end


def _remote_chat(args: argparse.Namespace) -> int:
    from agentcast.client import AsyncClient
    from agentcast.runtime import new_id

    given = [f"--{name.replace('_', '-')}" for name in _LOCAL_ONLY if getattr(args, name)]
    if given:
        raise UserError(f"{', '.join(given)} configure a local agent and do not apply with --url")
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401 - line editing and history for input()

    client = AsyncClient(args.url, api_key=args.api_key)
    console = _console()
    session_id = args.session or new_id("session")
    reasoning = not args.no_reasoning
    with _runner() as runner:
        try:
            health = runner.run(client.health())
            label = f"{health.get('agent', 'agent')} at {client.base_url}"
            console.print(_banner(label, session_id))
            console.print(
                "[dim]Type a message. exit, quit or bye leaves; Ctrl-C stops an answer (on the"
                " server too), Ctrl-C at the prompt leaves.[/dim]",
            )
            _converse(
                console,
                runner,
                lambda prompt: _remote_answer(client, prompt, session_id, console, reasoning),
            )
        finally:
            runner.run(client.aclose())
    return 0


async def _remote_answer(
    client: Any, prompt: str, session_id: str, console: Any, reasoning: bool
) -> str | None:
    from agentcast.console import ChatRenderer

    renderer = ChatRenderer(console, show_reasoning=reasoning)
    events = client.stream(prompt, session_id=session_id)
    try:
        return await _render_remote(events, renderer)
    except asyncio.CancelledError:
        # Ctrl-C: stop the run on the server too (its partial answer is kept in the session),
        # then show its closers and agent_end. Shielded: this task is being cancelled.
        if events.run_id is not None:
            await asyncio.shield(_stop_remote(client, events.run_id, events.last_seq, renderer))
        raise
    finally:
        renderer.close()


async def _stop_remote(client: Any, run_id: str, after: int, renderer: Any) -> None:
    import anyio

    with anyio.move_on_after(_STOP_GRACE), contextlib.suppress(AgentcastError):
        await client.cancel(run_id)
        await _render_remote(client.join(run_id, after=after), renderer)


async def _render_remote(events: Any, renderer: Any) -> str | None:
    """Feed a remote run's events to `renderer` until `agent_end`; return the run's outcome.

    None: the stream had no `agent_end` (`tail --after` the run's last event).
    """
    outcome = None
    ticker = asyncio.create_task(_animate(renderer)) if renderer.live else None
    try:
        async with contextlib.aclosing(events):
            async for event in events:
                renderer.feed(event)
                if event.type == "agent_end":
                    outcome = event.outcome
    finally:
        if ticker is not None:
            ticker.cancel()
    return outcome


def _tail(args: argparse.Namespace) -> int:
    from agentcast.client import AsyncClient

    async def follow() -> str | None:
        async with AsyncClient(args.url, api_key=args.api_key) as client:
            events = client.join(args.run_id, after=args.after)
            if args.json:
                return await _tail_json(events)
            from agentcast.console import ChatRenderer

            renderer = ChatRenderer(_console(), show_reasoning=not args.no_reasoning)
            try:
                return await _render_remote(events, renderer)
            finally:
                renderer.close()

    try:
        outcome = asyncio.run(follow())
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    return 0 if outcome in ("success", None) else 1


async def _tail_json(events: Any) -> str | None:
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


def _runner() -> Any:
    runner = getattr(asyncio, "Runner", None)
    return runner() if runner is not None else _LegacyRunner()


def _serve(args: argparse.Namespace) -> int:
    from agentcast.errors import StoreUnavailable
    from agentcast.server import create_app, parse_api_keys, uvicorn_config

    raw_keys = [*args.api_key, *filter(None, os.environ.get("AGENTCAST_API_KEYS", "").split(","))]
    keys = parse_api_keys(raw_keys)  # before anything starts: a bad key list is exit 2
    listener = _listen(args.host, args.port)
    agent = _agent(args)
    app = create_app(
        agent,
        session_policy=args.session_policy,
        disconnect=args.on_disconnect,
        grace_period=args.grace,
        api_keys=keys,
        cors_origins=tuple(args.cors_origin),
    )
    server = app.state.agentcast
    try:  # here, not only in the lifespan: uvicorn would print a traceback and exit 3
        asyncio.run(server.health.check())
    except StoreUnavailable as exc:
        print(f"agentcast: {exc.message}", file=sys.stderr)
        return 2
    banner = (
        f"agentcast {__version__} serving {agent.label} on http://{args.host}:{args.port}"
        f" (web chat at /, API docs at /docs){' with API keys' if keys else ''}"
    )
    config = uvicorn_config(app, host=args.host, port=args.port, log_level="warning", lifespan="on")
    _GracefulServer(config, server, banner).run(listener)
    return 0


def _listen(host: str, port: int) -> Any:
    """Bind the server's socket up front, so a port in use is one line with the fix (exit 2).

    uvicorn would log `[Errno 98]` and exit 3; binding here and handing uvicorn the socket also
    leaves no gap in which another process could take the port.

    Raises:
        UserError: the address is in use or cannot be bound.
    """
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UserError(
                f"port {port} on {host} is already in use; pick another with --port"
            ) from None
        raise UserError(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from None


class _GracefulServer:
    """uvicorn, but a shutdown first ends every run (closers, `agent_end`).

    Each open stream then receives its terminal event and closes before uvicorn waits for
    connections to drain.
    """

    def __init__(self, config: Any, agentcast_server: Any, banner: str) -> None:
        import uvicorn

        outer = self

        class Server(uvicorn.Server):
            async def startup(self, sockets: Any = None) -> None:
                await super().startup(sockets)
                if self.started:  # printed once listening: scripts may wait for this line
                    print(banner, flush=True)

            def handle_exit(self, sig: int, frame: Any) -> None:
                outer.stop_runs()
                super().handle_exit(sig, frame)

        self._server = Server(config)
        self._agentcast = agentcast_server
        self._loop: asyncio.AbstractEventLoop | None = None

    def stop_runs(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(lambda: loop.create_task(self._agentcast.manager.aclose()))

    def run(self, listener: Any) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            await self._server.serve(sockets=[listener])

        asyncio.run(main())
