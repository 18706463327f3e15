"""`PushWriter`, the caught-up stream written by the run's task: when it writes, and its heartbeat.

Driven with a recording body and a controlled monotonic clock: what goes out inside `append`,
what waits for the end of the loop iteration (a burst), and when a heartbeat is due.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from agentcast.events import LLMToken
from agentcast.runtime import EventLog, LogReader
from agentcast.server import _push
from agentcast.server._body import WriteStats
from agentcast.server._push import BURST_NS, PushWriter

pytestmark = pytest.mark.anyio


class RecordingBody:
    """Stands in for `DirectBody`: records each write, never asks for a drain."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000_000

    def __call__(self) -> int:
        return self.now


def token(seq: int, ts_ms: int) -> LLMToken:
    return LLMToken(call_id="c", token=f"t{seq} ", run_id="r", seq=seq, ts=ts_ms)


def push_writer(
    log: EventLog, heartbeat: float = 60.0, body: RecordingBody | None = None
) -> tuple[PushWriter, RecordingBody]:
    body = body or RecordingBody()
    writer = PushWriter(
        log,
        LogReader(log),
        body,  # type: ignore[arg-type]
        lambda event: event.token.encode(),  # type: ignore[attr-defined]
        WriteStats(),
        tokens=True,
        heartbeat=heartbeat,
    )
    return writer, body


def listening(monkeypatch) -> tuple[Clock, EventLog, RecordingBody]:
    """A log with a `PushWriter` listening, on a clock the test moves."""
    clock = Clock()
    monkeypatch.setattr(_push, "monotonic_ns", clock)
    log = EventLog()
    writer, body = push_writer(log)
    log.listen(writer)
    return clock, log, body


async def test_tokens_a_model_hands_over_apart_are_each_written_inside_append(monkeypatch):
    # A network-paced model: tokens 50 ms apart. Each must go out inside the run's own
    # `append`, not at the end of the loop iteration (a loop callback per token). The events'
    # `ts` is in milliseconds: read as nanoseconds, every token after the first looked like
    # part of a burst.
    clock, log, body = listening(monkeypatch)
    start_ms = time.time_ns() // 1_000_000
    for seq in range(5):
        clock.now += 50_000_000
        log.append(token(seq, start_ms + 50 * seq))
        assert len(body.writes) == seq + 1, "written inside append"
    assert body.writes == [f"t{seq} ".encode() for seq in range(5)]


async def test_a_burst_goes_out_in_one_write_at_the_end_of_the_loop_iteration(monkeypatch):
    clock, log, body = listening(monkeypatch)
    ts_ms = time.time_ns() // 1_000_000
    for seq in range(10):  # ten chunks of one network read: microseconds apart
        clock.now += BURST_NS // 10
        log.append(token(seq, ts_ms))
    assert body.writes == [b"t0 "], "the first at once, the rest held for one write"
    await asyncio.sleep(0)  # the end of this loop iteration
    assert body.writes == [b"t0 ", b"".join(f"t{seq} ".encode() for seq in range(1, 10))]
    clock.now += 50_000_000
    log.append(token(10, ts_ms + 50))
    assert body.writes[-1] == b"t10 ", "after the burst, a lone token goes out at once again"


async def test_a_heartbeat_is_due_only_after_the_runs_silence(monkeypatch):
    heartbeat = 15.0
    log = EventLog()
    writer, _ = push_writer(log, heartbeat=heartbeat)
    now_ms = time.time_ns() // 1_000_000
    log.append(token(0, now_ms))  # the run just spoke
    writer._check_silence()  # noqa: SLF001 - what the timer calls
    assert not writer.ping_due, "an event just now: no ping"
    assert writer._timer is not None and writer._timer.when() > asyncio.get_running_loop().time()  # noqa: SLF001
    writer._timer.cancel()  # noqa: SLF001
    log.append(token(1, now_ms - int(heartbeat * 2000)))  # its last word, two heartbeats ago
    writer._check_silence()  # noqa: SLF001
    assert writer.ping_due


class Drain:
    """A drain wait the test can see: whether it was awaited or closed (dropped on purpose)."""

    def __init__(self) -> None:
        self.awaited = False
        self.closed = False

    def __await__(self):
        self.awaited = True
        yield from asyncio.sleep(0).__await__()

    def close(self) -> None:
        self.closed = True


class FullBody(RecordingBody):
    """A connection whose buffer fills: once `full`, every write returns a new drain wait."""

    def __init__(self) -> None:
        super().__init__()
        self.full = True
        self.drains: list[Drain] = []

    def write(self, data: bytes) -> Drain | None:  # type: ignore[override]
        super().write(data)
        if not self.full:
            return None
        self.drains.append(Drain())
        return self.drains[-1]


def full_writer(log: EventLog) -> tuple[PushWriter, FullBody]:
    body = FullBody()
    writer, _ = push_writer(log, body=body)
    return writer, body


def unheld(writer: PushWriter, body: FullBody) -> list[Drain]:
    """The drain waits nobody will await or close: each one is a 'never awaited' warning."""
    return [d for d in body.drains if d is not writer.drain and not d.awaited and not d.closed]


async def test_after_a_burst_fills_the_connection_a_later_token_leaves_the_writing_to_the_task(
    monkeypatch,
):
    # A burst's write at the end of the loop iteration fills the connection: the writer hands
    # back, but stays a listener until its task runs. A token the run logs before then (and
    # more than a burst apart) must not be written past the full buffer, nor replace the one
    # drain wait the task will await: the old one would never be awaited (a CI failure).
    clock = Clock()
    monkeypatch.setattr(_push, "monotonic_ns", clock)
    log = EventLog()
    writer, body = full_writer(log)
    waiting = asyncio.ensure_future(writer.wait())
    await asyncio.sleep(0)  # listening
    ts_ms = time.time_ns() // 1_000_000
    log.append(token(0, ts_ms))  # written at once: the buffer fills, the writer hands back
    assert writer.drain is body.drains[0]
    await waiting
    assert unheld(writer, body) == []
    writer.drain = None  # what the task awaited

    writer, body = full_writer(log)
    body.full = False
    waiting = asyncio.ensure_future(writer.wait())
    await asyncio.sleep(0)
    clock.now += 10 * BURST_NS
    log.append(token(1, ts_ms))  # written at once; the buffer has room
    clock.now += BURST_NS // 10
    log.append(token(2, ts_ms))  # a burst: held for the end of the loop iteration
    body.full = True
    await asyncio.sleep(0)  # the burst's write fills the buffer; the task is not yet run
    clock.now += 10 * BURST_NS
    log.append(token(3, ts_ms))  # logged before the task resumes, long after the burst
    assert unheld(writer, body) == []
    await waiting
    assert unheld(writer, body) == []
    assert b"t3 " not in b"".join(body.writes), "left for the task, which reads the log"


async def test_a_stream_cancelled_while_its_writer_listens_leaves_no_drain_unawaited(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(_push, "monotonic_ns", clock)
    log = EventLog()
    writer, body = full_writer(log)
    body.full = False
    waiting = asyncio.ensure_future(writer.wait())
    await asyncio.sleep(0)
    ts_ms = time.time_ns() // 1_000_000
    clock.now += 10 * BURST_NS
    log.append(token(0, ts_ms))
    clock.now += BURST_NS // 10
    log.append(token(1, ts_ms))  # a burst, written in `wait`'s own hand-back
    body.full = True
    waiting.cancel()  # the client left: the stream's task is cancelled
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert unheld(writer, body) == [] and writer.drain is None
