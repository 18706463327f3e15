"""The cluster benchmark's processes and counters: its Redis, `agentcast serve --workers`, and
what Redis, the workers' `/metrics` and the kernel count (`bench_cluster.py`)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _load import http_get
from _servers import HOST

PACED = Path(__file__).resolve().with_name("_paced.py")
_BROKER_COMMANDS = re.compile(rb"^agentcast_broker_commands_total (\S+)$", re.M)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextmanager
def redis_url(spec: str) -> Iterator[str]:
    """A broker URL with a key prefix of its own: a private redis-server, or `spec`'s Redis."""
    import redis

    prefix = f"bc{uuid.uuid4().hex[:8]}:"
    server: subprocess.Popen[bytes] | None = None
    if spec == "private":
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("--redis private needs redis-server on PATH; pass a URL instead")
        port = free_port()
        server = subprocess.Popen(
            [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        base = f"redis://{HOST}:{port}/0"
    else:
        base = spec.split("?", 1)[0]
    client = redis.Redis.from_url(base)
    try:
        deadline = time.monotonic() + 20
        while True:  # a bounded wait on the real condition: the server answers
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"{base}?prefix={prefix}"
    finally:
        try:
            keys = list(client.scan_iter(f"{prefix}*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
            if server is not None:
                server.terminate()
                server.wait(timeout=10)


def redis_counters(url: str) -> tuple[int, float]:
    """(commands run, CPU seconds used) by the Redis server so far: `INFO commandstats` with
    the INFO calls left out, and `INFO cpu` (its own user + system time)."""
    import redis

    client = redis.Redis.from_url(url.split("?", 1)[0])
    try:
        stats = client.info("commandstats")
        cpu = client.info("cpu")
    finally:
        client.close()
    commands = sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info")
    return commands, float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def replicator_commands(port: int) -> float:
    """The Redis commands one worker's replicators sent (its `/metrics`; 0 without a broker)."""
    status, body = http_get(port, "/metrics")
    found = _BROKER_COMMANDS.search(body) if status == 200 else None
    return float(found.group(1)) if found else 0.0


def machine_wait_ns() -> int:
    """The machine's run-queue wait so far, ns: the time during which some runnable task was
    waiting for a CPU (`/proc/pressure/cpu`, "some"), else every CPU's run_delay
    (`/proc/schedstat`); 0 when the kernel exposes neither."""
    try:
        with open("/proc/pressure/cpu") as f:
            some = f.readline().split()
        return int(dict(part.split("=") for part in some[1:])["total"]) * 1000
    except (OSError, ValueError, KeyError):
        pass
    try:
        with open("/proc/schedstat") as f:
            return sum(int(line.split()[8]) for line in f if line.startswith("cpu"))
    except (OSError, ValueError, IndexError):
        return 0


class ServeWorkers:
    """`agentcast serve --workers N` on one port (the kernel spreads the connections): the
    parent and its forked workers, whose CPU is summed like separate workers'."""

    def __init__(self, workers: int, broker: str, home: str) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "agentcast", "serve", "--agent", f"{PACED}:PacedModel"]
        command += ["--port", str(self.port), "--workers", str(workers), "--broker", broker]
        command += ["--on-disconnect", "continue", "--store", "memory://"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCAST_")}
        self.proc = subprocess.Popen(
            command,
            env=env | {"AGENTCAST_HOME": home},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while len(self.pids()) < workers + 1 or not self._healthy():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("agentcast serve --workers did not start")
            time.sleep(0.1)  # a bounded wait on the real condition: the workers answer

    def _healthy(self) -> bool:
        try:
            return http_get(self.port, "/healthz")[0] == 200
        except OSError:
            return False

    def pids(self) -> list[int]:
        """The parent and its workers."""
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                return [self.proc.pid, *map(int, f.read().split())]
        except OSError:
            return [self.proc.pid]

    def stop(self) -> None:
        """SIGINT (forwarded to the workers), then by force."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
