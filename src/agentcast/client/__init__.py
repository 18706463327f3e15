"""The Python client of an agentcast server: runs as the same events as the in-process API.

`AsyncClient` (async first) and `Client` (a blocking wrapper around it) start runs, stream
their events with transparent resume after a broken connection (`Last-Event-ID`, bounded
retries, no lost or duplicated event), cancel runs, and read or delete session history.

This layer imports httpx, httpx-sse, anyio, `agentcast.encoders` (the SSE codec),
`agentcast.events` and `agentcast.errors` only.
"""

from agentcast.client._async import AsyncClient
from agentcast.client._errors import (
    ClientError,
    ConnectionLost,
    NotFound,
    ServerError,
    ServerUnreachable,
    StreamError,
    Unauthorized,
)
from agentcast.client._stream import EventStream
from agentcast.client._sync import Client, SyncEventStream

__all__ = (
    "AsyncClient",
    "Client",
    "ClientError",
    "ConnectionLost",
    "EventStream",
    "NotFound",
    "ServerError",
    "ServerUnreachable",
    "StreamError",
    "SyncEventStream",
    "Unauthorized",
)
