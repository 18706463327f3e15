"""The HTTP/WebSocket routes, and `create_app`.

`create_app(runner)` returns an ASGI app; `AgentcastServer.router` mounts the same endpoints into
an existing FastAPI app. Configuration is `_config`, auth and lookups `_state` and `_auth`.

Endpoints (DESIGN.md, Transports and HTTP API): `POST /invoke` (JSON, or SSE with
`stream: true`), `GET /runs/{id}/stream` (join or resume with `Last-Event-ID` / `?after=`),
`POST /runs/{id}/cancel`, `GET /runs/{id}`, `GET /sessions`, `GET`/`DELETE /sessions/{id}`,
`WS /ws`, `GET /healthz` (liveness), `GET /readyz` (the store answers), `GET /metrics`,
`GET /` (the web chat), `GET /openapi.json`, `GET /docs` (served without network, see `_pages`).
Runs live in a `RunManager`, independent of the connections that read them.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from starlette.middleware.cors import CORSMiddleware

from agentcast.encoders.sse import parse_last_event_id
from agentcast.ids import session_id_in
from agentcast.runtime import ManagedRun, TokenBuffer
from agentcast.server._agui import agui_router
from agentcast.server._config import ServedAgent, ServerConfig
from agentcast.server._errors import error_responses, install_error_handlers
from agentcast.server._limits import RequestLimits
from agentcast.server._pages import docs_app, pages_router
from agentcast.server._requests import InvokeRequest, StreamOptions
from agentcast.server._state import ServerState, not_found
from agentcast.server._stream import EventStreamResponse, event_stream, native_projection
from agentcast.server._vercel import vercel_router
from agentcast.server._ws import serve_websocket
from agentcast.sessions import SessionStore

__all__ = ["AgentcastServer", "InvokeRequest", "ServedAgent", "ServerConfig", "create_app"]


class AgentcastServer(ServerState):
    """The server's state and its router (`router` mounts the endpoints into any FastAPI app).

    Args:
        runner: the agent to serve (an `agentcast.Runner`: `agentcast.wrap(...)` makes one).
        store: the session store (default: the runner's own).
        config: behaviour (policies, auth, limits).
    """

    def __init__(
        self,
        runner: ServedAgent,
        *,
        store: SessionStore | None = None,
        config: ServerConfig | None = None,
    ) -> None:
        super().__init__(runner, store=store, config=config)
        self.router = self._build_router()

    def _build_router(self) -> APIRouter:
        router = APIRouter()
        server = self

        async def actor(request: Request) -> str | None:
            return server.actor(request.headers.get("authorization"))

        @router.post(
            "/invoke",
            summary="Run the agent (JSON result, or SSE with stream=true)",
            responses=error_responses(400, 401, 404, 408, 409, 413, 422, 503),
        )
        async def invoke(body: InvokeRequest, who: str | None = Depends(actor)) -> Response:
            await server.health.ensure()
            server.ensure_broker()
            managed = await server.start_run(
                body.prompt,
                session_id=body.session_id,
                actor_id=who or body.actor_id,
                custom_data=body.custom_data,
                owner=who,
            )
            run = managed.run
            if body.stream:
                options = body.stream_options or StreamOptions()
                return server._sse(
                    managed, after=-1, stream_tokens=body.stream_tokens, buffer=options.buffer()
                )
            result = await run.wait()
            return JSONResponse(result.to_dict(), headers={"X-Run-Id": run.run_id})

        @router.get(
            "/runs/{run_id}/stream",
            summary="Join or resume a run's event stream (SSE)",
            responses=error_responses(400, 401, 404, 410, 422, 503),
        )
        async def stream(
            run_id: str,
            request: Request,
            after: str | None = None,
            stream_tokens: bool = True,
            buffer_size: Annotated[
                int, Query(ge=1, le=10_000, description="Tokens per llm_token event at most.")
            ] = 1,
            max_delay: Annotated[
                float | None, Query(gt=0, le=60, description="Seconds a buffered token may wait.")
            ] = None,
            who: str | None = Depends(actor),
        ) -> Response:
            managed = await server.find_run(run_id, who)
            header = request.headers.get("last-event-id")
            cursor = parse_last_event_id(after if header is None else header)
            options = StreamOptions(buffer_size=buffer_size, max_delay=max_delay)
            return server._sse(
                managed, after=cursor, stream_tokens=stream_tokens, buffer=options.buffer()
            )

        @router.post(
            "/runs/{run_id}/cancel",
            status_code=202,
            summary="Cancel a run",
            responses=error_responses(400, 401, 404, 408, 413, 422, 503),
        )
        async def cancel(run_id: str, who: str | None = Depends(actor)) -> dict[str, Any]:
            managed = await server.find_run(run_id, who)
            return {"run_id": run_id, "status": server.manager.cancel(managed)}

        @router.get(
            "/runs/{run_id}",
            summary="A run's status",
            responses=error_responses(400, 401, 404, 422, 503),
        )
        async def run_status(run_id: str, who: str | None = Depends(actor)) -> dict[str, Any]:
            managed = await server.find_run(run_id, who)
            run, result = managed.run, managed.run.result
            return {
                "run_id": run.run_id,
                "session_id": run.session_id,
                "status": "finished" if run.done else "running",
                "last_seq": run.log.next_seq - 1,
                "readers": managed.readers,
                # Readers at other workers (with a broker), as the executing worker knows them.
                "remote_readers": managed.remote_readers,
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
            store = server.session_store()
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
            store = server.session_store()
            messages = await store.load(server.session_key(session_id, who))
            if not messages:
                raise not_found("session", session_id)
            return {"session_id": session_id, "messages": messages}

        @router.delete(
            "/sessions/{session_id:path}",
            status_code=204,
            summary="Delete a session (409 while a run is in progress on it)",
            responses=error_responses(400, 401, 404, 409, 422, 503),
        )
        async def delete_session(session_id: str, who: str | None = Depends(actor)) -> Response:
            await server.delete_session(session_id, who)
            return Response(status_code=204)

        @router.websocket("/ws")
        async def websocket(ws: WebSocket) -> None:
            token = ws.query_params.get("token")
            header = ws.headers.get("authorization") or (f"Bearer {token}" if token else None)
            try:
                who = server.actor(header)
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

        router.include_router(agui_router(server))
        router.include_router(pages_router())
        router.include_router(vercel_router(server))
        return router

    def _sse(
        self,
        managed: ManagedRun,
        *,
        after: int,
        stream_tokens: bool,
        buffer: TokenBuffer | None = None,
    ) -> EventStreamResponse:
        # Ids follow the id rule (ASCII), so these headers always encode.
        headers = {"X-Run-Id": managed.run.run_id}
        if managed.run.session_id:
            headers["X-Session-Id"] = managed.run.session_id
        return event_stream(
            self.manager,
            managed,
            native_projection(),
            heartbeat=self.config.heartbeat,
            after=after,
            stream_tokens=stream_tokens,
            headers=headers,
            buffer=buffer,
            stats=self.metrics.writes,
            direct=self.direct_body,
        )


def create_app(runner: ServedAgent, *, store: SessionStore | None = None, **config: Any) -> FastAPI:
    """Return the ASGI app serving `runner`; `config` are `ServerConfig` fields.

    `runner` is an `agentcast.Runner` (an `Agent`, or what `agentcast.wrap(...)` returns for
    a graph or chain; `agentcast.default_agent()` is the demo agent): the server does not
    build agents.
    """
    server = AgentcastServer(runner, store=store, config=ServerConfig(**config))
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
    server.own_middleware = len(app.user_middleware)
    return app


def _version() -> str:
    from agentcast._version import __version__

    return __version__
