"""`wrap`: a `Runner` for any kind of agent, and `stream_callbacks` for callback-only code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.language_models import BaseChatModel

from agentcast.agents._agent import Agent
from agentcast.agents._runner import Runner
from agentcast.errors import ConfigError
from agentcast.runtime import RunEvents
from agentcast.sessions import MemoryStore, agentcast_home, open_store

__all__ = ["is_graph", "stream_callbacks", "wrap"]


def wrap(obj: Any, **options: Any) -> Runner:
    """Return a `Runner` (`astream`/`ainvoke`/`invoke`) for any kind of agent.

    Accepts an `Agent` or `Runner` (returned as is), a compiled LangGraph graph (what
    `create_agent` and `create_react_agent` return, or your own), a LangChain chat model (run
    by the native agent), or any other LangChain `Runnable` (an LCEL chain, an
    `AgentExecutor`). `options` go to the source (e.g. `checkpoint_path=`, `make_input=` for a
    graph) or, for a chat model, to `Agent`.

    Raises:
        ConfigError: `obj` is none of these.
    """
    if isinstance(obj, Runner):
        return obj
    if isinstance(obj, BaseChatModel):
        return Agent(obj, **options)
    if is_graph(obj):
        from agentcast.sources.langgraph import LangGraphSource

        timeout = options.pop("timeout", None)
        callbacks = options.pop("callbacks", ())
        options.pop("store", None)  # a graph's memory is its checkpointer
        if options.get("checkpoint_path") is None:
            options["checkpoint_path"] = agentcast_home() / "graphs.db"
        name = getattr(obj, "name", None) or type(obj).__name__
        return Runner(
            LangGraphSource(obj, **options),
            timeout=timeout,
            callbacks=callbacks,
            label=f"LangGraph graph {name!r}",
        )
    from langchain_core.runnables import Runnable

    if isinstance(obj, Runnable):
        from agentcast.sources.runnable import RunnableSource

        timeout = options.pop("timeout", None)
        callbacks = options.pop("callbacks", ())
        store = options.pop("store", None)
        return Runner(
            RunnableSource(obj, **options),
            store=open_store(store) if isinstance(store, str) else (store or MemoryStore()),
            timeout=timeout,
            callbacks=callbacks,
            label=f"LangChain runnable {obj.get_name()!r}",
        )
    raise ConfigError(
        f"cannot stream a {type(obj).__name__}: expected an agentcast Agent, a compiled LangGraph"
        " graph, a LangChain chat model or a LangChain Runnable"
    )


def is_graph(obj: Any) -> bool:
    """Return whether `obj` is a compiled LangGraph graph (False when LangGraph is absent)."""
    try:
        from langgraph.pregel import Pregel
    except ImportError:
        return False
    return isinstance(obj, Pregel)


def stream_callbacks(
    run: Callable[[list[Any]], Any],
    prompt: str = "(callback bridge)",
    *,
    session_id: str | None = None,
    stream_tokens: bool = True,
) -> RunEvents:
    """Stream the events of code that only accepts callbacks, as a complete agentcast run.

    Args:
        run: `callbacks -> result` (sync, async, or returning an awaitable); it must pass the
            list it gets on, as `config={"callbacks": callbacks}`.
        prompt: what to record as the run's input.
        session_id: the session to attribute the run to.
        stream_tokens: False leaves out `llm_token` events.
    """
    from agentcast.sources.bridge import BridgeSource

    return Runner(BridgeSource(run), label="callback bridge").astream(
        prompt, session_id=session_id, stream_tokens=stream_tokens
    )
