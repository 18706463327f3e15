"""Ending a run whose process is gone: the events that close what its log left open.

When the process executing a run dies, another one (a broker's sweeper) holds only the run's
events. `close_lost_run` rebuilds the run's state from them and ends it through the same
closing path as every run (`RunCloser`): closers for everything open, one `error`, then
`agent_end(outcome="error")`. No turn is saved: the lost turn stays out of the history.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentcast.errors import AgentcastError
from agentcast.events import AgentEnd, AgentStart, BaseEvent, LLMToken
from agentcast.runtime._closing import RunCloser
from agentcast.runtime._log import EventLog
from agentcast.runtime._sink import Sink
from agentcast.runtime._state import RunState

__all__ = ["close_lost_run"]


def close_lost_run(
    run_id: str, session_id: str | None, events: Sequence[BaseEvent], failure: AgentcastError
) -> list[BaseEvent]:
    """Return the events that end a run whose log stopped at `events` (its whole log, in order).

    The returned events continue the `seq`s of `events`: closers, an `error` made of
    `failure`, then `agent_end(outcome="error")`; an empty list when the run had ended.
    A run that logged nothing yet gets its `agent_start` first.
    """
    if events and events[-1].__class__ is AgentEnd:
        return []
    first = events[0].seq if events else 0
    log = EventLog(limit=len(events) + 1_000, first_seq=first)
    state = RunState()
    state.mark_started()
    for event in events:
        if event.__class__ is LLMToken:
            state.on_token(event)  # type: ignore[arg-type]
        else:
            state.track(event)
        log.append(event)
    sink = Sink(run_id, session_id, log, state)
    if not events:
        sink.emit(AgentStart(input=""))
    closer = RunCloser(sink, log, store=None, session_key=None, actor_id=None, timeout=None)
    # No store: the closer never awaits, so the coroutine finishes in its first step.
    coroutine = closer.finish("error", failure, session_id=session_id)
    try:
        coroutine.send(None)
    except StopIteration:
        pass
    else:  # pragma: no cover - only if the closer learned to await without a store
        coroutine.close()
        raise RuntimeError("closing a lost run awaited")
    return log.snapshot()[len(events) :]
