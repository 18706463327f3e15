"""What the broker stores in Redis, byte for byte: entry ids, entries, and its Lua scripts.

A run's stream entry holds one batch of events: its id is `{seq}-1`, `seq` the batch's first
event's, and its one field `e` the events' canonical JSON (`agentcast.events.codec`), one per
line. Redis refuses an entry id not above the stream's last, which fences the stream: what a
refused append still has to send, or that it is fenced, is decided by `unsent`. `Batch` and
`Appended` are one run's part of a multi-run append and what the append did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agentcast.events import BaseEvent
from agentcast.events.codec import from_json, to_json

__all__ = [
    "APPEND",
    "END_LOST",
    "IF_HELD",
    "LOCK",
    "TOKEN",
    "Appended",
    "Batch",
    "append_args",
    "decode",
    "encode",
    "entry_id",
    "refusals",
    "unsent",
]


def entry_id(seq: int) -> str:
    """The stream entry id of a batch whose first event has `seq`."""
    return f"{seq}-1"


def encode(events: Sequence[BaseEvent]) -> bytes:
    """One entry's field: the events' canonical JSON, one per line (JSON has no raw newline)."""
    return b"\n".join(map(to_json, events))


def decode(payload: bytes) -> list[BaseEvent]:
    """The events of one entry's field, with the project's codec."""
    return [from_json(line) for line in payload.split(b"\n")]


def unsent(events: Sequence[BaseEvent], held: Sequence[BaseEvent]) -> list[BaseEvent] | None:
    """The events of a refused append that its stream, whose last entry holds `held`, lacks.

    Only the executing worker appends to its runs' streams, except a sweeper, whose one entry
    ends the run: a stream ending with an `agent_end` this worker did not send is fenced
    (None).
    """
    if not held:
        return list(events)
    last = held[-1]
    if last.type == "agent_end" and next((e for e in events if e.seq == last.seq), None) != last:
        return None
    return [e for e in events if e.seq > last.seq]


@dataclass(slots=True)
class Batch:
    """One run's part of an `append_many`: what to append to its stream, and around it."""

    run_id: str
    events: Sequence[BaseEvent] = ()
    """Its next events, in seq order (none: only a registration or the finishing commands)."""
    register: dict[str, str] | None = None
    """Its registry fields (owner, session_id, session_key): it starts here; sent first."""
    finish: str | None = None
    """Its outcome, once its `agent_end` is stored: the registry says finished, the run
    leaves the running set, its keys get their TTL. Sent after its events."""


class Appended:
    """What an `append_many` took (`commands`, `round_trips`) and which runs were `fenced`."""

    __slots__ = ("commands", "fenced", "round_trips")

    def __init__(self) -> None:
        self.commands = 0
        self.round_trips = 0
        self.fenced: set[str] = set()

    def count(self, commands: int) -> None:
        """Count one round trip of `commands` commands."""
        self.commands += commands
        self.round_trips += 1


APPEND = """
local refused = {}
for i, stream in ipairs(KEYS) do
    local id, field = ARGV[2 * i], ARGV[2 * i + 1]
    local added = redis.pcall('XADD', stream, 'MAXLEN', '~', ARGV[1], id, 'e', field)
    if type(added) == 'table' and added.err then
        refused[#refused + 1] = i
        refused[#refused + 1] = added.err
    end
end
return refused
"""
"""Appends one entry to each stream of KEYS (ARGV: MAXLEN, then each entry's id and field),
in one command for every run of a pipeline: the client's cost is per command, not per entry.
Returns the refused entries as (index from 1, error) pairs: an id not above its stream's last
is refused alone (a retry after a lost reply, or a fenced stream), the others are appended."""


def append_args(
    batches: Sequence[Batch], stream_prefix: str, per_event: bool
) -> tuple[list[str], list[bytes | str], list[Batch]]:
    """`APPEND`'s keys (a stream per entry) and entry arguments, and each entry's batch.

    One entry per batch of events, or one per event with `per_event`; the stream of run `r`
    is `{stream_prefix}{r}:events`.
    """
    streams: list[str] = []
    args: list[bytes | str] = []
    owners: list[Batch] = []
    for batch in batches:
        events = batch.events
        entries = [[e] for e in events] if per_event else [events] if events else []
        stream = f"{stream_prefix}{batch.run_id}:events"
        for entry in entries:
            streams.append(stream)
            args += (entry_id(entry[0].seq), encode(entry))
            owners.append(batch)
    return streams, args, owners


def refusals(reply: Sequence[Any], owners: Sequence[Batch]) -> list[tuple[Batch, str]]:
    """The batches `APPEND` refused an entry of, each once, with its first refusal's error."""
    refused: dict[str, tuple[Batch, str]] = {}
    for index, error in zip(reply[::2], reply[1::2], strict=True):
        batch = owners[int(index) - 1]
        why = error.decode() if isinstance(error, bytes) else str(error)
        refused.setdefault(batch.run_id, (batch, why))
    return list(refused.values())


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

TOKEN = """
local token = redis.call('INCR', KEYS[1])
if token >= tonumber(ARGV[1]) then return token end
redis.call('SET', KEYS[1], ARGV[1])
return tonumber(ARGV[1])
"""
"""A new fencing token: the counter's next value, raised to the clock (ARGV[1], in µs) if it is
below. The stores keep the highest token that saved on each session: a Redis restarted empty
(or a new prefix) must not start the tokens again from 1, or every such session's turns would be
refused until the counter caught up."""

IF_HELD = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == 'renew' then return redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
redis.call('PUBLISH', ARGV[4], ARGV[5])
if ARGV[2] == 'release' then return redis.call('DEL', KEYS[1]) end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""
"""Releases, renews or rebinds a session lock, only if it still holds the given value. A release
or a rebinding (the lock now names its run) is published (ARGV[4], the session's key in ARGV[5]):
the requests waiting for the session on any worker try again at once, instead of polling the
lock (an `interrupt` needs the run's id to cancel it)."""
