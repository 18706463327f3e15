"""The errors of the HTTP client, in agentcast's one exception tree.

```
AgentcastError
├── UserError
│   ├── InvalidInput            400 / 413 / 422, and 410 (resume point no longer retained)
│   └── (NotFound, Unauthorized below are also UserErrors: fix the id or the key)
├── SessionError
│   └── SessionBusy             409: a run is already active on the session
└── ClientError                 talking to an agentcast server failed
    ├── ServerUnreachable       no connection to the server's URL (refused, DNS, connect timeout)
    ├── ConnectionLost          a connection broke and the run's stream could not be resumed
    ├── StreamError             the response is not an agentcast event stream (also an SSEError)
    ├── ServerError             the server answered 5xx
    ├── NotFound                404: no such run or session (or another key's)
    └── Unauthorized            401 / 403: a missing or wrong API key
```

The server's error body is `{"error": {"code", "message"}}`; its `code` becomes the error's
`code`, its `message` the error's message.
"""

from __future__ import annotations

import httpx_sse

from agentcast.errors import AgentcastError, UserError

__all__ = [
    "ClientError",
    "ConnectionLost",
    "NotFound",
    "ServerError",
    "ServerUnreachable",
    "StreamError",
    "Unauthorized",
]


class ClientError(AgentcastError):
    """Talking to an agentcast server failed.

    Attributes:
        status_code: the HTTP status the server answered with, when it answered.
        url: the URL of the request that failed.
    """

    code = "client_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.status_code = status_code
        self.url = url


class ServerUnreachable(ClientError):
    """No connection could be made to the server (refused, unknown host, connect timeout)."""

    code = "server_unreachable"


class ConnectionLost(ClientError):
    """A connection broke and the run's event stream could not be resumed.

    Raised when the reconnect attempts are used up, when the server no longer knows the run,
    or when the connection of `POST /invoke` broke before the server named the run.

    Attributes:
        run_id: the run whose stream was lost (None when the server never named it).
        last_seq: the last event seq delivered before the loss (-1: none).
    """

    code = "connection_lost"

    def __init__(
        self,
        message: str,
        *,
        run_id: str | None = None,
        last_seq: int = -1,
        url: str | None = None,
    ) -> None:
        super().__init__(message, url=url)
        self.run_id = run_id
        self.last_seq = last_seq


class StreamError(ClientError, httpx_sse.SSEError):
    """The response is not an agentcast event stream (content type, undecodable event).

    Also an `httpx_sse.SSEError` (an `httpx.TransportError`), as httpx-sse raises for a wrong
    content type.
    """

    code = "stream_error"


class ServerError(ClientError):
    """The server answered with a 5xx status."""

    code = "server_error"


class NotFound(ClientError, UserError):
    """404: the server has no such run or session, or it belongs to another API key."""

    code = "not_found"


class Unauthorized(ClientError, UserError):
    """401/403: the server requires an API key (`api_key=`) and got none or a wrong one."""

    code = "unauthorized"
