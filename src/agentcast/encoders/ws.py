"""The WebSocket's frames (sans I/O): events with their full envelope, and the control frames.

Every frame is one JSON text message. An event is its canonical JSON (`events.to_json`: the
envelope with the payload under `data`), so a WebSocket client reads exactly what `to_json`
and `from_json` define. The server's own frames carry a `type` no event has:

    {"type": "run_started", "run_id", "session_id"}   a `start` message was accepted
    {"type": "cancel_status", "run_id", "status"}     the answer to `cancel` (as HTTP's)
    {"type": "pong"}                                  the answer to `ping`
    {"type": "heartbeat"}                             the run was silent for a while
    {"type": "ws_error", "code", "message"}           bad input; the socket stays open
"""

from __future__ import annotations

import json

from agentcast.events import BaseEvent, to_json

__all__ = [
    "HEARTBEAT_FRAME",
    "PONG_FRAME",
    "cancel_status_frame",
    "error_frame",
    "event_frame",
    "run_started_frame",
]

HEARTBEAT_FRAME = '{"type":"heartbeat"}'
"""Sent when the run was silent for the heartbeat interval."""

PONG_FRAME = '{"type":"pong"}'
"""The answer to a `ping` message."""


def event_frame(event: BaseEvent) -> str:
    """The frame of one event: its canonical JSON, full envelope."""
    return to_json(event).decode()


def run_started_frame(run_id: str, session_id: str | None) -> str:
    """The answer to an accepted `start` message."""
    return _compact({"type": "run_started", "run_id": run_id, "session_id": session_id})


def cancel_status_frame(run_id: str, status: str) -> str:
    """The answer to a `cancel` message (the same statuses as `POST /runs/{id}/cancel`)."""
    return _compact({"type": "cancel_status", "run_id": run_id, "status": status})


def error_frame(code: str, message: str) -> str:
    """Bad input on the socket, in the HTTP error body's terms; the socket stays open."""
    return _compact({"type": "ws_error", "code": code, "message": message})


def _compact(frame: dict[str, object]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)
