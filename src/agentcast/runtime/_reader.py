"""`RunEvents`: the iterator `astream()` returns, which owns its run but never executes it.

The run executes in a task of its own; this only reads the run's log. That is what makes leaving
a loop early safe: an abandoned async generator is finalized wherever Python gets to it (the
loop's finalizer hook in a fresh task, or `asyncio.run`'s `shutdown_asyncgens` after every task
was cancelled), where exiting a cancel scope or awaiting a store fails. This iterator is a plain
object, not an async generator: it holds no cancel scope, task-bound resource or `finally`
across the consumer's loop, so dropping it needs no async cleanup at all - `__del__` only asks
the run to stop, and the run's own task closes what is open and saves the turn.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from agentcast.runtime._log import LogReader

if TYPE_CHECKING:
    from agentcast.runtime.run import Run

__all__ = ["RunEvents"]


class RunEvents(LogReader):
    """The events of one run, in order, up to `agent_end`; closing it cancels the run.

    The run starts at the first `__anext__`. `aclose()` (or `contextlib.aclosing`) cancels a run
    that has not ended and returns once its turn is saved. Dropping the iterator without closing
    it (`break`, an exception in the loop) cancels the run as well, without waiting: the run's
    task still emits the closers and `agent_end(outcome="cancelled")` and saves the turn.

    Args:
        run: the run to read (and to start when nobody else executes it).
        tokens: False leaves out `llm_token` events.
    """

    __slots__ = ("_run",)

    def __init__(self, run: Run, *, tokens: bool = True) -> None:
        super().__init__(run.log, run.log.first_seq - 1, tokens=tokens)
        self._run = run
        self._on_wait = self._start_run

    @property
    def run(self) -> Run:
        """The run this iterator reads."""
        return self._run

    def _start_run(self) -> None:
        # The first time the reader would wait: start the run unless someone else did. Once
        # is enough, so the hook is then removed (no call per token after that).
        self._on_wait = None
        self._run._spawn()  # noqa: SLF001 - the iterator is the run's own reader

    async def aclose(self) -> None:
        """Stop reading; cancel the run if it has not ended, and wait until its turn is saved."""
        if self._closed:
            return
        self._closed = True
        run = self._run
        if not run.done and run.started:
            run.cancel()
            await run.wait()

    def __del__(self) -> None:
        # Dropped without `aclose()`: ask the run to stop, and nothing else (no await, no
        # task-bound state), wherever and whenever the collector gets here.
        if not self._closed:
            with contextlib.suppress(Exception):  # nothing may escape a finalizer
                self._run._abandon()  # noqa: SLF001
