"""Request limits applied before any route runs: body size and body read time.

The whole body is read here, then replayed to the app. Reading it first is what makes the
limits hold however the body is sent (a `Content-Length`, or chunks) and whoever reads it
(FastAPI parses a JSON body before the route runs and turns any failure of the read into a
400): over `max_bytes` answers 413, a body that does not arrive within `timeout` answers 408,
both with `Connection: close` and the documented error shape. The API's bodies are small JSON
documents, so buffering them costs nothing.

An oversized body is still read, and dropped, up to `_DRAIN_BYTES` more: a client that is
still sending when the server closes gets a TCP reset instead of its 413.
"""

from __future__ import annotations

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentcast.server._errors import error_response

__all__ = ["RequestLimits"]

_CLOSE = {"Connection": "close"}
_DRAIN_BYTES = 4_000_000


class RequestLimits:
    """ASGI middleware: a request body must fit `max_bytes` and arrive within `timeout` s.

    Args:
        app: the ASGI app.
        max_bytes: larger bodies get 413.
        timeout: seconds the whole body may take to arrive; slower ones get 408.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read and check the body, then call the app with it replayed."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            if int(declared) <= self.max_bytes + _DRAIN_BYTES:
                await self._drain(receive)
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        with anyio.move_on_after(self.timeout) as deadline:
            while True:
                message = await receive()
                if message["type"] != "http.request":  # the client left mid-body
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_bytes:
                    if message.get("more_body", False):
                        await self._drain(receive)
                    await self._too_large(scope, receive, send)
                    return
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        if deadline.cancelled_caught:
            await error_response(
                408,
                "request_timeout",
                f"the request body did not arrive within {self.timeout:g} s",
                _CLOSE,
            )(scope, receive, send)
            return
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:  # then what the connection says next (a disconnect)
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _drain(self, receive: Receive) -> None:
        dropped = 0
        with anyio.move_on_after(self.timeout):
            while dropped <= _DRAIN_BYTES:
                message = await receive()
                dropped += len(message.get("body", b""))
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"the body exceeds {self.max_bytes} bytes"
        await error_response(413, "body_too_large", message, _CLOSE)(scope, receive, send)
