"""Real `agentcast serve` workers sharing one Postgres store and one Redis broker, for the
broker tests (issue 11): each test gets its own Postgres schema and its own Redis key prefix,
both removed at the end."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx

from agentcast.encoders.sse import decode_event
from agentcast.events import BaseEvent

REDIS = "redis://127.0.0.1:6379/13"
POSTGRES = "postgresql://127.0.0.1:5432/test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Worker:
    url: str
    process: subprocess.Popen[str]
    args: list[str] = field(default_factory=list)

    def kill(self) -> None:
        """kill -9: no shutdown, no closers, the lease simply stops being renewed."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


class Cluster:
    """Start workers with `cluster.worker(...)`; everything is cleaned up at the end."""

    def __init__(self, tmp_path: os.PathLike[str], *, delay: str = "0.02") -> None:
        self.tag = f"t{uuid.uuid4().hex[:10]}"
        self.broker = f"{REDIS}?prefix={self.tag}:"
        self.store = f"{POSTGRES}?options=-csearch_path%3D{self.tag}"
        self.workers: list[Worker] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCAST_")}
        self.env.update(
            AGENTCAST_HOME=str(tmp_path), AGENTCAST_OFFLINE_DELAY=delay, PYTHONIOENCODING="utf-8"
        )

    def __enter__(self) -> Cluster:
        import psycopg

        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {self.tag}")
        return self

    def __exit__(self, *exc: object) -> None:
        import psycopg
        import redis

        for worker in self.workers:
            worker.stop()
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {self.tag} CASCADE")
        client = redis.Redis.from_url(REDIS)
        keys = list(client.scan_iter(f"{self.tag}:*"))
        if keys:
            client.delete(*keys)
        client.close()

    def worker(self, *extra: str, port: int | None = None, broker: str | None = None) -> Worker:
        port = port or free_port()
        args = [
            sys.executable,
            "-m",
            "agentcast",
            "serve",
            "--port",
            str(port),
            "--store",
            self.store,
            "--broker",
            broker or self.broker,
            *extra,
        ]
        process = subprocess.Popen(
            args, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        worker = Worker(f"http://127.0.0.1:{port}", process, args)
        self.workers.append(worker)
        assert process.stdout is not None
        # `agentcast serve` prints its banner once it listens: wait for that line.
        ready, _, _ = select.select([process.stdout], [], [], 60)
        banner = process.stdout.readline() if ready else ""
        if "serving" not in banner:
            process.kill()
            raise AssertionError(f"the worker did not start: {process.communicate()[1]}")
        return worker

    def redis(self) -> object:
        import redis

        return redis.Redis.from_url(REDIS)


def sse_events(response: httpx.Response) -> Iterator[BaseEvent]:
    """The agentcast events of an SSE response, as they arrive (comments skipped)."""
    kind, data = None, []
    for line in response.iter_lines():
        if not line:
            if kind is not None:
                yield decode_event(kind, "\n".join(data))
            kind, data = None, []
        elif line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def until_first_token(events: Iterator[BaseEvent]) -> list[BaseEvent]:
    """Read a stream's events up to and including its first `llm_token` (the run is live)."""
    head = []
    for event in events:
        head.append(event)
        if event.type == "llm_token":
            break
    return head


@contextlib.contextmanager
def follow(url: str, run_id: str, after: int) -> Iterator[Iterator[BaseEvent]]:
    """GET /runs/{id}/stream on the worker at `url`, after `seq`: its events as they arrive."""
    with (
        httpx.Client(timeout=30) as client,
        client.stream("GET", f"{url}/runs/{run_id}/stream", params={"after": str(after)}) as r,
    ):
        yield sse_events(r)


def read_stream(url: str, *, headers: dict[str, str] | None = None, **params: object) -> list:
    with (
        httpx.Client(timeout=30) as client,
        client.stream("GET", url, headers=headers, params=params) as response,
    ):
        assert response.status_code == 200, response.read()
        return list(sse_events(response))


@contextlib.contextmanager
def invoke_stream(
    url: str, prompt: str, **body: object
) -> Iterator[tuple[str, Iterator[BaseEvent]]]:
    """POST /invoke with stream=true: the run id and its events as they arrive."""
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST", f"{url}/invoke", json={"prompt": prompt, "stream": True, **body}
        ) as response,
    ):
        assert response.status_code == 200, response.read()
        yield response.headers["x-run-id"], sse_events(response)
