"""A scripted loopback HTTP/1.1 server for driving real provider SDKs without keys.

    async with ScriptedServer() as server:
        server.push(Reply(parts=[b"data: ...\\n\\n", ...]))
        model = ChatOpenAI(base_url=server.url("/v1"), ...)
        ...
        assert server.requests[0].json["stream"] is True

Each request pops the next scripted `Reply` (FIFO). Bodies are written part by part with a
flush (`drain`) after each part; there are no sleeps, the client reads the parts as a stream.
`Reply(cut_after=n)` writes the first n parts and then closes the socket without finishing the
body (no terminating zero-length chunk, or fewer bytes than the Content-Length announced).
A request that arrives with no scripted reply gets a 599 and makes the server raise on exit,
so a test cannot pass by accident when the client sent more requests than expected.
Only 127.0.0.1, on an ephemeral port.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

__all__ = ["RecordedRequest", "Reply", "ScriptedServer"]


@dataclass
class Reply:
    """One scripted response.

    Attributes:
        status: the HTTP status code.
        headers: response headers (Content-Length / Transfer-Encoding are added).
        parts: body parts, each written and flushed on its own (one HTTP chunk each).
        chunked: `Transfer-Encoding: chunked` (default) or a `Content-Length` body.
        cut_after: close the connection after this many parts, leaving the body unfinished.
    """

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    parts: list[bytes] = field(default_factory=list)
    chunked: bool = True
    cut_after: int | None = None

    @classmethod
    def json(cls, body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
        """A complete JSON response with a Content-Length."""
        return cls(
            status=status,
            headers={"Content-Type": "application/json", **(headers or {})},
            parts=[json.dumps(body).encode()],
            chunked=False,
        )


@dataclass
class RecordedRequest:
    """What the server received."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class ScriptedServer:
    """A loopback HTTP/1.1 server answering each request with the next scripted `Reply`."""

    def __init__(self, replies: Iterable[Reply] = ()) -> None:
        self.replies: deque[Reply] = deque(replies)
        self.requests: list[RecordedRequest] = []
        self.unscripted: list[RecordedRequest] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    def push(self, *replies: Reply) -> None:
        """Queue replies for the next requests, in order."""
        self.replies.extend(replies)

    def url(self, path: str = "") -> str:
        """The server's base URL, with an optional path prefix."""
        return f"http://127.0.0.1:{self.port}{path}"

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()  # the handler's next read sees EOF and returns
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
        if exc_type is None and self.unscripted:
            paths = [r.path for r in self.unscripted]
            raise AssertionError(f"requests with no scripted reply: {paths}")

    # -- connection handling --------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            while True:
                request = await self._read_request(reader)
                if request is None:
                    return
                self.requests.append(request)
                if self.replies:
                    reply = self.replies.popleft()
                else:
                    self.unscripted.append(request)
                    reply = Reply(status=599, parts=[b"no scripted reply"], chunked=False)
                if not await self._write_reply(writer, reply):
                    return  # connection cut on purpose
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            # asyncio.start_server logs a cancelled handler task as an error (3.11): end quietly.
            return
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)
            writer.close()

    async def _read_request(self, reader: asyncio.StreamReader) -> RecordedRequest | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None  # the client closed the connection between requests
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if headers.get("expect", "").lower() == "100-continue":
            raise AssertionError("Expect: 100-continue is not supported by the test server")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = bytearray()
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                data = await reader.readexactly(size + 2)
                if size == 0:
                    break
                body += data[:-2]
        else:
            body = bytearray(await reader.readexactly(int(headers.get("content-length", "0"))))
        return RecordedRequest(method=method, path=target, headers=headers, body=bytes(body))

    async def _write_reply(self, writer: asyncio.StreamWriter, reply: Reply) -> bool:
        """Write a reply; return False when the connection was cut on purpose."""
        try:
            reason = HTTPStatus(reply.status).phrase
        except ValueError:
            reason = "Unknown"
        head = [f"HTTP/1.1 {reply.status} {reason}"]
        head += [f"{name}: {value}" for name, value in reply.headers.items()]
        if reply.chunked:
            head.append("Transfer-Encoding: chunked")
        else:
            head.append(f"Content-Length: {sum(len(p) for p in reply.parts)}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        for n, part in enumerate(reply.parts):
            if reply.cut_after is not None and n >= reply.cut_after:
                break
            if reply.chunked:
                if not part:
                    continue  # an empty chunk would end the body
                writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            else:
                writer.write(part)
            await writer.drain()
        if reply.cut_after is not None:
            writer.close()
            return False
        if reply.chunked:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        return True
