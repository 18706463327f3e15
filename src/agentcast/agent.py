"""`Agent` and the seed-compatible entry points: the everyday Python API.

    agent = Agent(model="offline", tools=demo_tools())
    async for event in agent.astream("What is 25 * 4?", session_id="s1"):
        ...
    result = agent.invoke("What's my name?", session_id="s1")

The run executes in its own task and writes to its log; the iterator reads the log. Closing the
iterator, or dropping it by leaving the loop early, cancels the run, which still ends with its
closers and `agent_end(outcome="cancelled")`, and saves a valid history (see `RunEvents`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool

from agentcast.errors import ConfigError, InvalidInput
from agentcast.ids import check_id
from agentcast.models import describe, resolve
from agentcast.runtime import EventHandler, Run, RunEvents, RunResult, new_id
from agentcast.sessions import MemoryStore, SessionStore, open_store
from agentcast.sources import RunRequest, Source
from agentcast.sources.native import NativeAgentSource
from agentcast.sources.retry import RetryPolicy

__all__ = [
    "Agent",
    "Runner",
    "default_agent",
    "invoke_agent",
    "load_agent",
    "stream_agent",
    "stream_callbacks",
    "wrap",
]


class Runner:
    """Runs any `Source` with agentcast's runtime: the surface every agent kind shares.

    `Agent` (the native loop) is a `Runner`; `wrap(...)` returns one for a LangGraph graph or
    a LangChain runnable. All have `start`, `astream`, `ainvoke` and `invoke`.

    Args:
        source: what executes a run.
        store: where history is loaded from and saved to (None: the source keeps its own
            memory, as a LangGraph checkpointer does).
        timeout: seconds before a run is stopped with outcome `timeout`.
        callbacks: handlers called with every event of every run.
        label: how to describe the agent to a person (banners, logs).
    """

    def __init__(
        self,
        source: Source,
        *,
        store: SessionStore | None = None,
        timeout: float | None = None,
        callbacks: Sequence[EventHandler] = (),
        label: str = "agent",
    ) -> None:
        self.source = source
        self.store = store
        self.timeout = timeout
        self.callbacks = tuple(callbacks)
        self.label = label

    def start(
        self,
        prompt: str,
        *,
        session_id: str | None = None,
        actor_id: str | None = None,
        custom_data: Any = None,
        callbacks: Sequence[EventHandler] = (),
        run_id: str | None = None,
        owner: str | None = None,
    ) -> Run:
        """Create a run (not started yet): `await run.execute()` runs it; read `run.events()`.

        Args:
            prompt: the user's message.
            session_id: the conversation (None: a new one).
            actor_id: who asks.
            custom_data: opaque data attached to the run.
            callbacks: handlers for this run's events (besides the runner's).
            run_id: the run's id (None: a new one).
            owner: the namespace of the session (an API key's owner); the same `session_id`
                of another owner is another session.

        Raises:
            InvalidInput: the prompt is empty, or an id breaks the id rule (`agentcast.ids`).
        """
        prompt = _check_prompt(prompt)
        for what, value in (
            ("session_id", session_id),
            ("actor_id", actor_id),
            ("run_id", run_id),
            ("owner", owner),
        ):
            if value is not None:
                check_id(value, what)
        return Run(
            self.source,
            RunRequest(
                input=prompt,
                run_id=run_id or new_id(),
                session_id=session_id if session_id is not None else new_id("session"),
                actor_id=actor_id,
                custom_data=custom_data,
                owner=owner,
            ),
            store=self.store,
            timeout=self.timeout,
            handlers=(*self.callbacks, *callbacks),
        )

    def astream(
        self,
        prompt: str,
        *,
        session_id: str | None = None,
        stream_tokens: bool = True,
        actor_id: str | None = None,
        custom_data: Any = None,
        callbacks: Sequence[EventHandler] = (),
    ) -> RunEvents:
        """Run the agent; iterate the result for its events as they happen, to `agent_end`.

        The run starts at the first iteration and executes in a task of its own. Leaving the
        loop early (`break`, an exception) cancels it as soon as the iterator is dropped;
        `await events.aclose()` or `contextlib.aclosing` also waits until the cancelled run's
        turn is saved. For a run that goes on whatever its readers do, use `start()` and
        `Run.execute()`. `stream_tokens=False` leaves out `llm_token` events only.

        Raises:
            InvalidInput: the prompt is empty or not a string (at call time, before anything
                runs).
        """
        run = self.start(
            prompt,
            session_id=session_id,
            actor_id=actor_id,
            custom_data=custom_data,
            callbacks=callbacks,
        )
        return run.iterate(tokens=stream_tokens)

    async def ainvoke(
        self,
        prompt: str,
        *,
        session_id: str | None = None,
        actor_id: str | None = None,
        custom_data: Any = None,
        callbacks: Sequence[EventHandler] = (),
    ) -> RunResult:
        """Run the agent to its end and return the result (failures are in `outcome`/`error`)."""
        run = self.start(
            prompt,
            session_id=session_id,
            actor_id=actor_id,
            custom_data=custom_data,
            callbacks=callbacks,
        )
        return await run.execute()

    def invoke(
        self,
        prompt: str,
        *,
        session_id: str | None = None,
        actor_id: str | None = None,
        custom_data: Any = None,
        callbacks: Sequence[EventHandler] = (),
    ) -> RunResult:
        """Synchronous `ainvoke`, for code that is not async (not from inside an event loop)."""
        return asyncio.run(
            self.ainvoke(
                prompt,
                session_id=session_id,
                actor_id=actor_id,
                custom_data=custom_data,
                callbacks=callbacks,
            )
        )


class Agent(Runner):
    """A tool-calling agent over any LangChain chat model, streamed as agentcast events.

    Args:
        model: `"offline"`, a `"provider:model"` string, or a LangChain chat model.
        tools: LangChain tools (`@tool`), sync or async, and provider tool specs (dicts such as
            `{"type": "web_search_20250305", "name": "web_search"}`) that the provider runs.
        system_prompt: prepended to every model call.
        max_steps: model turns allowed per run before it fails with `max_steps_exceeded`.
        store: session store, or its URL (`memory://`, `sqlite:///file.db`); default in-memory.
        timeout: seconds before a run is stopped with outcome `timeout`.
        retry: retries of a model call that fails before its first token.
        callbacks: handlers called with every event of every run.
    """

    def __init__(
        self,
        model: str | BaseChatModel = "offline",
        tools: Sequence[BaseTool | dict[str, Any]] = (),
        *,
        system_prompt: str | None = None,
        max_steps: int = 10,
        store: SessionStore | str | None = None,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        callbacks: Sequence[EventHandler] = (),
    ) -> None:
        if max_steps < 1:
            raise InvalidInput(f"max_steps must be at least 1, got {max_steps}")
        self.model = resolve(model)
        self.tools = list(tools)
        source = NativeAgentSource(
            self.model, self.tools, system_prompt=system_prompt, max_steps=max_steps, retry=retry
        )
        super().__init__(
            source,
            store=open_store(store) if isinstance(store, str) else (store or MemoryStore()),
            timeout=timeout,
            callbacks=callbacks,
            label=describe(self.model),
        )


def _check_prompt(prompt: Any) -> str:
    if not isinstance(prompt, str):
        raise InvalidInput(f"the prompt must be a string, got {type(prompt).__name__}")
    if not prompt.strip():
        raise InvalidInput("the prompt is empty")
    return prompt


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
    if _is_graph(obj):
        from agentcast.sources.langgraph import LangGraphSource

        timeout = options.pop("timeout", None)
        callbacks = options.pop("callbacks", ())
        options.pop("store", None)  # a graph's memory is its checkpointer
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


def _is_graph(obj: Any) -> bool:
    try:
        from langgraph.pregel import Pregel
    except ImportError:
        return False
    return isinstance(obj, Pregel)


def load_agent(spec: str, **options: Any) -> Runner:
    """Load and wrap the agent a `module:attribute` or `path/to/file.py:attribute` spec names.

    The attribute may be an agent, graph, chain or chat model, or a function that returns one.

    Raises:
        ConfigError: the spec is malformed, the module or attribute is missing, or the object
            cannot be streamed.
    """
    import importlib
    import importlib.util
    import sys
    from pathlib import Path

    where, sep, attribute = spec.rpartition(":")
    if not sep or not where or not attribute:
        raise ConfigError(
            f"--agent takes module:attribute or path/to/file.py:attribute, got {spec!r}"
        )
    try:
        if where.endswith(".py") or "/" in where:
            path = Path(where).expanduser().resolve()
            if not path.is_file():
                raise ConfigError(f"no such file: {where}")
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            sys.path.insert(0, str(path.parent))
            try:
                module_spec.loader.exec_module(module)
            finally:
                sys.path.remove(str(path.parent))
        else:
            module = importlib.import_module(where)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's module can raise anything on import
        raise ConfigError(f"cannot import {where!r}: {type(exc).__name__}: {exc}") from exc
    try:
        obj = getattr(module, attribute)
    except AttributeError:
        raise ConfigError(f"{where!r} has no attribute {attribute!r}") from None
    from langchain_core.runnables import Runnable

    if callable(obj) and not isinstance(obj, (Runner, Runnable)) and not _is_graph(obj):
        try:
            obj = obj()
        except Exception as exc:  # noqa: BLE001 - the user's factory can raise anything
            raise ConfigError(
                f"{spec}: calling {attribute}() to build the agent failed:"
                f" {type(exc).__name__}: {exc}"
            ) from exc
    return wrap(obj, **options)


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
