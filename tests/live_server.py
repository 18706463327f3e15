"""A real uvicorn server on an ephemeral 127.0.0.1 port, in a background thread, as a context
manager: what the protocol tests (AG-UI, the Vercel AI SDK) run their npm clients against.

An agentcast app is served the way `agentcast serve` serves it (`uvicorn_config`: its
slow-client deadlines and the direct body writes), so the real clients read what production
writes."""

from __future__ import annotations

import socket
import threading
from typing import Any

import uvicorn

from agentcast.server import uvicorn_config


class LiveServer:
    """`with LiveServer(app) as server:` serves `app` at `server.url` until the block ends."""

    def __init__(self, app: Any) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        started = threading.Event()

        class Server(uvicorn.Server):
            async def startup(self, sockets: Any = None) -> None:
                await super().startup(sockets)
                started.set()

        options: dict[str, Any] = {"log_level": "warning", "lifespan": "on", "ws": "none"}
        if hasattr(getattr(app, "state", None), "agentcast"):
            config = uvicorn_config(app, host="127.0.0.1", port=0, **options)
        else:
            config = uvicorn.Config(app, **options)
        self._started = started
        self._server = Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self._thread.start()
        if not self._started.wait(20) or not self._server.started:
            raise RuntimeError("the test server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
