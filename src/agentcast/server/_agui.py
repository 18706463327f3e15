"""`POST /agui`: AG-UI's `RunAgentInput` in, AG-UI events out as SSE (`@ag-ui/client` 1.0).

The route goes through what `/invoke` goes through: the caller's API-key owner
(`RunManager.start(owner=...)`), the id rule on `threadId` and `runId`, the request limits
and the one error shape, the session policy, the store's health, and the disconnect policy
(the run outlives a dropped connection per `ServerConfig.disconnect`). It reads the run's
events with the same `LogReader` as the native stream and frames them with
`agentcast.encoders.agui`.

`threadId` is the session id; the AG-UI `runId` is the agentcast run id too (unless the server
already knows that id: then the run gets a fresh one, sent in `X-Run-Id`), so
`POST /runs/{runId}/cancel` stops the run the client is reading.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from agentcast.encoders.agui import AGUIEncoder, frame
from agentcast.ids import check_id
from agentcast.runtime import ManagedRun
from agentcast.server._agui_input import AguiRunInput, custom_data_of, turn_of
from agentcast.server._errors import error_responses
from agentcast.server._state import ServerState
from agentcast.server._stream import EncoderProjection, EventStreamResponse, event_stream

__all__ = ["agui_router"]

_EVENT_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "AG-UI events, one `data: <json>` SSE message each.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


def agui_router(server: ServerState) -> APIRouter:
    """Return the router holding `POST /agui` for `server`."""
    router = APIRouter()

    async def actor(request: Request) -> str | None:
        return server.actor(request.headers.get("authorization"))

    @router.post(
        "/agui",
        summary="Run the agent for an AG-UI client (RunAgentInput in, AG-UI events out)",
        response_class=EventStreamResponse,
        responses={**_EVENT_STREAM, **error_responses(400, 401, 408, 409, 413, 422, 503)},
    )
    async def agui(body: AguiRunInput, who: str | None = Depends(actor)) -> EventStreamResponse:
        thread_id = check_id(body.thread_id, "threadId")
        run_id = check_id(body.run_id, "runId")
        prompt, history = turn_of(body)
        await server.health.ensure()
        managed = await server.start_run(
            prompt,
            session_id=thread_id,
            actor_id=who,
            custom_data=custom_data_of(body),
            owner=who,
            history=history,
            run_id=run_id,
        )
        return _stream(server, managed, AGUIEncoder(thread_id, run_id))

    return router


def _stream(server: ServerState, managed: ManagedRun, encoder: AGUIEncoder) -> EventStreamResponse:
    # A reader that falls behind the bounded log ends with the encoder's RUN_ERROR.
    return event_stream(
        server.manager,
        managed,
        EncoderProjection(encoder, frame),
        heartbeat=server.config.heartbeat,
        stats=server.metrics.writes,
        direct=server.direct_body,
        headers={"X-Run-Id": managed.run.run_id, "X-Session-Id": encoder.thread_id},
    )
