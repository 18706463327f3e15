"""Server-Sent Events framing of agentcast events (sans I/O): the native stream's one codec.

Each event is one SSE message of three lines, in this order:

    event: llm_token
    data: {"run_id":"run_1","seq":7,"ts":1732170000000,"session_id":"s1","call_id":"c1",...}
    id: 7

`event:` first and `data:` second, because seed 002's clients read exactly those lines, and
`data:` is the event's own data object, its flat JSON (`agentcast.events.to_flat_json`: the
payload fields with `run_id`, `seq`, `ts` and `session_id` beside them), which they read as
`data.content`, `data.output`, `data.token`. `id:` is the `seq`, the resume cursor a browser's
EventSource and agentcast's client send back as `Last-Event-ID`. The JSON never contains a raw
newline (it is escaped inside strings), so one `data:` line always suffices and any text, blank
lines, `data:` or a lone `:` included, is framed safely. Heartbeats are comment lines, which
every SSE parser ignores. The WebSocket and `to_json` carry the full envelope instead.
"""

from __future__ import annotations

import re

from agentcast.errors import InvalidInput
from agentcast.events import BaseEvent, from_flat_json, to_flat_json

__all__ = ["PING", "decode_event", "encode_comment", "encode_event", "parse_last_event_id"]


def encode_event(event: BaseEvent) -> bytes:
    """Return the SSE message of an event: `event:`, `data:` (its flat JSON), `id:`."""
    return b"event: %s\ndata: %s\nid: %d\n\n" % (
        event.type.encode(),
        to_flat_json(event),
        event.seq,
    )


def decode_event(event_type: str, data: str | bytes) -> BaseEvent:
    """Return the event of one SSE message, from its `event:` and `data:` fields.

    The one decoder of the native stream for Python consumers (agentcast's client reads the
    messages with httpx-sse and decodes each here).

    Raises:
        InvalidInput: the type is unknown or the data is not that event's JSON.
    """
    return from_flat_json(event_type, data)


def encode_comment(text: str) -> bytes:
    """Return an SSE comment (ignored by parsers; keeps proxies from timing the stream out)."""
    safe = text.replace("\r", " ").replace("\n", " ")
    return f": {safe}\n\n".encode()


PING = encode_comment("ping")
"""The heartbeat comment."""


_MAX_CURSOR_DIGITS = 18
"""Cursors are seqs; 18 digits stay below 2**63 and keep the parse cheap."""

_CURSOR = re.compile(rf"-1|[0-9]{{1,{_MAX_CURSOR_DIGITS}}}")


def parse_last_event_id(value: object) -> int:
    """Return the `seq` to resume after: the one parser of every resume cursor.

    It reads a `Last-Event-ID` header, an `?after=` query value and a WebSocket message's
    `after` (a JSON string or integer). Absent or blank means from the start (-1). Accepted:
    a plain ASCII decimal integer >= -1 of at most 18 digits, spaces around it allowed.

    Raises:
        InvalidInput: anything else (`--5`, `²`, `1.0`, `true`, 5,000 digits, a list...).
    """
    if value is None:
        return -1
    if isinstance(value, int) and not isinstance(value, bool):
        if -1 <= value < 10**_MAX_CURSOR_DIGITS:
            return value
    elif isinstance(value, str):
        text = value.strip(" \t")
        if text == "":
            return -1
        if _CURSOR.fullmatch(text):
            return int(text)
    # Never repr the whole value: it may be 5,000 digits or a deeply nested list.
    shown = (
        repr(value[:30]) + ("..." if len(value) > 30 else "")
        if isinstance(value, str)
        else (f"a value of type {type(value).__name__}")
    )
    raise InvalidInput(
        "a resume cursor (Last-Event-ID, ?after=, after) must be an event seq: an integer"
        f" >= -1 of at most {_MAX_CURSOR_DIGITS} digits, got {shown}"
    )
