"""The Vercel AI SDK's chat endpoints: `POST /api/chat` and `GET /api/chat/{id}/stream`.

`useChat` (with `DefaultChatTransport`, whose default `api` is `/api/chat`) posts
`{id, messages: UIMessage[], trigger, messageId?, ...}` and reads the UI message stream
(`agentcast.encoders.vercel`). The chat id is the session id; the run answers from the
messages the client sent (`Runner.start(history=...)`) and still saves the turn to the
session. `useChat({resume: true})` reconnects with `GET /api/chat/{id}/stream`: the chat's
run in progress, replayed from its start (the SDK rebuilds the message from the whole
stream), or 204 when none is in progress.

A new request on a chat whose previous run is still going (the user pressed stop, which in
the SDK only drops the connection, or sent again) supersedes it: the previous run is
cancelled, its partial answer saved, and the new one starts. So a request right after the
previous one is never refused as busy, whatever the session policy.

Security is the rest of the API's: the caller's owner (`ServerState.actor`), the id rule
(`check_id`) on the chat id, the request limits and the one error shape.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from agentcast.encoders.vercel import DONE, HEADERS, VercelEncoder, frame
from agentcast.encoders.vercel_input import TRIGGERS, chat_turn
from agentcast.ids import ID_ALPHABET, check_id
from agentcast.runtime import ManagedRun
from agentcast.server._errors import error_responses
from agentcast.server._state import ServerState
from agentcast.server._stream import EncoderProjection, EventStreamResponse, event_stream

__all__ = ["ChatRequest", "vercel_router"]


class ChatRequest(BaseModel):
    """The body `useChat`'s `DefaultChatTransport` posts (other fields are ignored)."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(description=f"The chat id, used as the session id: 1-128 of {ID_ALPHABET}.")
    messages: list[dict[str, Any]] = Field(
        description="The whole conversation as UI messages ({id, role, parts}); the last is"
        " the user's.",
        min_length=1,
    )
    trigger: str = Field(
        default="submit-message",
        description=f"One of {', '.join(TRIGGERS)}; regenerate answers the last user"
        " message again.",
    )
    messageId: str | None = Field(  # noqa: N815 - the SDK's name
        default=None, description="The message being regenerated (informational)."
    )


def vercel_router(server: ServerState) -> APIRouter:
    """Return the router of `POST /api/chat` and `GET /api/chat/{id}/stream`."""
    router = APIRouter()

    async def actor(request: Request) -> str | None:
        return server.actor(request.headers.get("authorization"))

    @router.post(
        "/api/chat",
        summary="Vercel AI SDK useChat: the UI message stream of a new answer",
        responses=error_responses(400, 401, 408, 413, 422, 503),
    )
    async def chat(body: ChatRequest, who: str | None = Depends(actor)) -> Response:
        chat_id = check_id(body.id, "id")
        turn = chat_turn(body.messages, body.trigger)
        await server.health.ensure()
        # Supersede the chat's run in progress, if any (see the module docstring); no await
        # between the last check and `start`, so no other request can slip in between.
        while (previous := server.manager.active(chat_id, owner=who)) is not None:
            server.manager.cancel(previous)
            await previous.run.wait()
        managed = await server.start_run(
            turn.prompt,
            session_id=chat_id,
            actor_id=who,
            owner=who,
            history=turn.history,
            policy="interrupt",  # across workers too: a new answer supersedes the old one
        )
        return _stream(server, managed)

    @router.get(
        "/api/chat/{chat_id}/stream",
        summary="Vercel AI SDK resume: the chat's run in progress, from its start (204: none)",
        status_code=200,
        responses={
            204: {"description": "No run is in progress on this chat."},
            **error_responses(400, 401, 410, 422, 503),
        },
    )
    async def resume(chat_id: str, who: str | None = Depends(actor)) -> Response:
        managed = await server.active_run(check_id(chat_id, "id"), who)
        if managed is None:
            return Response(status_code=204)
        return _stream(server, managed)

    return router


def _stream(server: ServerState, managed: ManagedRun) -> EventStreamResponse:
    """The run's events from its start, as the UI message stream."""
    run = managed.run
    metadata = {"runId": run.run_id, "sessionId": run.session_id}
    encoder = VercelEncoder(message_id=run.run_id, metadata=metadata)
    return event_stream(
        server.manager,
        managed,
        EncoderProjection(encoder, frame, trailer=DONE),
        heartbeat=server.config.heartbeat,
        stats=server.metrics.writes,
        direct=server.direct_body,
        headers=dict(HEADERS, **{"X-Run-Id": run.run_id}),
    )
