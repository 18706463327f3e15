"""The server's configuration, and what it serves: a `ServedAgent` (an `agentcast.Runner`).

The server never builds the agent: `create_app(runner)` receives one, and the agents layer
(`agentcast.wrap`, `agentcast.default_agent`) or the CLI chooses and wraps it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from agentcast.runtime import DisconnectPolicy, SessionPolicy
from agentcast.sessions import SessionStore

__all__ = ["ServedAgent", "ServerConfig"]


@runtime_checkable
class ServedAgent(Protocol):
    """What the server needs of an agent: `agentcast.Runner` (and so `Agent`) satisfies it.

    Attributes:
        store: where sessions are kept (None: the agent keeps its own memory); settable, so
            `create_app(store=...)` can replace it.
        label: how to describe the agent to a person (`/healthz`).
    """

    store: SessionStore | None
    label: str

    def start(self, prompt: str, **options: Any) -> Any:
        """Start a run (see `agentcast.Runner.start`)."""
        ...


@dataclass(frozen=True)
class ServerConfig:
    """How the server behaves.

    Attributes:
        session_policy: `reject` (409), `enqueue` or `interrupt` for a busy session.
        disconnect: `grace` (default), `continue` or `cancel` when a run's last reader leaves.
        grace_period: seconds a run without readers keeps going under `grace`.
        heartbeat: seconds of silence before an SSE comment (or WS ping) keeps the line alive.
        api_keys: bearer token -> owner name (None: a name derived from the key, see
            `parse_api_keys`); owner names must be unique. Empty means no authentication.
        cors_origins: origins allowed by CORS (closed by default).
        max_body_bytes: larger request bodies get 413.
        body_timeout: seconds a request body may take to arrive (408 after).
        header_timeout: seconds a request's headers may take to arrive before the connection
            is closed (applied by `agentcast serve`'s uvicorn; see `uvicorn_config`).
        send_timeout: seconds a write to a client that stopped reading may stay stalled
            before the connection is closed and its stream's reader slot freed (same).
        direct_body: under `agentcast serve`'s uvicorn (h11), write event-stream bodies
            straight to the connection (`DirectBody`) rather than as one ASGI message per
            write; used only while the app has no middleware added after `create_app`
            (one that must see response bodies), so it never changes what is sent.
        retention: seconds a finished run stays resumable.
        max_retained_runs: at most this many finished runs are kept (oldest evicted first).
        max_retained_bytes: and at most about this many bytes of their events.
        tune_gc: at start-up, freeze the objects start-up created (the app, the agent, the
            imported libraries) out of the cyclic garbage collector and raise its first
            threshold, so the collector's pauses scale with live streams only (DESIGN.md:
            full collections, not CPU, are what limit streaming servers). Process-wide.
        broker: a Redis URL (`redis://host:6379/0`): every run's events go to a Redis Stream
            and any worker sharing the broker serves any run (None: one process, in memory).
        broker_lease: seconds a worker's liveness lease lasts: a worker that died is noticed,
            and its runs ended, within about this long.
        stream_maxlen: about how many entries a run's Redis Stream keeps.
        broker_flush: seconds the replicator lets pass between two pipelines it sends to
            Redis, at least: the events of all runs logged meanwhile go in the next one. What
            another worker's reader waits at most besides the round trip; a worker's own
            readers never wait for it.
    """

    session_policy: SessionPolicy = "reject"
    disconnect: DisconnectPolicy = "grace"
    grace_period: float = 30.0
    heartbeat: float = 15.0
    api_keys: Mapping[str, str | None] = field(default_factory=dict)
    cors_origins: Sequence[str] = ()
    max_body_bytes: int = 1_000_000
    body_timeout: float = 30.0
    header_timeout: float = 10.0
    send_timeout: float = 30.0
    direct_body: bool = True
    retention: float = 600.0
    max_retained_runs: int = 1_000
    max_retained_bytes: int = 256_000_000
    tune_gc: bool = True
    broker: str | None = None
    broker_lease: float = 10.0
    stream_maxlen: int = 100_000
    broker_flush: float = 0.005
