"""Encoders: pure wire formats (no I/O).

`sse` frames native events; `ProtocolEncoder` is the one base that every front-end protocol
encoder (AG-UI, the Vercel UI message stream) builds on.
"""

from agentcast.encoders._base import ProtocolEncoder
from agentcast.encoders.sse import PING, encode_comment, encode_event, parse_last_event_id

__all__ = ("PING", "ProtocolEncoder", "encode_comment", "encode_event", "parse_last_event_id")
