"""Encoders: pure wire formats (no I/O). SSE framing of native events for now."""

from agentcast.encoders.sse import PING, encode_comment, encode_event, parse_last_event_id

__all__ = ("PING", "encode_comment", "encode_event", "parse_last_event_id")
