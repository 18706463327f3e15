"""The session policy across workers: one lease lock per session in Redis.

A run on a session holds the session's lock from before it starts until its `agent_end` is in
its stream (its turn is saved by then), on whichever worker it executes. A second request on
the same session, at any worker, meets the lock and applies the policy as one process would:
`reject` answers 409, `enqueue` waits for the lock, `interrupt` cancels the holder's run and
waits. The lock is a lease (`SET NX PX`), renewed by its worker's keep-alive loop: a worker
that died loses it within the lease time. Its value carries a fencing token, which the run
passes to the store with its turn: a worker that stalled past the lease and lost the lock has
its late turn refused (`SessionFenced`) once the next lock's run has saved.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from agentcast.broker.redis import RedisBroker
from agentcast.errors import SessionBusy
from agentcast.runtime import SessionPolicy

__all__ = ["SessionLocks", "token_of"]

POLL = 0.05
"""Seconds between two tries at a busy session's lock (enqueue, interrupt)."""


def token_of(value: str) -> int:
    """The fencing token of a lock's value (`{token} {worker} {run id|-}`)."""
    return int(value.split(" ", 1)[0])


class SessionLocks:
    """The session locks this worker holds, and the policy applied when one is busy."""

    def __init__(self, broker: RedisBroker) -> None:
        self.broker = broker
        self.held: dict[str, str] = {}  # session key -> the lock's value

    async def claim(
        self,
        session_key: str,
        policy: SessionPolicy,
        cancel: Callable[[str], None],
        ended: Callable[[str], Awaitable[bool]],
    ) -> int:
        """Take the session's lock, applying `policy` while another run holds it.

        Returns the lock's fencing token: the run saves its turn with it, and the store
        refuses it once a run holding a later lock on the session has saved.

        A lock whose run has logged its `agent_end` (`ended`) is free: the session is busy
        until then and no longer (its turn is saved by then), as on one worker, although its
        worker releases the lock a round trip later. It is taken over in one script that
        checks it still holds the value seen.

        Raises:
            SessionBusy: the policy is `reject` and the session has a run in progress.
            BrokerUnavailable: Redis does not answer.
        """
        cancelled: str | None = None
        while True:
            value, holder = await self.broker.lock(session_key, None)
            if value:
                self.held[session_key] = value
                return token_of(value)
            run_id = holder.split(" ")[2] if holder.count(" ") == 2 else "-"
            if run_id != "-" and await ended(run_id):
                value = f"{await self.broker.token()} {self.broker.worker_id} -"
                if await self.broker.if_held(session_key, holder, value):
                    self.held[session_key] = value
                    return token_of(value)
                continue
            if policy == "reject":
                raise SessionBusy(
                    f"session already has a run in progress ({run_id}) on another request;"
                    " wait for it, cancel it, or resume its stream"
                )
            if policy == "interrupt" and run_id != "-" and run_id != cancelled:
                cancel(run_id)
                cancelled = run_id
            await asyncio.sleep(POLL)  # the holder's end is in another process: try again

    async def bind(self, session_key: str, run_id: str) -> None:
        """Name the run holding the lock (an `interrupt` elsewhere needs its id)."""
        value = self.held.get(session_key)
        if value is None:
            return
        token, worker, _ = value.split(" ")
        bound = f"{token} {worker} {run_id}"
        if await self.broker.if_held(session_key, value, bound):
            self.held[session_key] = bound

    async def release(self, session_key: str) -> None:
        """Release the lock (if it is still this worker's)."""
        value = self.held.pop(session_key, None)
        if value is not None:
            await self.broker.if_held(session_key, value, "release")

    async def renew(self) -> None:
        """Renew every lock held here (the keep-alive loop calls this)."""
        for session_key, value in list(self.held.items()):
            if not await self.broker.if_held(session_key, value, "renew"):
                self.held.pop(session_key, None)  # expired: another run may hold it now
