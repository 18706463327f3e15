"""`Client`: the blocking face of `AsyncClient`, for code that is not async.

    with Client("http://127.0.0.1:8000") as client:
        with client.stream("What is 25 * 4?") as events:
            for event in events:
                ...

A thin wrapper with no logic of its own: an `AsyncClient` lives on a private event loop in a
daemon thread, and each method hands its coroutine to that loop and waits for the result.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Coroutine, Iterator, Mapping
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

import httpx

from agentcast.client._async import AsyncClient
from agentcast.client._stream import EventStream
from agentcast.events import BaseEvent

__all__ = ["Client", "SyncEventStream"]

P = ParamSpec("P")
T = TypeVar("T")

_UNWIND_TIMEOUT = 5.0  # seconds an interrupted call gets to close what it opened


class _Loop:
    """An event loop running in a daemon thread, to which coroutines are handed."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="agentcast-client", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the loop and return its result (or raise its exception)."""
        finished = threading.Event()
        future = asyncio.run_coroutine_threadsafe(_signalling(coro, finished), self._loop)
        try:
            return future.result()
        except BaseException:
            if not finished.is_set():
                # Interrupted here (Ctrl-C): cancel the call and let it close what it opened,
                # so the next call (an event stream's close) does not find it still running.
                future.cancel()
                finished.wait(_UNWIND_TIMEOUT)
            raise

    @property
    def running(self) -> bool:
        """Whether the loop's thread is alive."""
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stop the loop and wait for its thread (pending async generators are closed)."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()


async def _signalling(coro: Coroutine[Any, Any, T], finished: threading.Event) -> T:
    try:
        return await coro
    finally:
        finished.set()


_END = object()


async def _next(stream: EventStream) -> Any:
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return _END


class SyncEventStream:
    """The blocking face of `EventStream`: an iterator and context manager of a run's events."""

    def __init__(self, loop: _Loop, stream: EventStream) -> None:
        self._loop = loop
        self._stream = stream

    @property
    def run_id(self) -> str | None:
        """The run, once the server has answered."""
        return self._stream.run_id

    @property
    def session_id(self) -> str | None:
        """The run's session, once the server has answered."""
        return self._stream.session_id

    @property
    def last_seq(self) -> int:
        """The seq of the last event delivered (-1: none yet)."""
        return self._stream.last_seq

    @property
    def reconnects(self) -> int:
        """How many times the stream was resumed after a broken connection."""
        return self._stream.reconnects

    def __iter__(self) -> Iterator[BaseEvent]:
        return self

    def __next__(self) -> BaseEvent:
        event = self._loop.call(_next(self._stream))
        if event is _END:
            raise StopIteration
        assert isinstance(event, BaseEvent)
        return event

    def close(self) -> None:
        """Close the connection (the run goes on on the server)."""
        self._loop.call(self._stream.aclose())

    def cancel(self) -> dict[str, Any]:
        """Cancel the run on the server; keep iterating to receive its `agent_end`."""
        return self._loop.call(self._stream.cancel())

    def __enter__(self) -> SyncEventStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _blocking(
    method: Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[Client, P], T]:
    @functools.wraps(method)
    def call(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._loop.call(method(self._async, *args, **kwargs))

    return call


def _iterating(
    method: Callable[Concatenate[AsyncClient, P], EventStream],
) -> Callable[Concatenate[Client, P], SyncEventStream]:
    @functools.wraps(method)
    def call(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> SyncEventStream:
        return SyncEventStream(self._loop, method(self._async, *args, **kwargs))

    return call


class Client:
    """A blocking client of an agentcast server: `AsyncClient`'s methods, without `await`.

    The arguments are `AsyncClient`'s. Close it (`close()` or `with`) when done.
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
        self._async = AsyncClient(
            base_url,
            api_key=api_key,
            timeout=timeout,
            read_timeout=read_timeout,
            max_reconnects=max_reconnects,
            backoff=backoff,
            max_backoff=max_backoff,
            headers=headers,
            transport=transport,
        )
        self._loop = _Loop()

    @property
    def base_url(self) -> str:
        """The server's URL."""
        return self._async.base_url

    stream = _iterating(AsyncClient.stream)
    join = _iterating(AsyncClient.join)
    invoke = _blocking(AsyncClient.invoke)
    cancel = _blocking(AsyncClient.cancel)
    run = _blocking(AsyncClient.run)
    history = _blocking(AsyncClient.history)
    delete_session = _blocking(AsyncClient.delete_session)
    sessions = _blocking(AsyncClient.sessions)
    health = _blocking(AsyncClient.health)

    def close(self) -> None:
        """Close the connections and stop the client's event loop. Idempotent."""
        if self._loop.running:
            try:
                self._loop.call(self._async.aclose())
            finally:
                self._loop.stop()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
