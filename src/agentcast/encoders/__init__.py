"""Encoders: pure wire formats (no I/O).

`sse` frames native events for SSE, `ws` for the WebSocket; `ProtocolEncoder` is the one base
that every front-end protocol encoder builds on (`agui`: AG-UI; `vercel`: the Vercel AI SDK's
UI message stream).
"""

from agentcast.encoders._base import ProtocolEncoder
from agentcast.encoders.sse import PING, encode_comment, encode_event, parse_last_event_id

__all__ = ("PING", "ProtocolEncoder", "encode_comment", "encode_event", "parse_last_event_id")
