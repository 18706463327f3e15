"""`Runner`: runs any `Source` with agentcast's runtime, the surface every agent kind shares.

The run executes in its own task and writes to its log; the iterator reads the log. Closing the
iterator, or dropping it by leaving the loop early, cancels the run, which still ends with its
closers and `agent_end(outcome="cancelled")`, and saves a valid history (see `RunEvents`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from agentcast.events import Message
from agentcast.ids import check_id
from agentcast.runtime import EventHandler, Run, RunEvents, RunResult, new_id
from agentcast.runtime._payload import check_prompt
from agentcast.sessions import SessionStore
from agentcast.sources import RunRequest, Source

__all__ = ["Runner", "check_prompt"]


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
        history: Sequence[Message] | None = None,
        fence: int | None = None,
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
            history: the conversation so far, when the caller holds it (a front-end protocol
                sends it with every request): the run answers from it instead of the stored
                history. None: the stored history. The turn is saved to the session either way.
            fence: the fencing token of the session's lock, when a lock across processes holds
                it (the server's broker): the turn is saved with it (`SessionStore.append`).

        Raises:
            InvalidInput: the prompt is empty, or an id breaks the id rule (`agentcast.ids`).
        """
        prompt = check_prompt(prompt)
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
                history=tuple(history) if history is not None else (),
                history_from_caller=history is not None,
            ),
            store=self.store,
            timeout=self.timeout,
            handlers=(*self.callbacks, *callbacks),
            fence=fence,
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
