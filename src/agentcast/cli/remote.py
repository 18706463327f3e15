"""`agentcast chat --url URL`: chat with a remote agentcast server through `agentcast.client`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import Any

from agentcast.cli._common import animate, banner, converse, loop_runner, make_console
from agentcast.errors import AgentcastError, UserError

__all__ = ["remote_chat", "render_remote"]

_LOCAL_ONLY = ("agent", "store", "base_url", "system", "timeout")


_STOP_GRACE = 10.0  # seconds to wait for a cancelled remote run's closers and agent_end


def remote_chat(args: argparse.Namespace) -> int:
    """Converse with the server at `--url` until the user leaves; return the exit status."""
    from agentcast.client import AsyncClient
    from agentcast.runtime import new_id

    given = [f"--{name.replace('_', '-')}" for name in _LOCAL_ONLY if getattr(args, name)]
    if given:
        raise UserError(f"{', '.join(given)} configure a local agent and do not apply with --url")
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401 - line editing and history for input()

    client = AsyncClient(args.url, api_key=args.api_key)
    console = make_console()
    session_id = args.session or new_id("session")
    reasoning = not args.no_reasoning
    with loop_runner() as runner:
        try:
            health = runner.run(client.health())
            label = f"{health.get('agent', 'agent')} at {client.base_url}"
            console.print(banner(label, session_id))
            console.print(
                "[dim]Type a message. exit, quit or bye leaves; Ctrl-C stops an answer (on the"
                " server too), Ctrl-C at the prompt leaves.[/dim]",
            )
            converse(
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
        return await render_remote(events, renderer)
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
        await render_remote(client.join(run_id, after=after), renderer)


async def render_remote(events: Any, renderer: Any) -> str | None:
    """Feed a remote run's events to `renderer` until `agent_end`; return the run's outcome.

    None: the stream had no `agent_end` (`tail --after` the run's last event).
    """
    outcome = None
    ticker = asyncio.create_task(animate(renderer)) if renderer.live else None
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
