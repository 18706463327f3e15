"""The WebSocket endpoint: the same events as JSON frames, with control messages.

Client -> server: `{"type": "start", "prompt", "session_id"?, ...}` (the `/invoke` body),
`{"type": "resume", "run_id", "after"?}`, `{"type": "cancel", "run_id"?}`, `{"type": "ping"}`.
Server -> client: every event as its canonical JSON (`{"v": 1, "type": "llm_token", ...}`), and
`run_started`, `cancel_status` (`{"run_id", "status": "cancelling" | "finished"}`, the body of
`POST /runs/{id}/cancel`), `pong`, `ws_error` frames, whose types never collide with events'.
One socket follows one run at a time; starting or resuming another switches to it.

A message is answered the way the HTTP route for the same thing answers: the same id rule,
the same resume-cursor parser and resume check, the same cancel answer, the same ownership. A
bad message gets a `ws_error` frame and the socket stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

from fastapi import WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from agentcast.encoders.sse import parse_last_event_id
from agentcast.encoders.ws import (
    HEARTBEAT_FRAME,
    PONG_FRAME,
    cancel_status_frame,
    error_frame,
    event_frame,
    run_started_frame,
)
from agentcast.errors import AgentcastError
from agentcast.runtime import ManagedRun
from agentcast.server._requests import InvokeRequest, StreamOptions
from agentcast.server._stream import HEARTBEAT, check_resume, read_events

if TYPE_CHECKING:
    from agentcast.server._state import ServerState

__all__ = ["serve_websocket"]


async def serve_websocket(ws: WebSocket, server: ServerState, who: str | None) -> None:
    """Serve one WebSocket connection until it closes."""
    await ws.accept()
    following: tuple[ManagedRun, asyncio.Task[None]] | None = None

    def stop_following() -> None:
        nonlocal following
        if following is not None:
            following[1].cancel()
            following = None

    async def follow(
        managed: ManagedRun, after: int, stream_tokens: bool, options: StreamOptions | None
    ) -> None:
        buffer = options.buffer() if options is not None else None
        with server.manager.reader(managed):
            events = read_events(
                managed.run.log,
                after=after,
                heartbeat=server.config.heartbeat,
                stream_tokens=stream_tokens,
            )
            async for item in events if buffer is None else buffer.events(events):  # type: ignore[arg-type]
                if item is HEARTBEAT:
                    await ws.send_text(HEARTBEAT_FRAME)
                else:
                    await ws.send_text(event_frame(item))  # type: ignore[arg-type]

    try:
        while True:
            try:
                # RecursionError: a deeply nested array is bad input too, not a dead socket.
                message: Any = json.loads(await ws.receive_text())
            except (ValueError, KeyError, RecursionError):
                await _send_error(ws, "invalid_input", "every message must be a JSON object")
                continue
            kind = message.get("type") if isinstance(message, dict) else None
            try:
                if kind == "start":
                    body = InvokeRequest.model_validate(message)
                    await server.health.ensure()
                    managed = await server.start_run(
                        body.prompt,
                        session_id=body.session_id,
                        actor_id=who or body.actor_id,
                        custom_data=body.custom_data,
                        owner=who,
                    )
                    stop_following()
                    await ws.send_text(
                        run_started_frame(managed.run.run_id, managed.run.session_id)
                    )
                    following = (
                        managed,
                        asyncio.create_task(
                            follow(managed, -1, body.stream_tokens, body.stream_options)
                        ),
                    )
                elif kind == "resume":
                    managed = await server.find_run(str(message.get("run_id")), who)
                    after = parse_last_event_id(message.get("after"))
                    options = _options(message.get("stream_options"))
                    check_resume(managed.run.log, after)
                    stop_following()
                    following = (
                        managed,
                        asyncio.create_task(
                            follow(
                                managed, after, bool(message.get("stream_tokens", True)), options
                            )
                        ),
                    )
                elif kind == "cancel":
                    target = message.get("run_id") or (
                        following[0].run.run_id if following else None
                    )
                    managed = await server.find_run(str(target), who)
                    status = server.manager.cancel(managed)
                    await ws.send_text(cancel_status_frame(managed.run.run_id, status))
                elif kind == "ping":
                    await ws.send_text(PONG_FRAME)
                else:
                    await _send_error(
                        ws,
                        "invalid_input",
                        f"unknown message type {kind!r}; use start, resume, cancel or ping",
                    )
            except ValidationError as exc:
                await _send_error(
                    ws,
                    "invalid_input",
                    "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()),
                )
            except AgentcastError as exc:
                await _send_error(ws, exc.code, exc.message)
            except Exception as exc:  # noqa: BLE001 - HTTPException and friends
                detail = getattr(exc, "detail", None)
                if isinstance(detail, dict):
                    await _send_error(ws, str(detail.get("code")), str(detail.get("message")))
                else:
                    raise
    except WebSocketDisconnect:
        pass
    finally:
        stop_following()


async def _send_error(ws: WebSocket, code: str, message: str) -> None:
    with contextlib.suppress(Exception):
        await ws.send_text(error_frame(code, message))


def _options(value: Any) -> StreamOptions | None:
    """A resume message's `stream_options` (validated like `POST /invoke`'s)."""
    return None if value is None else StreamOptions.model_validate(value)
