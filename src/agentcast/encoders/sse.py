"""Server-Sent Events framing of agentcast events (sans I/O).

Each event is one SSE message: `id: <seq>` (the resume cursor a browser's EventSource and
agentcast's client send back as `Last-Event-ID`), `event: <type>`, and `data: <canonical
JSON>`. The JSON never contains a raw newline (it is escaped inside strings), so one `data:`
line always suffices and any text, blank lines, `data:` or a lone `:` included, is framed safely.
Heartbeats are comment lines, which every SSE parser ignores.
"""

from __future__ import annotations

from agentcast.errors import InvalidInput
from agentcast.events import BaseEvent, to_json

__all__ = ["PING", "encode_comment", "encode_event", "parse_last_event_id"]


def encode_event(event: BaseEvent) -> bytes:
    """Return the SSE message of an event."""
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.seq, event.type.encode(), to_json(event))


def encode_comment(text: str) -> bytes:
    """Return an SSE comment (ignored by parsers; keeps proxies from timing the stream out)."""
    safe = text.replace("\r", " ").replace("\n", " ")
    return f": {safe}\n\n".encode()


PING = encode_comment("ping")
"""The heartbeat comment."""


def parse_last_event_id(value: str | None) -> int:
    """Return the `seq` to resume after, from a `Last-Event-ID` header or `?after=` value.

    Raises:
        InvalidInput: the value is not a non-negative integer.
    """
    if value is None or value.strip() == "":
        return -1
    text = value.strip()
    if not text.lstrip("-").isdigit() or int(text) < -1:
        raise InvalidInput(f"Last-Event-ID must be an event seq (an integer >= -1), got {value!r}")
    return int(text)
