"""`agentcast run` (one prompt) and `agentcast chat` (interactive, local or `--url`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from typing import Any

from agentcast.cli._common import (
    answer_locally,
    banner,
    build_agent,
    check_store,
    converse,
    loop_runner,
    make_console,
    print_json,
)

__all__ = ["chat", "run"]


def run(args: argparse.Namespace) -> int:
    """`agentcast run PROMPT`: answer one prompt; return the exit status."""
    from agentcast.agents import check_prompt
    from agentcast.runtime import new_id

    prompt = check_prompt(args.prompt)
    agent = build_agent(args)
    session_id = args.session or new_id("session")
    reasoning = not args.no_reasoning

    async def answer() -> int:
        await check_store(agent, session_id)
        if args.json:
            return await _run_json(agent, prompt, session_id)
        # The answer goes to stdout; tool lines, reasoning, errors and the footer to stderr.
        outcome = await answer_locally(
            agent, prompt, session_id, make_console(), reasoning, make_console(stderr=True)
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
    outcome = await print_json(agent.astream(prompt, session_id=session_id))
    return 0 if outcome in ("success", None) else 1


def chat(args: argparse.Namespace) -> int:
    """`agentcast chat`: converse until the user leaves; return the exit status."""
    from agentcast.runtime import new_id

    if args.url is not None:
        from agentcast.cli.remote import remote_chat

        return remote_chat(args)
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401 - line editing and history for input()

    agent = build_agent(args)
    console = make_console()
    session_id = args.session or new_id("session")
    reasoning = not args.no_reasoning
    with loop_runner() as runner:
        try:
            runner.run(check_store(agent, session_id))
            console.print(banner(agent.label, session_id))
            console.print(
                "[dim]Type a message. exit, quit or bye leaves; Ctrl-C stops an answer, "
                "Ctrl-C at the prompt leaves.[/dim]",
            )
            converse(
                console,
                runner,
                lambda prompt: answer_locally(agent, prompt, session_id, console, reasoning),
            )
        finally:
            if getattr(agent, "store", None) is not None:
                runner.run(agent.store.aclose())
    return 0
