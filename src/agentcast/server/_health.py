"""What the server knows of its session store's reachability (readiness, 503s).

Checking the store on every request would cost a round trip per run, so the server pings
it at start-up and for `GET /readyz`, and otherwise learns of an outage from the store
itself: a route's store call, or a run's load or save, raising `StoreUnavailable`. While the
store is known to be down, each new run first pings it: 503 while it still does not answer,
and the run starts as soon as it does.
"""

from __future__ import annotations

from agentcast.errors import StoreUnavailable
from agentcast.runtime import RunResult
from agentcast.sessions import SessionStore

__all__ = ["StoreHealth"]


class StoreHealth:
    """The reachability of one session store.

    Args:
        store: the store (None: the agent keeps no agentcast store; always ready).
    """

    def __init__(self, store: SessionStore | None) -> None:
        self.store = store
        self.down = False

    async def check(self) -> None:
        """Ping the store now.

        Raises:
            StoreUnavailable: it cannot be reached or did not answer in time.
        """
        ping = getattr(self.store, "ping", None)  # a store written before ping() existed
        if ping is None:
            return
        try:
            await ping()
        except StoreUnavailable:
            self.down = True
            raise
        self.down = False

    async def ensure(self) -> None:
        """Raise `StoreUnavailable` if the store is known to be down and still is."""
        if self.down:
            await self.check()

    def saw_failure(self) -> None:
        """A store operation raised `StoreUnavailable`."""
        self.down = True

    def run_finished(self, result: RunResult) -> None:
        """Learn from a finished run whether its store calls failed."""
        if result.error_code == StoreUnavailable.code:
            self.down = True
