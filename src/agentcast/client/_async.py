"""`AsyncClient`: an agentcast server's runs, as the same event objects as the in-process API.

    async with AsyncClient("http://127.0.0.1:8000") as client:
        async with client.stream("What is 25 * 4?", session_id="s1") as events:
            async for event in events:
                ...

The client's three parts: this module holds the API (runs, sessions, health), `_stream` reads
one run's events and resumes a broken stream (`EventStream`), `_http` is the connection they
share (timeouts, the error each failed request is).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx

from agentcast.client._http import Connection, quote
from agentcast.client._stream import EventStream, Reconnect, StreamRequest, join_request
from agentcast.errors import ConfigError

__all__ = ["AsyncClient", "EventStream"]


class AsyncClient:
    """An async client of an agentcast server (`agentcast serve`, `create_app`).

    Args:
        base_url: the server's URL, e.g. `http://127.0.0.1:8000`.
        api_key: sent as `Authorization: Bearer <key>` when the server requires keys.
        timeout: seconds to connect, and to wait for a request that answers at once.
        read_timeout: seconds of silence after which an event stream is taken for dead and
            resumed (the server sends a heartbeat every 15 s by default); None: no limit.
        max_reconnects: attempts to resume a broken stream in a row without receiving an
            event; the count starts again after each event received.
        backoff: seconds before the first resume attempt; doubled at each attempt after.
        max_backoff: the longest wait between two attempts.
        headers: extra headers sent with every request.
        transport: an httpx transport (e.g. `httpx.ASGITransport(app)` for an in-process
            server, `httpx.MockTransport` in tests).

    Raises:
        ConfigError: the URL is not http(s), or a retry setting is negative.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout: float | None = 30.0,
        read_timeout: float | None = 60.0,
        max_reconnects: int = 5,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._connection = Connection(
            base_url,
            api_key=api_key,
            timeout=timeout,
            read_timeout=read_timeout,
            headers=headers,
            transport=transport,
        )
        if max_reconnects < 0 or backoff < 0 or max_backoff < 0:
            raise ConfigError("max_reconnects, backoff and max_backoff must not be negative")
        self.base_url = self._connection.base_url
        self.max_reconnects = max_reconnects
        self.backoff = backoff
        self.max_backoff = max_backoff

    # -- runs ---------------------------------------------------------------------------------

    def stream(
        self,
        prompt: str,
        *,
        session_id: str | None = None,
        stream_tokens: bool = True,
        actor_id: str | None = None,
        custom_data: Any = None,
    ) -> EventStream:
        """Start a run (`POST /invoke`, `stream: true`) and iterate its events to `agent_end`.

        The events are those `Agent.astream` yields for the same run. `stream_tokens=False`
        leaves out `llm_token` events only.

        Raises:
            InvalidInput: the server refused the request (an empty prompt: 422).
            SessionBusy: a run is active on the session (409).
            Unauthorized: a key is required and missing or wrong (401).
            ServerUnreachable: no connection to the server.
            ConnectionLost: the stream broke and could not be resumed.
            StreamError: the response is not an agentcast event stream.
        """
        body = {
            "prompt": prompt,
            "session_id": session_id,
            "actor_id": actor_id,
            "stream": True,
            "stream_tokens": stream_tokens,
            "custom_data": custom_data,
        }
        return self._event_stream(
            StreamRequest("POST", "/invoke", body), stream_tokens=stream_tokens
        )

    def join(self, run_id: str, *, after: int = -1, stream_tokens: bool = True) -> EventStream:
        """Attach to a running or finished run and iterate its events with `seq > after`.

        Raises:
            NotFound: the server has no such run (unknown, expired, another key's).
            InvalidInput: `after` is past the run's end, or no longer retained (410).
        """
        return self._event_stream(
            join_request(run_id, stream_tokens),
            run_id=run_id,
            after=after,
            stream_tokens=stream_tokens,
        )

    async def invoke(
        self,
        prompt: str,
        *,
        session_id: str | None = None,
        actor_id: str | None = None,
        custom_data: Any = None,
    ) -> dict[str, Any]:
        """Run the agent to its end (`POST /invoke`, `stream: false`) and return the result.

        Returns:
            `{output, session_id, run_id, steps, metrics, outcome, error}`; a failed run is a
            result with `outcome` "error", not an exception.
        """
        body = {
            "prompt": prompt,
            "session_id": session_id,
            "actor_id": actor_id,
            "stream": False,
            "custom_data": custom_data,
        }
        response = await self._connection.send("POST", "/invoke", json=body, whole_run=True)
        result: dict[str, Any] = response.json()
        return result

    async def cancel(self, run_id: str) -> dict[str, Any]:
        """Cancel a run; it ends with its closers and `agent_end(outcome="cancelled")`.

        Returns:
            `{run_id, status}`: status "cancelling", or "finished" when it had ended already.
        """
        response = await self._connection.send("POST", f"/runs/{quote(run_id)}/cancel")
        result: dict[str, Any] = response.json()
        return result

    async def run(self, run_id: str) -> dict[str, Any]:
        """Return a run's status.

        Returns:
            `{run_id, session_id, status ("running"/"finished"), last_seq, readers, outcome,
            output, metrics}`.
        """
        response = await self._connection.send("GET", f"/runs/{quote(run_id)}")
        result: dict[str, Any] = response.json()
        return result

    # -- sessions -----------------------------------------------------------------------------

    async def history(self, session_id: str) -> list[dict[str, Any]]:
        """Return a session's messages (user, assistant with tool calls, tool results).

        Raises:
            NotFound: the session has no history (or belongs to another key).
        """
        response = await self._connection.send("GET", f"/sessions/{quote(session_id)}")
        messages: list[dict[str, Any]] = response.json()["messages"]
        return messages

    async def delete_session(self, session_id: str) -> None:
        """Delete a session's history.

        Raises:
            NotFound: no such session.
            SessionBusy: a run is in progress on the session (cancel it or wait for it first).
        """
        await self._connection.send("DELETE", f"/sessions/{quote(session_id)}")

    async def sessions(self, limit: int = 100) -> list[dict[str, Any]]:
        """Return the sessions, most recent first."""
        response = await self._connection.send("GET", "/sessions", params={"limit": limit})
        found: list[dict[str, Any]] = response.json()["sessions"]
        return found

    async def health(self) -> dict[str, Any]:
        """Return `GET /healthz`: `{status, active_runs, agent}`."""
        response = await self._connection.send("GET", "/healthz")
        result: dict[str, Any] = response.json()
        return result

    # -- lifecycle ----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connections."""
        await self._connection.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- internals ----------------------------------------------------------------------------

    def _event_stream(
        self,
        request: StreamRequest,
        *,
        run_id: str | None = None,
        after: int = -1,
        stream_tokens: bool,
    ) -> EventStream:
        reconnect = Reconnect(self.max_reconnects, self.backoff, self.max_backoff)
        return EventStream(
            self._connection,
            reconnect,
            request,
            run_id=run_id,
            after=after,
            stream_tokens=stream_tokens,
        )
