"""A caught-up event stream written by the run's own task: no wake-up of the stream per token.

While a stream's reader has read everything its run logged, the stream listens to the log
(`EventLog.listen`) with a `PushWriter`: each event the run appends is framed and written to
the connection inside `append`, by the appending task. The stream's own task sleeps meanwhile
and wakes only when something needs it: the connection's buffer is full (it waits for the
drain), the log closed, the client left, a heartbeat is due, or a frame failed to build. That
saves, per token, the reader's future, the loop callback that resolves it and the task step
that resumes the stream, which is most of what a stream costs beyond the write itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from time import monotonic_ns
from typing import TYPE_CHECKING

from agentcast.events import BaseEvent, LLMToken
from agentcast.runtime import EventLog, LogReader
from agentcast.server._transport import DirectBody

if TYPE_CHECKING:
    from agentcast.server._body import WriteStats

__all__ = ["BURST_NS", "PushWriter"]

BURST_NS = 100_000
"""Events appended closer together than this (ns, on the monotonic clock) are a burst: a model
that hands over several chunks at once (one network read holding many). The first goes out at
once, the rest of the burst in one write at the end of the loop iteration: one send, not one
per token. (Not the events' own `ts`: it has millisecond resolution, ten times too coarse.)"""


class PushWriter:
    """Writes each appended event of `log` for `reader`, until it must hand back to its task.

    Args:
        log: the run's log; the reader has read all of it.
        reader: the stream's reader, whose cursor follows what is written here.
        body: the connection's direct writer.
        frames: the projection's bytes of one event.
        stats: the write counters.
        tokens: False skips `llm_token` events (the stream's filter).
        heartbeat: seconds of the run's silence after which the task wakes to send a ping.
    """

    __slots__ = (
        "_batch",
        "_body",
        "_frames",
        "_heartbeat_ns",
        "_last",
        "_log",
        "_reader",
        "_stats",
        "_timer",
        "_tokens",
        "_wake",
        "drain",
        "failed",
        "ping_due",
    )

    def __init__(
        self,
        log: EventLog,
        reader: LogReader,
        body: DirectBody,
        frames: Callable[[BaseEvent], bytes],
        stats: WriteStats,
        *,
        tokens: bool,
        heartbeat: float,
    ) -> None:
        self._log = log
        self._reader = reader
        self._body = body
        self._frames = frames
        self._stats = stats
        self._tokens = tokens
        self._heartbeat_ns = int(heartbeat * 1e9)
        self._wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._timer: asyncio.TimerHandle | None = None
        self._last = 0
        """When (`monotonic_ns`) the last write went out (`BURST_NS`)."""
        self._batch: list[bytes] | None = None
        """A burst's frames, written by `_flush` at the end of the loop iteration."""
        self.drain: Awaitable[None] | None = None
        """The wait for the connection's buffer to drain, when a write filled it."""
        self.failed: Exception | None = None
        """What failed while building or writing a frame (the task raises it)."""
        self.ping_due = False
        """Whether the run was silent for a heartbeat."""

    async def wait(self) -> None:
        """Listen until the task is needed again (see the module's docstring)."""
        self._arm(self._heartbeat_ns / 1e9)
        self._log.listen(self)
        try:
            await self._wake
        except BaseException:  # the stream is cancelled: nobody will await the drain
            self._hand_back()
            self._drop_drain()
            raise
        self._hand_back()

    def _hand_back(self) -> None:
        self._log.unlisten(self)
        if self._timer is not None:
            self._timer.cancel()
        self._flush()  # a burst not written yet goes before whatever the task writes

    def _drop_drain(self) -> None:
        drain, self.drain = self.drain, None
        if drain is not None:
            drain.close()  # type: ignore[attr-defined]  # a coroutine: no "never awaited"

    def stop(self) -> bool:
        """Wake the task (the client left, or the listener must hand back); returns False."""
        if not self._wake.done():
            self._wake.set_result(None)
        return False

    def on_append(self, event: BaseEvent) -> bool:
        """Write the event just logged; False (and wake the task) when it cannot go on."""
        # No check for a client that left: `DirectBody` drops what is written then, and the
        # disconnect itself wakes the task (`StreamBody.disconnected`), which stops this.
        self._reader.passed(event)
        if not self._tokens and event.__class__ is LLMToken:
            return True
        try:
            data = self._frames(event)
            if not data:
                return True
            self._stats.events += 1
            batch = self._batch
            if batch is not None:
                batch.append(data)
                return True
            now = monotonic_ns()
            if now - self._last < BURST_NS:
                self._batch = [data]
                asyncio.get_running_loop().call_soon(self._flush)
                return True
            self._last = now
            self._stats.writes += 1
            pending = self._body.write(data)
        except Exception as exc:  # never into the run: its stream fails, not the run
            self.failed = exc
            return self.stop()
        if pending is not None:
            self.drain = pending
            return self.stop()
        return True

    def on_close(self) -> None:
        """The run's log closed: the task writes the stream's end."""
        self.stop()

    def _flush(self) -> None:
        batch = self._batch
        if batch is None:
            return
        self._batch = None
        self._last = monotonic_ns()
        self._stats.writes += 1
        try:
            pending = self._body.write(b"".join(batch))
        except Exception as exc:  # a failed write fails the stream, as in `on_append`
            self.failed = exc
            self._decline()
            return
        if pending is not None:
            if self.drain is None:
                self.drain = pending
            else:  # the task already waits for one drain: the second is the same wait
                pending.close()  # type: ignore[attr-defined]
            self._decline()

    def _decline(self) -> None:
        # Outside `on_append` (a loop callback, or the hand-back): stop listening now, not when
        # the task runs. A token logged meanwhile would be written past the full buffer, and
        # its drain would replace the one the task awaits (which then is never awaited).
        self._log.unlisten(self)
        self.stop()

    def _arm(self, delay: float) -> None:
        self._timer = asyncio.get_running_loop().call_later(delay, self._check_silence)

    def _check_silence(self) -> None:
        # The run's last event carries its time (`ts`, in ms): silence is measured from it, so
        # events cost the heartbeat nothing (no timer moved per token).
        log = self._log
        last_ms = log.get(log.next_seq - 1).ts if log.next_seq > log.first_seq else 0
        left = last_ms * 1_000_000 + self._heartbeat_ns - time.time_ns()
        if left > 0:
            self._arm(left / 1e9)
        else:
            self._timer = None
            self.ping_due = True
            self.stop()
