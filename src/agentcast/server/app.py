"""The HTTP/WebSocket server.

`create_app(agent)` returns an ASGI app; `AgentcastServer.router` mounts the same endpoints into
an existing FastAPI app.

Endpoints (DESIGN.md, Transports and HTTP API): `POST /invoke` (JSON, or SSE with
`stream: true`), `GET /runs/{id}/stream` (join or resume with `Last-Event-ID` / `?after=`),
`POST /runs/{id}/cancel`, `GET /runs/{id}`, `GET /sessions`, `GET`/`DELETE /sessions/{id}`,
`WS /ws`, `GET /healthz` (liveness), `GET /readyz` (the store answers), `GET /metrics`,
`GET /` (the web chat), `GET /openapi.json`, `GET /docs` (served without network, see `_pages`).
Runs live in a `RunManager`, independent of the connections that read them.

Ownership (with API keys): every entry point resolves the caller's owner (`_actor`) and passes
it down; a session id names a session within that owner's namespace (`agentcast.ids`), and a
run is found only by its owner. So another key's session or run is simply not there: the same
404, and no code path that reads the other key's data.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, WebSocket
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.middleware.cors import CORSMiddleware

from agentcast.encoders.sse import PING, encode_event, parse_last_event_id
from agentcast.ids import ID_ALPHABET, check_id, session_id_in, session_key
from agentcast.runtime import (
    DisconnectPolicy,
    ManagedRun,
    RunManager,
    RunResult,
    SessionPolicy,
)
from agentcast.server._auth import check_api_keys
from agentcast.server._errors import error_responses, install_error_handlers
from agentcast.server._health import StoreHealth
from agentcast.server._limits import RequestLimits
from agentcast.server._metrics import ServerMetrics
from agentcast.server._pages import docs_app, pages_router
from agentcast.server._stream import HEARTBEAT, check_resume, read_events
from agentcast.server._ws import serve_websocket
from agentcast.sessions import SessionStore

__all__ = ["AgentcastServer", "InvokeRequest", "ServerConfig", "create_app"]

# Young collections every 50,000 allocations rather than 700: a token allocates ~16 tracked
# objects in LangChain's stream, so the default means a collection every ~40 tokens.
_GC_FIRST_THRESHOLD = 50_000
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}
_ID_PATTERN = "^[A-Za-z0-9_.:@-]{1,128}$"


@dataclass(frozen=True)
class ServerConfig:
    """How the server behaves.

    Attributes:
        session_policy: `reject` (409), `enqueue` or `interrupt` for a busy session.
        disconnect: `grace` (default), `continue` or `cancel` when a run's last reader leaves.
        grace_period: seconds a run without readers keeps going under `grace`.
        heartbeat: seconds of silence before an SSE comment (or WS ping) keeps the line alive.
        api_keys: bearer token -> owner name (None: a name derived from the key, see
            `parse_api_keys`); owner names must be unique. Empty means no authentication.
        cors_origins: origins allowed by CORS (closed by default).
        max_body_bytes: larger request bodies get 413.
        body_timeout: seconds a request body may take to arrive (408 after).
        header_timeout: seconds a request's headers may take to arrive before the connection
            is closed (applied by `agentcast serve`'s uvicorn; see `uvicorn_config`).
        send_timeout: seconds a write to a client that stopped reading may stay stalled
            before the connection is closed and its stream's reader slot freed (same).
        retention: seconds a finished run stays resumable.
        max_retained_runs: at most this many finished runs are kept (oldest evicted first).
        max_retained_bytes: and at most about this many bytes of their events.
        tune_gc: at start-up, freeze the objects start-up created (the app, the agent, the
            imported libraries) out of the cyclic garbage collector and raise its first
            threshold, so the collector's pauses scale with live streams only (DESIGN.md:
            full collections, not CPU, are what limit streaming servers). Process-wide.
    """

    session_policy: SessionPolicy = "reject"
    disconnect: DisconnectPolicy = "grace"
    grace_period: float = 30.0
    heartbeat: float = 15.0
    api_keys: Mapping[str, str | None] = field(default_factory=dict)
    cors_origins: Sequence[str] = ()
    max_body_bytes: int = 1_000_000
    body_timeout: float = 30.0
    header_timeout: float = 10.0
    send_timeout: float = 30.0
    retention: float = 600.0
    max_retained_runs: int = 1_000
    max_retained_bytes: int = 256_000_000
    tune_gc: bool = True


# A character that is not whitespace to `str.strip()` (every `str.isspace()` character,
# spelled out so that the schema's regex means the same in every engine).
_NOT_BLANK = (
    r"[^\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
)


class InvokeRequest(BaseModel):
    """The body of `POST /invoke` (and of a WebSocket `start` message)."""

    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(
        description="The user's message (not blank).",
        min_length=1,
        max_length=200_000,
        pattern=_NOT_BLANK,
    )
    # The id rule is applied by `check_id` (a 400 like every other bad id), not by pydantic
    # (a 422): the pattern is only documented here.
    session_id: str | None = Field(
        default=None,
        description=f"Conversation id (new if absent): 1-128 of {ID_ALPHABET}.",
        json_schema_extra={"pattern": _ID_PATTERN},
    )
    actor_id: str | None = Field(
        default=None,
        description=f"Who asks (ignored with API keys): 1-128 of {ID_ALPHABET}.",
        json_schema_extra={"pattern": _ID_PATTERN},
    )
    stream: bool = Field(default=False, description="true: SSE events; false: one JSON result.")
    stream_tokens: bool = Field(default=True, description="false leaves out llm_token events.")
    custom_data: Any = Field(default=None, description="Opaque data attached to the run.")

    @field_validator("prompt", mode="before")
    @classmethod
    def _not_blank(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("the prompt is empty")
        return value


class AgentcastServer:
    """The server's state (runs, sessions, metrics) and its router.

    Args:
        agent: anything `agentcast.wrap` accepts (default: the demo agent).
        store: the session store (default: the agent's own).
        config: behaviour (policies, auth, limits).
    """

    def __init__(
        self,
        agent: Any = None,
        *,
        store: SessionStore | None = None,
        config: ServerConfig | None = None,
    ) -> None:
        from agentcast.agent import default_agent, wrap

        self.config = config or ServerConfig()
        self._owners = check_api_keys(self.config.api_keys)
        self.runner = wrap(agent) if agent is not None else default_agent()
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
        self.router = self._build_router()

    def _run_finished(self, result: RunResult) -> None:
        self.metrics.run_finished(result)
        self.health.run_finished(result)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """Check the store and tune the GC at start-up; at shutdown, end every run first.

        Raises:
            StoreUnavailable: the session store does not answer (the server must not start).
        """
        await self.health.check()
        if self.config.tune_gc:
            gc.collect()
            gc.freeze()
            first, second, third = gc.get_threshold()
            gc.set_threshold(max(first, _GC_FIRST_THRESHOLD), second, third)
        try:
            yield
        finally:
            await self.manager.aclose()

    # -- auth ---------------------------------------------------------------------------------

    def _actor(self, authorization: str | None) -> str | None:
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

    # -- routes -------------------------------------------------------------------------------

    def _build_router(self) -> APIRouter:
        router = APIRouter()
        server = self

        async def actor(request: Request) -> str | None:
            return server._actor(request.headers.get("authorization"))

        @router.post(
            "/invoke",
            summary="Run the agent (JSON result, or SSE with stream=true)",
            responses=error_responses(400, 401, 404, 408, 409, 413, 422, 503),
        )
        async def invoke(body: InvokeRequest, who: str | None = Depends(actor)) -> Response:
            await server.health.ensure()
            managed = server.manager.start(
                body.prompt,
                session_id=body.session_id,
                actor_id=who or body.actor_id,
                custom_data=body.custom_data,
                owner=who,
            )
            run = managed.run
            if body.stream:
                return server._sse(managed, after=-1, stream_tokens=body.stream_tokens)
            result = await run.wait()
            payload = result.to_dict() | {"outcome": result.outcome, "error": result.error}
            return JSONResponse(payload, headers={"X-Run-Id": run.run_id})

        @router.get(
            "/runs/{run_id}/stream",
            summary="Join or resume a run's event stream (SSE)",
            responses=error_responses(400, 401, 404, 410, 422),
        )
        async def stream(
            run_id: str,
            request: Request,
            after: str | None = None,
            stream_tokens: bool = True,
            who: str | None = Depends(actor),
        ) -> Response:
            managed = server._run(run_id, who)
            header = request.headers.get("last-event-id")
            cursor = parse_last_event_id(after if header is None else header)
            return server._sse(managed, after=cursor, stream_tokens=stream_tokens)

        @router.post(
            "/runs/{run_id}/cancel",
            status_code=202,
            summary="Cancel a run",
            responses=error_responses(400, 401, 404, 408, 413, 422),
        )
        async def cancel(run_id: str, who: str | None = Depends(actor)) -> dict[str, Any]:
            managed = server._run(run_id, who)
            return {"run_id": run_id, "status": server.manager.cancel(managed)}

        @router.get(
            "/runs/{run_id}",
            summary="A run's status",
            responses=error_responses(400, 401, 404, 422),
        )
        async def run_status(run_id: str, who: str | None = Depends(actor)) -> dict[str, Any]:
            managed = server._run(run_id, who)
            run, result = managed.run, managed.run.result
            return {
                "run_id": run.run_id,
                "session_id": run.session_id,
                "status": "finished" if run.done else "running",
                "last_seq": run.log.next_seq - 1,
                "readers": managed.readers,
                "outcome": result.outcome if result else None,
                "output": result.output if result else None,
                "metrics": result.metrics if result else None,
            }

        @router.get(
            "/sessions",
            summary="List sessions, most recent first",
            responses=error_responses(401, 404, 422, 503),
        )
        async def sessions(limit: int = 100, who: str | None = Depends(actor)) -> dict[str, Any]:
            store = server._store()
            infos = await store.list_sessions(actor_id=who, limit=max(1, min(limit, 1000)))
            listed = []
            for info in infos:
                session_id = session_id_in(info.session_id, who)
                if session_id is not None:  # the caller's namespace only
                    listed.append(info.__dict__ | {"session_id": session_id})
            return {"sessions": listed}

        # `:path` so that an id with `/` reaches the id rule (400) instead of no route (404).
        @router.get(
            "/sessions/{session_id:path}",
            summary="A session's history",
            responses=error_responses(400, 401, 404, 422, 503),
        )
        async def session(session_id: str, who: str | None = Depends(actor)) -> dict[str, Any]:
            store = server._store()
            messages = await store.load(server._session_key(session_id, who))
            if not messages:
                raise _not_found("session", session_id)
            return {"session_id": session_id, "messages": messages}

        @router.delete(
            "/sessions/{session_id:path}",
            status_code=204,
            summary="Delete a session",
            responses=error_responses(400, 401, 404, 422, 503),
        )
        async def delete_session(session_id: str, who: str | None = Depends(actor)) -> Response:
            store = server._store()
            if not await store.delete(server._session_key(session_id, who)):
                raise _not_found("session", session_id)
            return Response(status_code=204)

        @router.websocket("/ws")
        async def websocket(ws: WebSocket) -> None:
            token = ws.query_params.get("token")
            header = ws.headers.get("authorization") or (f"Bearer {token}" if token else None)
            try:
                who = server._actor(header)
            except HTTPException:
                await ws.close(code=4401, reason="unauthorized")
                return
            await serve_websocket(ws, server, who)

        @router.get("/healthz", summary="Liveness")
        async def healthz() -> dict[str, Any]:
            return {
                "status": "ok",
                "active_runs": server.manager.active_runs,
                "agent": server.runner.label,
            }

        @router.get(
            "/readyz",
            summary="Readiness: the session store answers",
            responses=error_responses(503),
        )
        async def readyz() -> dict[str, Any]:
            await server.health.check()
            return {"status": "ready", "store": None if server.store is None else "ok"}

        @router.get("/metrics", summary="Prometheus metrics")
        async def metrics() -> Response:
            body, content_type = server.metrics.render()
            return Response(body, media_type=content_type)

        router.include_router(pages_router())
        return router

    def _store(self) -> SessionStore:
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
    def _session_key(session_id: str, who: str | None) -> str:
        """Where the caller's session `session_id` is stored (400 for an id breaking the rule)."""
        return session_key(check_id(session_id), who)

    def _run(self, run_id: str, who: str | None) -> ManagedRun:
        """The caller's run `run_id`: another owner's is as unknown as a missing one (404)."""
        managed = self.manager.get(check_id(run_id, "run_id"), owner=who)
        if managed is None:
            raise _not_found("run", run_id)
        return managed

    def _sse(self, managed: ManagedRun, *, after: int, stream_tokens: bool) -> StreamingResponse:
        log = managed.run.log
        check_resume(log, after)
        manager, heartbeat = self.manager, self.config.heartbeat

        async def body() -> AsyncIterator[bytes]:
            # The reader is counted from inside the body: nothing is counted for a response
            # that fails or is never sent, and whatever ends the body uncounts it.
            with manager.reader(managed):
                async for item in read_events(
                    log, after=after, heartbeat=heartbeat, stream_tokens=stream_tokens
                ):
                    yield PING if item is HEARTBEAT else encode_event(item)  # type: ignore[arg-type]

        # Ids follow the id rule (ASCII), so these headers always encode.
        headers = dict(_SSE_HEADERS, **{"X-Run-Id": managed.run.run_id})
        if managed.run.session_id:
            headers["X-Session-Id"] = managed.run.session_id
        return StreamingResponse(body(), media_type="text/event-stream", headers=headers)


def _not_found(kind: str, key: str) -> HTTPException:
    return HTTPException(404, detail={"code": f"{kind}_not_found", "message": f"no {kind} {key!r}"})


def create_app(agent: Any = None, *, store: SessionStore | None = None, **config: Any) -> FastAPI:
    """Return the ASGI app serving `agent` (default: the demo agent); `config`: `ServerConfig`."""
    server = AgentcastServer(agent, store=store, config=ServerConfig(**config))
    app = docs_app(title="agentcast", version=_version(), lifespan=server.lifespan)
    app.state.agentcast = server
    app.include_router(server.router)
    install_error_handlers(app)
    if server.config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(server.config.cors_origins),
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
            expose_headers=["X-Run-Id", "X-Session-Id"],
        )
    app.add_middleware(
        RequestLimits,
        max_bytes=server.config.max_body_bytes,
        timeout=server.config.body_timeout,
    )
    return app


def _version() -> str:
    from agentcast import __version__

    return __version__
