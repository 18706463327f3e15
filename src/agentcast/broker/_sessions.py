"""The session policy across workers: one lease lock per session in Redis.

A run on a session holds the session's lock from before it starts until its `agent_end` is in
its stream (its turn is saved by then), on whichever worker it executes. A second request on
the same session, at any worker, meets the lock and applies the policy as one process would:
`reject` answers 409, `enqueue` waits for the lock, `interrupt` cancels the holder's run and
waits. A release, and a lock naming its run, are published (`{prefix}locks`), so a waiter tries
again at once rather than polling (an `interrupt` cancels the run as soon as it is named); it
tries again a lease later anyway, for a holder that died without releasing.

The lock is a lease (`SET NX PX`), renewed by its worker's keep-alive loop: a worker that died
loses it within the lease time. Its value carries a fencing token, which the run passes to the
store with its turn: a worker that stalled past the lease and lost the lock has its late turn
refused (`SessionFenced`) once the next lock's run has saved.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from agentcast.broker._wire import IF_HELD, LOCK, TOKEN
from agentcast.broker.redis import RedisBroker
from agentcast.errors import SessionBusy
from agentcast.runtime import SessionPolicy

__all__ = ["SessionLocks", "token_of"]


def token_of(value: str) -> int:
    """The fencing token of a lock's value (`{token} {worker} {run id|-}`)."""
    return int(value.split(" ", 1)[0])


class SessionLocks:
    """The session locks this worker holds, and the policy applied when one is busy."""

    def __init__(self, broker: RedisBroker) -> None:
        self.broker = broker
        self.held: dict[str, str] = {}  # session key -> the lock's value
        self._waiting: dict[str, list[asyncio.Future[None]]] = {}  # session key -> its waiters

    def changed(self, session_key: str) -> None:
        """A worker released the session's lock or named its run: its waiters here try again."""
        for waiter in self._waiting.pop(session_key, ()):
            if not waiter.done():
                waiter.set_result(None)

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
            # Watched before the try: a release between the try and the wait is not missed.
            freed = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(session_key, []).append(freed)
            try:
                value, holder = await self._take(session_key)
                if value:
                    self.held[session_key] = value
                    return token_of(value)
                run_id = holder.split(" ")[2] if holder.count(" ") == 2 else "-"
                if run_id != "-" and await ended(run_id):
                    value = f"{await self.token()} {self.broker.worker_id} -"
                    if await self._if_held(session_key, holder, value):
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
                # Woken by the holder's release, published by whichever worker holds it; a
                # holder that died publishes nothing, and its lock expires within the lease.
                await asyncio.wait((freed,), timeout=self.broker.lease)
            finally:
                self._unwatch(session_key, freed)

    def _unwatch(self, session_key: str, waiter: asyncio.Future[None]) -> None:
        waiters = self._waiting.get(session_key)
        if waiters is not None and waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                del self._waiting[session_key]

    async def bind(self, session_key: str, run_id: str) -> None:
        """Name the run holding the lock (an `interrupt` elsewhere needs its id)."""
        value = self.held.get(session_key)
        if value is None:
            return
        token, worker, _ = value.split(" ")
        bound = f"{token} {worker} {run_id}"
        if await self._if_held(session_key, value, bound):
            self.held[session_key] = bound

    async def release(self, session_key: str) -> None:
        """Release the lock (if it is still this worker's)."""
        value = self.held.pop(session_key, None)
        if value is not None:
            await self._if_held(session_key, value, "release")

    async def renew(self) -> None:
        """Renew every lock held here (the keep-alive loop calls this)."""
        for session_key, value in list(self.held.items()):
            if not await self._if_held(session_key, value, "renew"):
                self.held.pop(session_key, None)  # expired: another run may hold it now

    # -- the lock's Redis commands (its scripts are in `_wire`) -----------------------------

    async def _take(self, session_key: str) -> tuple[str, str]:
        """Try to take a session's lease lock: `(value, "")` when taken, `("", holder)` not.

        The value carries a fencing token (`token()`), this worker, and the run (`-` until it
        is known). The lock expires after the lease unless renewed, so a dead worker cannot
        hold it forever.
        """
        broker = self.broker
        value = f"{await self.token()} {broker.worker_id} -"
        keys, args = [broker.key("lock", session_key)], [value, int(broker.lease * 1000)]
        holder = await broker.do(broker.script(LOCK)(keys=keys, args=args))
        holder = holder.decode() if isinstance(holder, bytes) else str(holder)
        return (value, "") if holder == "" else ("", holder)

    async def holder(self, session_key: str) -> str:
        """The value of a session's lock (empty: free)."""
        value = await self.broker.do(self.broker.client.get(self.broker.key("lock", session_key)))
        return value.decode() if value else ""

    async def token(self) -> int:
        """A new fencing token: above every one handed out before, even by a Redis since lost."""
        broker = self.broker
        args = [time.time_ns() // 1000]  # the floor: the clock, in µs (`TOKEN`)
        return int(await broker.do(broker.script(TOKEN)(keys=[broker.key("fence")], args=args)))

    async def _if_held(self, session_key: str, value: str, action: str) -> bool:
        """Act on a session lock if it still holds `value`; return whether it did.

        `action`: `release`, `renew`, or a new value (the run holding it is now known). A
        release or a new value is published on `locks`, with the session's key.
        """
        broker = self.broker
        keys = [broker.key("lock", session_key)]
        args = [value, action, int(broker.lease * 1000), broker.key("locks"), session_key]
        return bool(await broker.do(broker.script(IF_HELD)(keys=keys, args=args)))
