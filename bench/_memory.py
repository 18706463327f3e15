"""`--trace-memory`: a server's memory growth per stream, attributed by owner with tracemalloc.

The server process starts `tracemalloc` with `FRAMES` frames once it has built its app. At a
level's start the bench asks it (`GET /_bench/memory?phase=start`) to take a snapshot; halfway
through the level (`phase=middle`) it takes another and attributes every allocation grown since
to an owner, by the innermost frame of its traceback that belongs to one:

    agentcast  src/agentcast (whatever it calls: pydantic, msgspec, LangChain's wrappers)
    framework  uvicorn, h11, starlette, fastapi, anyio, sse_starlette
    model      bench/_paced.py (the fake model's chunks)
    other      none of these within the traceback's frames

uvicorn's `Server.run` is at the bottom of every stack of the server's loop, so `other` is ~0:
asyncio's own objects (tasks, transports, futures) count for whoever's code made them, e.g. a
task agentcast creates is agentcast's, a connection's transport the framework's.

agentcast's retained event log (the events of the runs started in the level, which a resume
replays) is split out of the others: every object an `EventLog` of those runs holds (each
event, its strings, the list) is measured with `sys.getsizeof` and taken out of whichever owner
allocated it (a token's text is the model's chunk's string, shared). Tracemalloc slows the
server several times over, so the level's latency and CPU figures mean nothing in this mode.
"""

from __future__ import annotations

import gc
import json
import os
import socket
import sys
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FRAMES = 30
"""Traceback depth: enough to reach an owner's frame through LangChain's and anyio's layers."""

OWNERS = ("agentcast", "log", "framework", "model", "other")
_FRAMEWORK = ("uvicorn", "h11", "starlette", "fastapi", "anyio", "sse_starlette")
_HERE = __file__


def _package_dir(name: str) -> str | None:
    try:
        module = __import__(name)
    except ImportError:
        return None
    return os.path.dirname(module.__file__ or "") + os.sep


class MemoryTrace:
    """The server side: `trace()` starts tracemalloc; snapshots on request."""

    def __init__(self) -> None:
        self._base: Counter[tuple[Any, ...]] | None = None
        self._old_logs: list[Any] = []
        self._owner_of: dict[tracemalloc.Traceback, tuple[str, str]] = {}
        self._dirs: list[tuple[str, str]] | None = None

    def trace(self) -> None:
        """Start tracing; once the app is built and its imports are done: a smaller heap."""
        tracemalloc.start(FRAMES)

    def _owners(self) -> list[tuple[str, str]]:
        if self._dirs is None:
            dirs = [(_package_dir("agentcast"), "agentcast")]
            dirs += [(_package_dir(name), "framework") for name in _FRAMEWORK]
            dirs.append((str(Path(_HERE).with_name("_paced.py")), "model"))
            self._dirs = [(d, owner) for d, owner in dirs if d]
        return self._dirs

    def owner(self, traceback: tracemalloc.Traceback | None) -> tuple[str, str]:
        """(owner, the deciding frame as `file:line`) of an allocation's traceback."""
        if traceback is None:
            return "other", "?"
        known = self._owner_of.get(traceback)
        if known is not None:
            return known
        found = ("other", "")
        dirs = self._owners()
        ours = (tracemalloc.__file__, _HERE)
        if any(frame.filename in ours for frame in traceback):
            found = ("bench", "")  # the bench's own snapshots and bookkeeping: not counted
            self._owner_of[traceback] = found
            return found
        for frame in reversed(traceback):  # innermost first
            for prefix, owner in dirs:
                if frame.filename.startswith(prefix):
                    # Named from the package's folder on: `starlette/routing.py:157`.
                    where = os.path.relpath(frame.filename, os.path.dirname(prefix.rstrip(os.sep)))
                    found = (owner, f"{where}:{frame.lineno}")
                    break
            else:
                continue
            break
        if found[0] == "other" and len(traceback):
            innermost = traceback[-1]
            found = ("other", f"{os.path.basename(innermost.filename)}:{innermost.lineno}")
        self._owner_of[traceback] = found
        return found

    def _sizes(self) -> Counter[tuple[Any, ...]]:
        # The snapshot's raw traces, summed per traceback: `Snapshot.compare_to` wraps every
        # trace in Python objects, minutes for a server's heap; this is a second or so.
        sizes: Counter[tuple[Any, ...]] = Counter()
        for trace in tracemalloc.take_snapshot().traces._traces:
            sizes[trace[2]] += trace[1]
        return sizes

    def start(self) -> dict[str, Any]:
        """Take the level's base snapshot; remember the logs that already exist."""
        self._old_logs = _event_logs()
        self._base = None
        gc.collect()
        self._base = self._sizes()
        return {"traced": tracemalloc.get_traced_memory()[0]}

    def middle(self, streams: int, top: int = 25) -> dict[str, Any]:
        """The growth since `start`, per owner, with the event log split out, per stream."""
        base = self._base
        if base is None:
            return {}
        gc.collect()
        now = self._sizes()
        grown: Counter[str] = Counter()
        sites: dict[str, Counter[str]] = {owner: Counter() for owner in OWNERS}
        for frames in now.keys() | base.keys():
            diff = now.get(frames, 0) - base.get(frames, 0)
            if not diff:
                continue
            owner, site = self.owner(tracemalloc.Traceback(frames))
            if owner == "bench":
                continue
            grown[owner] += diff
            sites[owner][site] += diff
        log = self._log_bytes()
        for (owner, site), size in log.pop("by_site").items():
            grown[owner] -= size
            grown["log"] += size
            if site and owner in sites:  # the sites are those of what is not the log
                sites[owner][site] -= size
        return {
            "streams": streams,
            "bytes_per_stream": {owner: grown[owner] / streams for owner in OWNERS},
            "top_sites": {
                owner: [[site, size / streams] for site, size in sites[owner].most_common(top)]
                for owner in ("agentcast", "framework", "other")
            },
            **log,
        }

    def _log_bytes(self) -> dict[str, Any]:
        old = {id(log) for log in self._old_logs}
        logs = [log for log in _event_logs() if id(log) not in old]
        seen: set[int] = set()
        by_site: Counter[tuple[str, str]] = Counter()
        events = tokens = token_bytes = 0
        for log in logs:
            items = log._events
            # Its item array grows in EventLog.append (agentcast's; no one site to name).
            by_site["agentcast", ""] += sys.getsizeof(items)
            for event in items:
                events += 1
                own = self._deep(event, seen, by_site)
                if type(event).__name__ == "LLMToken":
                    tokens += 1
                    token_bytes += own
        total = sum(by_site.values())
        return {
            "logs": len(logs),
            "events": events,
            "log_bytes_per_event": total / events if events else float("nan"),
            "tokens": tokens,
            "bytes_per_token_event": token_bytes / tokens if tokens else float("nan"),
            "by_site": by_site,
        }

    def _deep(self, root: Any, seen: set[int], by_site: Counter[tuple[str, str]]) -> int:
        # An event's own objects: the struct, its strings, tuples, dicts and nested structs.
        # Objects already counted (a run's shared id strings) count once, for the first event.
        total = 0
        stack = [root]
        while stack:
            obj = stack.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            traceback = tracemalloc.get_object_traceback(obj)
            if traceback is not None:  # else older than tracing, interned, or a free-list's
                size = sys.getsizeof(obj)
                by_site[self.owner(traceback)] += size
                total += size
            fields = getattr(type(obj), "__struct_fields__", None)
            if fields is not None:
                stack.extend(getattr(obj, name) for name in fields)
            elif isinstance(obj, (tuple, list)):
                stack.extend(obj)
            elif isinstance(obj, dict):
                stack.extend(obj.keys())
                stack.extend(obj.values())
        return total


def _event_logs() -> list[Any]:
    from agentcast.runtime._log import EventLog

    return [obj for obj in gc.get_objects() if type(obj) is EventLog]


# -- the bench side ---------------------------------------------------------------------------


def server_memory(port: int, phase: str, streams: int = 1) -> dict[str, Any]:
    """Ask the server to start a level's trace, or for its growth so far (slow: a snapshot)."""
    with socket.create_connection(("127.0.0.1", port), timeout=600) as conn:
        path = f"/_bench/memory?phase={phase}&streams={streams}"
        conn.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return json.loads(body) if head.split(b" ", 2)[1] == b"200" else {}


def print_memory(levels: Sequence[Any]) -> None:
    """A table per level: KB per stream by owner, the log's bytes per event and per token."""
    print("\nMemory grown per stream halfway through each level (tracemalloc), KB")
    print(f"{'level':>16} " + " ".join(f"{o:>9}" for o in (*OWNERS, "total")))
    for level in levels:
        memory = level.memory
        if not memory:
            continue
        per = memory["bytes_per_stream"]
        cells = [per[owner] / 1024 for owner in OWNERS] + [sum(per.values()) / 1024]
        name = f"{level.server}-{level.streams}"
        print(f"{name:>16} " + " ".join(f"{c:9.2f}" for c in cells))
    for level in levels:
        memory = level.memory
        if not memory:
            continue
        print(
            f"\n{level.server}-{level.streams}: log {memory['events']} events in"
            f" {memory['logs']} runs, {memory['log_bytes_per_event']:.0f} B/event,"
            f" {memory['bytes_per_token_event']:.0f} B per llm_token event"
        )
        for owner, sites in memory["top_sites"].items():
            shown = ", ".join(f"{site} {size / 1024:.2f}" for site, size in sites[:5])
            print(f"  top {owner} sites (KB/stream): {shown}")
