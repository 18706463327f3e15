"""What the broker stores in Redis, byte for byte: entry ids, entries, and its Lua scripts.

A run's stream entry holds one batch of events: its id is `{seq}-1`, `seq` the batch's first
event's, and its one field `e` the events' canonical JSON (`agentcast.events.codec`), one per
line. Redis refuses an entry id not above the stream's last, which fences the stream.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentcast.events import BaseEvent
from agentcast.events.codec import from_json, to_json

__all__ = ["END_LOST", "IF_HELD", "LOCK", "decode", "encode", "entry_id"]


def entry_id(seq: int) -> str:
    """The stream entry id of a batch whose first event has `seq`."""
    return f"{seq}-1"


def encode(events: Sequence[BaseEvent]) -> bytes:
    """One entry's field: the events' canonical JSON, one per line (JSON has no raw newline)."""
    return b"\n".join(map(to_json, events))


def decode(payload: bytes) -> list[BaseEvent]:
    """The events of one entry's field, with the project's codec."""
    return [from_json(line) for line in payload.split(b"\n")]


END_LOST = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local last_id = '0-0'
if #last > 0 then last_id = last[1][1] end
if last_id ~= ARGV[1] then return 0 end
redis.call('XADD', KEYS[1], ARGV[2], 'e', ARGV[3])
redis.call('HSET', KEYS[2], 'status', 'finished', 'outcome', 'error', 'finished', ARGV[5])
redis.call('HDEL', KEYS[3], ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
"""
"""Ends a lost run: checks the stream's last id, appends the closing entry, marks the run
finished, drops it from the running set, sets the TTLs; 0 when the stream moved on."""


LOCK = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return '' end
return redis.call('GET', KEYS[1]) or ''
"""
"""Takes a session lock (`SET NX PX`); returns '' when taken, else the holder's value."""

IF_HELD = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == 'release' then return redis.call('DEL', KEYS[1]) end
if ARGV[2] == 'renew' then return redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""
"""Releases, renews or rebinds a session lock, only if it still holds the given value."""
