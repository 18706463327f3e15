"""`agentcast tail RUN_ID --url URL`: render (or print as JSON lines) a remote run."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from agentcast.cli._common import make_console, print_json
from agentcast.cli.remote import render_remote

__all__ = ["tail"]


def tail(args: argparse.Namespace) -> int:
    """Follow a remote run to its end; return the exit status."""
    from agentcast.client import AsyncClient

    async def follow() -> str | None:
        async with AsyncClient(args.url, api_key=args.api_key) as client:
            events = client.join(args.run_id, after=args.after)
            if args.json:
                return await print_json(events)
            from agentcast.console import ChatRenderer

            renderer = ChatRenderer(make_console(), show_reasoning=not args.no_reasoning)
            try:
                return await render_remote(events, renderer)
            finally:
                renderer.close()

    try:
        outcome = asyncio.run(follow())
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    return 0 if outcome in ("success", None) else 1
