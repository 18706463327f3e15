"""The seed-compatible entry points: `stream_agent`/`invoke_agent` (a payload), the demo agent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentcast.agents._agent import Agent
from agentcast.agents._runner import Runner
from agentcast.agents._wrap import wrap
from agentcast.runtime import RunEvents
from agentcast.runtime._payload import parse_payload
from agentcast.sessions import open_store

__all__ = ["default_agent", "invoke_agent", "stream_agent"]


def default_agent() -> Agent:
    """Return a new demo agent: the offline model, the demo tools, the default SQLite store.

    A new one on every call, built in well under a millisecond: nothing is cached between
    calls, so it always follows the current environment (`AGENTCAST_HOME`, the offline
    model's `AGENTCAST_OFFLINE_DELAY`). Its sessions live in the store's file, not in the
    agent, so two calls' agents share their conversations.
    """
    from agentcast.models.demo_tools import demo_tools

    return Agent("offline", demo_tools(), store=open_store(None))


def stream_agent(payload: Mapping[str, Any], agent: Agent | None = None) -> RunEvents:
    """Stream the run a payload describes (what `astream` returns, with the same guarantees).

    The payload is `{prompt, session_id?, actor_id?, stream_tokens?, custom_data?}`, checked
    by the same rule as the body of `POST /invoke` (`agentcast.runtime._payload.RunPayload`).

    With no agent, the demo agent (offline model and demo tools) answers.

    Raises:
        InvalidInput: the payload is malformed (at call time, before anything runs).
    """
    args = parse_payload(payload)
    runner = wrap(agent) if agent is not None else default_agent()
    # Returned as is, not wrapped in a generator of our own: a generator layer would hold the
    # iterator across the consumer's loop and be finalized wherever Python gets to it.
    return runner.astream(
        args.prompt,
        session_id=args.session_id,
        stream_tokens=args.stream_tokens,
        actor_id=args.actor_id,
        custom_data=args.custom_data,
    )


async def invoke_agent(payload: Mapping[str, Any], agent: Runner | Any = None) -> dict[str, Any]:
    """Run a payload to its end; return `RunResult.to_dict()` (output, ids, outcome, error...).

    Raises:
        InvalidInput: the payload is malformed (before anything runs).
    """
    args = parse_payload(payload)
    runner = wrap(agent) if agent is not None else default_agent()
    result = await runner.ainvoke(
        args.prompt,
        session_id=args.session_id,
        actor_id=args.actor_id,
        custom_data=args.custom_data,
    )
    return result.to_dict()
