"""The body of `POST /invoke` (and of a WebSocket `start` message): the run payload, and `stream`.

The fields, their schema and their 422 messages are the run payload's (`RunPayload`, the one
rule the library's `stream_agent`/`invoke_agent` apply too); only `stream` is the server's own.
"""

from __future__ import annotations

from pydantic import Field, StrictBool

from agentcast.runtime._payload import RunPayload

__all__ = ["InvokeRequest"]


class InvokeRequest(RunPayload):
    """The body of `POST /invoke` (and of a WebSocket `start` message)."""

    stream: StrictBool = Field(
        default=False, description="true: SSE events; false: one JSON result."
    )
