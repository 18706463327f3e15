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
import os

from agentcast._version import __version__
from agentcast.cli._common import complain
from agentcast.errors import AgentcastError, SessionError, UserError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["chat", *(argv or [])])
    try:
        if args.command == "run":
            from agentcast.cli.chat import run

            return run(args)
        if args.command == "serve":
            from agentcast.cli.serve import serve

            return serve(args)
        if args.command == "tail":
            from agentcast.cli.tail import tail

            return tail(args)
        from agentcast.cli.chat import chat

        return chat(args)
    except KeyboardInterrupt:
        return 130
    except (UserError, SessionError) as exc:
        # A session error reaching here comes from the start-up check of the store the user
        # named (`_check_store`): the fix is on their side, like a bad URL.
        complain(exc.message)
        return 2
    except AgentcastError as exc:
        complain(exc.message)
        return 1


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
    serve.add_argument(
        "--broker",
        metavar="URL",
        help="share runs between server processes through Redis (redis://host:6379/0;"
        " also AGENTCAST_BROKER): any worker then streams, resumes and cancels any run",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes on the one port (more than 1 needs --broker)",
    )
    serve.add_argument(
        "--lease",
        type=float,
        default=10.0,
        help="seconds after which a silent worker's runs are ended by another (with --broker)",
    )
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
