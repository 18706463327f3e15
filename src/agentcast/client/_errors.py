"""The client's `StreamError`; the rest of its errors live in `agentcast.errors` (drawn there).

`StreamError` stays here because it is also an `httpx_sse.SSEError`, and `agentcast.errors`
imports nothing outside the standard library. The other names are re-exported for the
imports of today (`from agentcast.client import NotFound`).
"""

from __future__ import annotations

import httpx_sse

from agentcast.errors import (
    ClientError,
    ConnectionLost,
    NotFound,
    ServerError,
    ServerUnreachable,
    Unauthorized,
)

__all__ = [
    "ClientError",
    "ConnectionLost",
    "NotFound",
    "ServerError",
    "ServerUnreachable",
    "StreamError",
    "Unauthorized",
]


class StreamError(ClientError, httpx_sse.SSEError):
    """The response is not an agentcast event stream (content type, undecodable event).

    Also an `httpx_sse.SSEError` (an `httpx.TransportError`), as httpx-sse raises for a wrong
    content type.
    """

    code = "stream_error"
