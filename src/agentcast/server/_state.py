"""The server's state: the run manager, the store's health, metrics, and the shared lookups.

Both the HTTP routes (`app`) and the WebSocket handler (`_ws`) take a `ServerState`; neither
imports the other.

Ownership (with API keys): every entry point resolves the caller's owner (`actor`) and passes
it down; a session id names a session within that owner's namespace (`agentcast.ids`), and a
run is found only by its owner (`find_run`). So another key's session or run is simply not
there: the same 404, and no code path that reads the other key's data.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException
from starlette.types import Scope

from agentcast.errors import BrokerUnavailable, ConfigError, SessionBusy
from agentcast.ids import check_id, session_key
from agentcast.runtime import ManagedRun, RunManager, RunResult, SessionPolicy
from agentcast.server._auth import check_api_keys
from agentcast.server._config import ServedAgent, ServerConfig
from agentcast.server._gc import tune_gc
from agentcast.server._health import StoreHealth
from agentcast.server._metrics import ServerMetrics
from agentcast.server._transport import DirectBody, direct_body_of
from agentcast.sessions import SessionStore

if TYPE_CHECKING:
    from agentcast.broker._node import BrokerNode

__all__ = ["ServerState", "not_found"]


def not_found(kind: str, key: str) -> HTTPException:
    """Return the 404 for a `kind` (run, session) the caller has no `key` of."""
    return HTTPException(404, detail={"code": f"{kind}_not_found", "message": f"no {kind} {key!r}"})


class ServerState:
    """The server's state (runs, sessions, metrics) and the lookups every route shares.

    Args:
        runner: the agent to serve (an `agentcast.Runner`; see `ServedAgent`).
        store: the session store (default: the agent's own).
        config: behaviour (policies, auth, limits).
    """

    def __init__(
        self,
        runner: ServedAgent,
        *,
        store: SessionStore | None = None,
        config: ServerConfig | None = None,
    ) -> None:
        self.config = config or ServerConfig()
        self._owners = check_api_keys(self.config.api_keys)
        if not isinstance(runner, ServedAgent):
            raise ConfigError(
                f"the server serves an agentcast Runner, got {type(runner).__name__}:"
                " wrap it first (agentcast.wrap(...))"
            )
        self.runner = runner
        if store is not None:
            self.runner.store = store
        self.store = self.runner.store
        self.metrics = ServerMetrics()
        self.manager = RunManager(
            self.runner.start,
            session_policy=self.config.session_policy,
            disconnect=self.config.disconnect,
            grace_period=self.config.grace_period,
            retention=self.config.retention,
            max_retained_runs=self.config.max_retained_runs,
            max_retained_bytes=self.config.max_retained_bytes,
            on_finish=self._run_finished,
        )
        self.health = StoreHealth(self.store)
        self.metrics.watch(self.manager)
        self._deleting: dict[str, asyncio.Event] = {}
        """Sessions being deleted by this worker (set when done): a run on one waits, or 409."""
        self.own_middleware: int | None = None
        """How many middleware `create_app` installed; None until it did (no direct body)."""
        self.node: BrokerNode | None = None
        if self.config.broker is not None:
            from agentcast.broker import attach, open_broker

            broker = open_broker(
                self.config.broker,
                lease=self.config.broker_lease,
                retention=self.config.retention,
                maxlen=self.config.stream_maxlen,
                flush_interval=self.config.broker_flush,
            )
            self.node = attach(broker, self.manager)
            self.metrics.watch_broker(self.node)

    def direct_body(self, scope: Scope) -> DirectBody | None:
        """The connection's `DirectBody` for an event stream, when its body may bypass ASGI.

        Only while the app's middleware are the ones `create_app` installed (none of them
        touches a response body): one added later may need to see the body, so it gets it.
        """
        if not self.config.direct_body or self.own_middleware is None:
            return None
        app = scope.get("app")
        if len(getattr(app, "user_middleware", ())) != self.own_middleware:
            return None
        body = direct_body_of(scope)
        return body if body is not None and body.usable() else None

    async def check_broker(self) -> None:
        """Check that the broker answers, then close the connection.

        The loop that serves opens its own.

        Raises:
            BrokerUnavailable: it does not.
        """
        if self.node is not None:
            try:
                await self.node.broker.connect()
            finally:
                await self.node.broker.aclose()

    async def start_run(
        self,
        prompt: str,
        *,
        session_id: str | None,
        owner: str | None,
        policy: SessionPolicy | None = None,
        **options: Any,
    ) -> ManagedRun:
        """Start a run (`RunManager.start`), with the session policy across workers.

        With a broker, the session policy (`policy`, else the server's) first holds across
        workers, and the run is registered before this returns, so any worker finds it. The
        run saves its turn with the session lock's fencing token: the store refuses the turn
        (`session_fenced`) if the lock was lost and a later lock's run saved first.

        Raises:
            SessionBusy: the session is busy and the policy is `reject`.
            BrokerUnavailable: the broker does not answer (503).
        """
        key = fence = None
        self.ensure_broker()
        if self._deleting and session_id is not None:
            await self._after_delete(self.session_key(session_id, owner), session_id, policy)
        if self.node is not None and session_id is not None:
            key = self.session_key(session_id, owner)
            fence = await self.node.claim_session(key, policy or self.config.session_policy)
        try:
            managed = self.manager.start(
                prompt, session_id=session_id, owner=owner, fence=fence, **options
            )
        except BaseException:
            if key is not None and self.node is not None:
                await self.node.release_session(key)
            raise
        await self.started(managed)
        return managed

    async def active_run(self, session_id: str, who: str | None) -> ManagedRun | None:
        """The run in progress on the caller's session, on this worker or another.

        With a broker, the run on another worker is the one holding the session's lock.
        """
        managed = self.manager.active(session_id, owner=who)
        if managed is None and self.node is not None:
            run_id = await self.node.holder(self.session_key(session_id, who))
            if run_id is not None:
                managed = await self.node.find(run_id, who)
        if managed is None or managed.run.done:
            return None
        return managed

    async def delete_session(self, session_id: str, who: str | None) -> None:
        """Delete the caller's session, unless a run is in progress on it (on any worker).

        No run starts on the session here meanwhile (`start_run` waits, or refuses it with
        `reject`). With a broker the delete also holds the session's lock, as a run would, so
        none starts on another worker either, and it hands the store the lock's fencing token:
        a worker that stalled past its lease and saves its turn late is refused
        (`SessionStore.delete`) instead of bringing the deleted session back.

        Raises:
            SessionBusy: a run is in progress on the session (409).
            HTTPException: 404, the caller has no such session.
            BrokerUnavailable: the broker does not answer (503).
        """
        store, key = self.session_store(), self.session_key(session_id, who)
        self.ensure_broker()
        if key in self._deleting:
            raise SessionBusy(f"session {session_id!r} is being deleted")
        done = self._deleting[key] = asyncio.Event()  # from here no run starts on it here
        try:
            # A run in progress would save its turn afterwards and bring the session back.
            running = await self.active_run(session_id, who)
            if running is not None:
                raise SessionBusy(
                    f"session {session_id!r} has a run in progress ({running.run.run_id});"
                    " cancel it or wait for its end, then delete"
                )
            if self.node is None:
                deleted = await store.delete(key)
            else:
                fence = await self.node.claim_session(key, "reject")
                try:
                    deleted = await store.delete(key, fence=fence)
                finally:
                    await self.node.release_session(key)
        finally:
            del self._deleting[key]
            done.set()
        if not deleted:
            raise not_found("session", session_id)

    async def _after_delete(self, key: str, session_id: str, policy: SessionPolicy | None) -> None:
        """Hold a run back while its session is being deleted here.

        `reject` refuses it (409); `enqueue` and `interrupt` wait for the delete, then the run
        starts the session afresh.
        """
        deleting = self._deleting.get(key)
        if deleting is None:
            return
        if (policy or self.config.session_policy) == "reject":
            raise SessionBusy(f"session {session_id!r} is being deleted; try again after it")
        await deleting.wait()

    async def started(self, managed: ManagedRun) -> None:
        """Wait until a run just started is known to every worker (no wait without a broker).

        Raises:
            BrokerUnavailable: the broker did not answer.
        """
        if self.node is not None:
            await self.node.registered(managed)

    def ensure_broker(self) -> None:
        """Raise `BrokerUnavailable` (503) while the broker is known to be down."""
        if self.node is not None and self.node.down:
            raise BrokerUnavailable("the broker is unavailable; retry shortly")

    def _run_finished(self, result: RunResult) -> None:
        self.metrics.run_finished(result)
        self.health.run_finished(result)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """Migrate and check the store, tune the GC at start-up; at shutdown, end every run first.

        Raises:
            StoreUnavailable: the session store does not answer (the server must not start).
            ConfigError: the store's schema is newer than this agentcast knows.
        """
        await self.health.start()
        if self.node is not None:
            await self.node.start()
        if self.config.tune_gc:
            tune_gc()
        try:
            yield
        finally:
            await self.manager.aclose()
            if self.node is not None:
                await self.node.aclose()

    # -- auth and lookups ------------------------------------------------------------------

    def actor(self, authorization: str | None) -> str | None:
        """Return the caller's owner (None without API keys); 401 for a missing or bad key."""
        keys = self._owners
        if not keys:
            return None
        scheme, _, token = (authorization or "").partition(" ")
        actor = keys.get(token.strip()) if scheme.lower() == "bearer" else None
        if actor is None:
            raise HTTPException(
                401,
                detail={
                    "code": "unauthorized",
                    "message": "a valid 'Authorization: Bearer <key>' is required",
                },
                headers={"WWW-Authenticate": "Bearer"},
            )
        return actor

    def session_store(self) -> SessionStore:
        """Return the agentcast session store (404 when the agent keeps its own memory)."""
        if self.store is None:
            raise HTTPException(
                404,
                detail={
                    "code": "no_store",
                    "message": "this agent keeps no agentcast session store",
                },
            )
        return self.store

    @staticmethod
    def session_key(session_id: str, who: str | None) -> str:
        """Where the caller's session `session_id` is stored (400 for an id breaking the rule)."""
        return session_key(check_id(session_id), who)

    async def find_run(self, run_id: str, who: str | None) -> ManagedRun:
        """The caller's run `run_id`: another owner's is as unknown as a missing one (404).

        With a broker, a run executing on another worker is found in the registry, with the
        same rule, and served from a local replica of its stream.

        Raises:
            BrokerUnavailable: the run is not here and the broker does not answer (503).
        """
        managed = self.manager.get(check_id(run_id, "run_id"), owner=who)
        if managed is None and self.node is not None:
            managed = await self.node.find(run_id, who)
        if managed is None:
            raise not_found("run", run_id)
        return managed
