"""`RunHandle`: what the server's readers, cancels and status need of a run.

A `Run` executing here is one; so is a copy of a run executing in another process (a broker's
replica, `agentcast.broker`), read through the same `EventLog`: the runtime never knows which.
"""

from __future__ import annotations

from typing import Protocol

from agentcast.runtime._log import EventLog
from agentcast.runtime._result import RunResult

__all__ = ["RunHandle"]


class RunHandle(Protocol):
    """What readers, cancels and status need of a run.

    A `Run`, or a copy of one executing in another process (a broker's replica), which the
    runtime reads the same way.
    """

    @property
    def run_id(self) -> str:
        """The run's id."""
        ...

    session_id: str | None
    session_key: str | None
    log: EventLog
    result: RunResult | None

    @property
    def done(self) -> bool:
        """Whether `agent_end` has been logged."""
        ...

    def cancel(self) -> None:
        """Stop the run (it ends `cancelled`)."""
        ...

    async def wait(self) -> RunResult:
        """Wait until the run has ended."""
        ...
