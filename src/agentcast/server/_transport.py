"""Slow-client deadlines at the connection level, for the uvicorn server `agentcast serve` runs.

uvicorn (tested with 0.54) bounds only the idle time between two requests
(`timeout_keep_alive`): a client that sends half its headers, and one that stops reading a
response, hold their connection forever. Neither can be seen from ASGI (the app is called
only once the headers are complete; a send to a stopped reader just waits for the buffer to
drain), so the deadlines live in the protocol, where asyncio reports both:

- header deadline: a request's headers must be complete `header_timeout` seconds after its
  first byte (or after the connection opened); otherwise the connection is closed. The body
  then has its own deadline (`RequestLimits`, a 408).
- send deadline: when the transport's write buffer is over its high-water mark, asyncio calls
  `pause_writing()`; if it does not drain (`resume_writing()`) within `send_timeout` seconds,
  the connection is aborted. The stuck send returns, the response ends, the stream's reader
  slot is freed; the run itself never waited on the socket (its log absorbs the output).

Nothing runs per token: one timer while a request head is arriving, one while a write is
stalled.

The same protocol offers event streams a faster way out (`DirectBody`): an SSE response sends
its head through ASGI as usual, then writes each chunk of its body straight to the transport,
framed as HTTP chunks, instead of an ASGI message that two middleware wrappers, uvicorn's
`send` and h11's event machinery each handle per token (about a fifth of the server's CPU per
token at 1,000 streams). It also takes the response out of the ASGI call (`take_over`): the
app returns after the head, so an open stream keeps no request task and middleware chain
alive. uvicorn's cycle counts the response as complete meanwhile; the protocol corrects
what that would change (a graceful shutdown keeps the connection until the body's end, a
lost connection is reported to the stream: `DirectBody.on_lost`), and the body's end goes
through uvicorn's own `send`, so h11 writes the last chunk and the connection's keep-alive
state stays right.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

__all__ = ["DIRECT_BODY", "DirectBody", "deadline_protocols", "direct_body_of", "uvicorn_config"]

_CYCLE = (
    "flow",
    "transport",
    "scope",
    "response_started",
    "response_complete",
    "on_response",
    "send",
    "keep_alive",
)
"""What `DirectBody` reads of uvicorn's h11 request cycle: without one of them (another
uvicorn), the protocol offers no direct body and streams take the ASGI path."""

_logger = logging.getLogger("agentcast.server")

_TAKEN_OVER: set[asyncio.Task[None]] = set()
"""The bodies being written outside their ASGI call (`DirectBody.take_over`)."""

DIRECT_BODY = "agentcast.direct_body"
"""The scope extension under which the protocol offers a request's `DirectBody`."""


class DirectBody:
    """Writes an HTTP/1.1 chunked response body straight to the transport, one call per chunk.

    What uvicorn's h11 `send` does for a body message, minus the per-message work: h11 keeps
    no count of a chunked body, so skipping it for the chunks between the head and the end
    leaves its state right. Flow control is uvicorn's own (`cycle.flow`): a write over the
    transport's high-water mark returns the wait for it to drain, and the send deadline
    (`_SendDeadline`) still aborts a client that never reads.

    `take_over` moves the rest of the response out of the ASGI call: the app returns, and
    the request's task with the two dozen middleware and routing coroutines it is suspended
    in (about half of what an open stream keeps alive) is freed while the body goes on in a
    task of its own; `end` then sends the last chunk through uvicorn's own `send`, which
    completes the cycle as if the app had.
    """

    __slots__ = ("_cycle", "_ending", "_flow", "_lost", "_write", "on_lost")

    def __init__(self, cycle: Any) -> None:
        self._cycle = cycle
        self._flow = cycle.flow
        self._write = cycle.transport.write
        self._lost = False
        self._ending: Callable[[], None] | None = None
        self.on_lost: Callable[[], object] | None = None
        """Called once when the connection is lost while set: how a stream written outside
        the ASGI call learns of the client's leaving without a task waiting on `receive`
        (the protocol's `connection_lost` calls it)."""

    def usable(self) -> bool:
        """Whether the response's head went out and h11 frames its body as chunks.

        h11 chunks a response without Content-Length to an HTTP/1.1 client; an HTTP/1.0
        client (close-delimited body) or a HEAD request takes the ASGI path.
        """
        cycle = self._cycle
        scope = cycle.scope
        return (
            cycle.response_started
            and not cycle.response_complete
            and scope["http_version"] == "1.1"
            and scope["method"] != "HEAD"
        )

    @property
    def disconnected(self) -> bool:
        """Whether the client has gone (what is written then is dropped).

        The protocol that offers a `DirectBody` reports every lost connection (`lost`), also
        while uvicorn's cycle counts the response as complete and so no longer notes it.
        """
        return self._lost

    @property
    def taken_over(self) -> bool:
        """Whether the body is being written outside the ASGI call (`take_over`, not `end`)."""
        return self._ending is not None

    def lost(self) -> None:
        """The connection was lost: tell the stream that asked (`on_lost`), once."""
        self._lost = True
        on_lost, self.on_lost = self.on_lost, None
        if on_lost is not None:
            on_lost()

    def take_over(self, body: Coroutine[Any, Any, None]) -> None:
        """Write the rest of the response in a task of its own, once the ASGI call returns.

        uvicorn's cycle is told its response is complete, so the app's return ends its task
        quietly; `end` undoes that before the last chunk. Meanwhile the protocol keeps the
        connection open at a graceful shutdown and reports its loss (`on_lost`).
        """
        cycle = self._cycle
        self._ending = cycle.on_response  # the protocol's; uvicorn drops it when the app returns
        cycle.response_complete = True
        task = asyncio.get_running_loop().create_task(self._own(body))
        _TAKEN_OVER.add(task)  # the loop holds tasks weakly
        task.add_done_callback(_TAKEN_OVER.discard)

    async def _own(self, body: Coroutine[Any, Any, None]) -> None:
        try:
            await body
        except Exception:  # what uvicorn does with an app's error after the head: log, close
            _logger.exception("Exception in an event stream")
            self._cycle.transport.close()

    async def end(self) -> None:
        """Send the body's last chunk through uvicorn's `send`: the cycle completes there."""
        cycle, ending = self._cycle, self._ending
        if ending is None:
            raise RuntimeError("end() without take_over()")
        self._ending = None
        if self.disconnected:
            return
        cycle.response_complete = False
        cycle.on_response = ending
        await cycle.send({"type": "http.response.body", "body": b"", "more_body": False})

    def write(self, data: bytes) -> Awaitable[None] | None:
        """Write one chunk; return the wait for the transport to drain, or None (no wait)."""
        if self._lost:  # `disconnected`, without a property call per token
            return None
        self._write(b"%x\r\n%b\r\n" % (len(data), data))
        flow = self._flow
        return flow.drain() if flow.write_paused else None


def direct_body_of(scope: Any) -> DirectBody | None:
    """The `DirectBody` the protocol offered a request (its scope's extension), or None."""
    body = scope.get("extensions", {}).get(DIRECT_BODY)
    return body if isinstance(body, DirectBody) else None


def _taken_over(cycle: Any) -> bool:
    """Whether the cycle's body is being written outside its ASGI call (not complete)."""
    body = direct_body_of(cycle.scope)
    return body is not None and body.taken_over


class _SendDeadline(asyncio.Protocol):
    """Aborts the connection when a write stays stalled for `send_timeout` seconds."""

    send_timeout: float
    _stall: asyncio.TimerHandle | None = None

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall is None:
            transport: Any = self.transport  # type: ignore[attr-defined]
            loop = asyncio.get_running_loop()
            self._stall = loop.call_later(self.send_timeout, transport.abort)

    def resume_writing(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        super().resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        super().connection_lost(exc)


class _HeaderDeadline(_SendDeadline):
    """Closes a connection whose request headers take over `header_timeout` seconds.

    A request's headers are complete when uvicorn created the request's cycle (`self.cycle`,
    in both its h11 and httptools protocols) or handed the connection to a WebSocket protocol.
    """

    header_timeout: float
    direct_body: bool = False
    _head: asyncio.TimerHandle | None = None
    _cycle: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._start_head()

    def data_received(self, data: bytes) -> None:
        cycle = getattr(self, "cycle", None)
        if self._head is None and (
            cycle is None or (cycle.response_complete and not _taken_over(cycle))
        ):
            self._start_head()  # the first bytes of the next request on a kept-alive connection
        super().data_received(data)  # type: ignore[safe-super]
        if self.direct_body:
            self._offer_direct_body()
        self._check_head()

    def _offer_direct_body(self) -> None:
        # A request whose head is complete has a cycle; its app task has not run yet (it was
        # only scheduled), so the extension is in the scope before the app reads it.
        cycle = getattr(self, "cycle", None)
        if (
            cycle is not None
            and cycle is not self._cycle
            and all(hasattr(cycle, name) for name in _CYCLE)
        ):
            extensions = cycle.scope.setdefault("extensions", {})
            extensions.setdefault(DIRECT_BODY, DirectBody(cycle))

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head()
        super().connection_lost(exc)
        cycle = getattr(self, "cycle", None)
        body = None if cycle is None else direct_body_of(cycle.scope)
        if body is not None:
            body.lost()

    def shutdown(self) -> None:
        # A body written outside its ASGI call is not complete, whatever uvicorn's cycle
        # says: it ends as an unfinished response does, at its end, with the connection.
        cycle = getattr(self, "cycle", None)
        if cycle is not None and _taken_over(cycle):
            cycle.keep_alive = False
            return
        super().shutdown()  # type: ignore[misc]

    def _start_head(self) -> None:
        self._cycle = getattr(self, "cycle", None)
        loop = asyncio.get_running_loop()
        self._head = loop.call_later(self.header_timeout, self._head_expired)

    def _stop_head(self) -> None:
        if self._head is not None:
            self._head.cancel()
            self._head = None

    def _head_done(self) -> bool:
        transport: Any = self.transport  # type: ignore[attr-defined]
        return transport.get_protocol() is not self or getattr(self, "cycle", None) is not (
            self._cycle
        )

    def _check_head(self) -> None:
        if self._head is not None and self._head_done():
            self._stop_head()

    def _head_expired(self) -> None:
        self._head = None
        if not self._head_done():
            transport: Any = self.transport  # type: ignore[attr-defined]
            transport.abort()


def deadline_protocols(
    http: type[asyncio.Protocol],
    ws: type[asyncio.Protocol] | None,
    *,
    header_timeout: float,
    send_timeout: float,
    direct_body: bool = False,
) -> tuple[type[asyncio.Protocol], type[asyncio.Protocol] | None]:
    """Return uvicorn protocol classes with the header and send deadlines added.

    Args:
        http: uvicorn's HTTP protocol class (e.g. `H11Protocol`).
        ws: its WebSocket protocol class, or None.
        header_timeout: seconds a request's headers may take to arrive.
        send_timeout: seconds a write may stay stalled on a client that does not read.
        direct_body: offer event streams a `DirectBody` (h11's protocol only).
    """
    timeouts = {"header_timeout": header_timeout, "send_timeout": send_timeout}
    direct = {"direct_body": direct_body and http.__name__ == "H11Protocol"}
    http_class = type(f"Deadline{http.__name__}", (_HeaderDeadline, http), timeouts | direct)
    ws_class = None if ws is None else type(f"Deadline{ws.__name__}", (_SendDeadline, ws), timeouts)
    return http_class, ws_class


def uvicorn_config(app: Any, *, host: str, port: int, **options: Any) -> Any:
    """Return a `uvicorn.Config` serving an agentcast app with its slow-client deadlines.

    The deadlines come from the app's `ServerConfig` (`header_timeout`, `send_timeout`);
    `options` go to `uvicorn.Config` unchanged.
    """
    import uvicorn
    from uvicorn.config import HTTP_PROTOCOLS, WS_PROTOCOLS
    from uvicorn.importer import import_from_string

    settings = app.state.agentcast.config
    ws_name = WS_PROTOCOLS[options.pop("ws", "auto")]
    http, ws = deadline_protocols(
        import_from_string(HTTP_PROTOCOLS[options.pop("http", "auto")]),
        None if ws_name is None else import_from_string(ws_name),
        header_timeout=settings.header_timeout,
        send_timeout=settings.send_timeout,
        direct_body=settings.direct_body,
    )
    return uvicorn.Config(app, host=host, port=port, http=http, ws=ws or "none", **options)
