"""The seed-compatible entry points: `stream_agent`/`invoke_agent` (a payload), the demo agent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentcast.agents._agent import Agent
from agentcast.agents._runner import Runner
from agentcast.agents._wrap import wrap
from agentcast.errors import InvalidInput
from agentcast.ids import check_id
from agentcast.runtime import RunEvents
from agentcast.sessions import open_store

__all__ = ["default_agent", "invoke_agent", "stream_agent"]

_default: Agent | None = None


def default_agent() -> Agent:
    """Return the demo agent: the offline model, the demo tools, the default SQLite store."""
    global _default
    if _default is None:
        from agentcast.models.demo_tools import demo_tools

        _default = Agent("offline", demo_tools(), store=open_store(None))
    return _default


_PAYLOAD_KEYS = {"prompt", "session_id", "actor_id", "stream_tokens", "custom_data"}


def _payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(payload, Mapping):
        raise InvalidInput(f"the payload must be a mapping, got {type(payload).__name__}")
    if "prompt" not in payload:
        raise InvalidInput("the payload has no 'prompt'")
    for key in ("session_id", "actor_id"):
        value = payload.get(key)
        if value is not None:
            check_id(value, key)
    if not isinstance(payload.get("stream_tokens", True), bool):
        raise InvalidInput("'stream_tokens' must be true or false")
    return {k: v for k, v in payload.items() if k in _PAYLOAD_KEYS}


def stream_agent(payload: Mapping[str, Any], agent: Agent | None = None) -> RunEvents:
    """Stream the run a payload describes (what `astream` returns, with the same guarantees).

    The payload is `{prompt, session_id, actor_id?, stream_tokens?, custom_data?}`.

    With no agent, the demo agent (offline model and demo tools) answers.

    Raises:
        InvalidInput: the payload is malformed (at call time, before anything runs).
    """
    args = _payload(payload)
    runner = wrap(agent) if agent is not None else default_agent()
    # Returned as is, not wrapped in a generator of our own: a generator layer would hold the
    # iterator across the consumer's loop and be finalized wherever Python gets to it.
    return runner.astream(
        args["prompt"],
        session_id=args.get("session_id"),
        stream_tokens=args.get("stream_tokens", True),
        actor_id=args.get("actor_id"),
        custom_data=args.get("custom_data"),
    )


async def invoke_agent(payload: Mapping[str, Any], agent: Runner | Any = None) -> dict[str, Any]:
    """Run a payload to its end; return `{output, session_id, run_id, steps, metrics}`."""
    args = _payload(payload)
    runner = wrap(agent) if agent is not None else default_agent()
    result = await runner.ainvoke(
        args["prompt"],
        session_id=args.get("session_id"),
        actor_id=args.get("actor_id"),
        custom_data=args.get("custom_data"),
    )
    return result.to_dict()
