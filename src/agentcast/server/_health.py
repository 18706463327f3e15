"""What the server knows of its session store's reachability (readiness, 503s).

At start-up the server migrates the store's schema (`setup()`, once) and pings it. Checking
the store on every request would cost a round trip per run, so after that it pings it only
for `GET /readyz`, and otherwise learns of an outage from the store
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
        self._set_up = False

    async def start(self) -> None:
        """Bring the store's schema up to date (`setup()`: its migrations) once, then ping it.

        Called at start-up, by the lifespan and before it by `agentcast serve`; the schema is
        migrated by the first call only.

        Raises:
            StoreUnavailable: it cannot be reached or did not answer in time.
            ConfigError: its schema is newer than this agentcast knows.
        """
        if not self._set_up:
            setup = getattr(self.store, "setup", None)  # a store written before setup()
            if setup is not None:
                try:
                    await setup()
                except StoreUnavailable:
                    self.down = True
                    raise
            self._set_up = True
        await self.check()

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
