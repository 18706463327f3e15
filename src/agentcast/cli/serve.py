"""`agentcast serve`: the HTTP/WebSocket server under uvicorn, with a graceful shutdown."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from typing import Any

from agentcast._version import __version__
from agentcast.cli._common import build_agent
from agentcast.errors import UserError

__all__ = ["serve"]


def serve(args: argparse.Namespace) -> int:
    """Serve the agent the arguments name until a signal; return the exit status."""
    from agentcast.errors import BrokerUnavailable, StoreUnavailable
    from agentcast.server import create_app, parse_api_keys, uvicorn_config

    raw_keys = [*args.api_key, *filter(None, os.environ.get("AGENTCAST_API_KEYS", "").split(","))]
    keys = parse_api_keys(raw_keys)  # before anything starts: a bad key list is exit 2
    broker = getattr(args, "broker", None) or os.environ.get("AGENTCAST_BROKER") or None
    workers = getattr(args, "workers", 1)
    if workers < 1:
        raise UserError("--workers must be at least 1")
    if workers > 1 and broker is None:
        raise UserError(
            f"--workers {workers} needs --broker redis://...: without a broker each process"
            " would know only its own runs, and a resume or cancel reaching another would fail"
        )
    listener = _listen(args.host, args.port)
    if workers > 1:
        try:  # once, before forking: an unreachable broker is one line, not one per worker
            asyncio.run(_check_broker(broker))
        except BrokerUnavailable as exc:
            listener.close()
            print(f"agentcast: {exc.message}", file=sys.stderr)
            return 2
        forked = _fork_workers(workers)
        if forked is None:  # the parent: it waits for the workers
            listener.close()
            return 0
    try:
        agent = build_agent(args)
        app = create_app(
            agent,
            session_policy=args.session_policy,
            disconnect=args.on_disconnect,
            grace_period=args.grace,
            api_keys=keys,
            cors_origins=tuple(args.cors_origin),
            broker=broker,
            broker_lease=getattr(args, "lease", 10.0),
        )
        server = app.state.agentcast
        # Here, not only in the lifespan: uvicorn would print a traceback and exit 3. The
        # store is migrated here; the lifespan then only pings it.
        asyncio.run(server.health.start())
        asyncio.run(server.check_broker())
    except (StoreUnavailable, BrokerUnavailable) as exc:
        listener.close()
        print(f"agentcast: {exc.message}", file=sys.stderr)
        return 2
    except BaseException:
        listener.close()  # a bad --agent or --model: the port is not kept bound
        raise
    banner = (
        f"agentcast {__version__} serving {agent.label} on http://{args.host}:{args.port}"
        f" (web chat at /, API docs at /docs){' with API keys' if keys else ''}"
    )
    config = uvicorn_config(app, host=args.host, port=args.port, log_level="warning", lifespan="on")
    _GracefulServer(config, server, banner).run(listener)
    return 0


async def _check_broker(url: str | None) -> None:
    from agentcast.broker import open_broker

    if url is not None:
        broker = open_broker(url)
        try:
            await broker.connect()
        finally:
            await broker.aclose()


def _fork_workers(count: int) -> int | None:
    """Fork `count` workers sharing the bound socket; return the worker's index in a worker.

    In the parent, return None once every worker exited. The parent only supervises: it
    forwards SIGINT and SIGTERM, and replaces a worker that died (a crash, kill -9) with a new
    one, whose sweeper then ends the dead one's runs like any worker's. The workers share
    nothing but the socket (the kernel spreads the connections) and the broker.
    """
    import signal

    children: dict[int, int] = {}  # pid -> index
    stopping = False
    for index in range(count):
        pid = os.fork()
        if pid == 0:
            return index
        children[pid] = index

    def forward(sig: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, sig)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        index = children.pop(pid, -1)
        if not stopping and index >= 0 and status != 0:
            print(f"agentcast: worker {index} died; starting another", file=sys.stderr)
            replacement = os.fork()
            if replacement == 0:
                signal.signal(signal.SIGINT, signal.default_int_handler)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                return index
            children[replacement] = index
    return None


def _listen(host: str, port: int) -> Any:
    """Bind the server's socket up front, so a port in use is one line with the fix (exit 2).

    uvicorn would log `[Errno 98]` and exit 3; binding here and handing uvicorn the socket also
    leaves no gap in which another process could take the port.

    Raises:
        UserError: the address is in use or cannot be bound.
    """
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UserError(
                f"port {port} on {host} is already in use; pick another with --port"
            ) from None
        raise UserError(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from None


class _GracefulServer:
    """uvicorn, but a shutdown first ends every run (closers, `agent_end`).

    Each open stream then receives its terminal event and closes before uvicorn waits for
    connections to drain.
    """

    def __init__(self, config: Any, agentcast_server: Any, banner: str) -> None:
        import uvicorn

        outer = self

        class Server(uvicorn.Server):
            async def startup(self, sockets: Any = None) -> None:
                await super().startup(sockets)
                if self.started:  # printed once listening: scripts may wait for this line
                    print(banner, flush=True)

            def handle_exit(self, sig: int, frame: Any) -> None:
                outer.stop_runs()
                super().handle_exit(sig, frame)

        self._server = Server(config)
        self._agentcast = agentcast_server
        self._loop: asyncio.AbstractEventLoop | None = None

    def stop_runs(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(lambda: loop.create_task(self._agentcast.manager.aclose()))

    def run(self, listener: Any) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            await self._server.serve(sockets=[listener])

        asyncio.run(main())
