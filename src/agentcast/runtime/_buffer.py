"""Edge token buffering: fewer, larger `llm_token` events for consumers that want them.

A coalesced token is defined once, here (`join_tokens`): adjacent `llm_token` events of the
same LLM call and kind become one event whose `token` is their text concatenated and whose
`seq`/`ts` are the last one's. Nothing is dropped and nothing reordered: lifecycle and tool
events are never merged and always end the batch before them. Because the joined event
carries the last merged `seq`, a reader that resumes after it (`Last-Event-ID`) continues with
the event that followed the batch: no gap and no duplicate. Its `seq`s simply skip the merged
ones, which a resuming reader must already accept for filtered streams (`stream_tokens=False`).

`TokenBuffer` is seed 002's buffer (`TokenBuffer(buffer_size=10)`, `add()`, `flush()`), plus
a time bound and an event-stream form (`buffer.events(run_events)`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterable, AsyncIterator, Sequence

import msgspec

from agentcast.errors import InvalidInput
from agentcast.events import BaseEvent, LLMToken

__all__ = ["TokenBuffer", "coalesce", "join_tokens"]


def join_tokens(tokens: Sequence[LLMToken]) -> LLMToken:
    """Return the one event that stands for adjacent tokens of one call and kind.

    Raises:
        ValueError: no tokens, or tokens of different calls or kinds.
    """
    if not tokens:
        raise ValueError("nothing to join")
    last = tokens[-1]
    if len(tokens) == 1:
        return last
    if any(t.call_id != last.call_id or t.kind != last.kind for t in tokens):
        raise ValueError("only tokens of one LLM call and kind are joined")
    return msgspec.structs.replace(last, token="".join(t.token for t in tokens))


def coalesce(events: Sequence[BaseEvent]) -> list[BaseEvent]:
    """Return `events` with every run of adjacent tokens of one call and kind joined.

    What a reader that fell behind is sent (`agentcast.server` does it when a wake-up finds
    a long backlog): the same text in fewer events, every other event as it was.
    """
    out: list[BaseEvent] = []
    run: list[LLMToken] = []
    for event in events:
        if type(event) is LLMToken:
            if run and (run[-1].call_id != event.call_id or run[-1].kind != event.kind):
                out.append(join_tokens(run))
                run = []
            run.append(event)
            continue
        if run:
            out.append(join_tokens(run))
            run = []
        out.append(event)
    if run:
        out.append(join_tokens(run))
    return out


class TokenBuffer:
    """Collects tokens and hands them over in batches.

    A batch is due every `buffer_size` tokens, or once its oldest token has waited `max_delay`
    seconds (when given), or at `flush()`.

    Text form (seed 002): `text = buffer.add(token)` returns the batch's text when it is due,
    else None; `buffer.flush()` returns what is left ("" when nothing). Event form:
    `async for event in buffer.events(agent.astream(...))` yields every event, with adjacent
    tokens of one call joined (`join_tokens`) and flushed on time even while the model pauses.

    Args:
        buffer_size: tokens per batch (>= 1; 1 means no buffering).
        max_delay: seconds a buffered token may wait (None: no time bound).

    Raises:
        InvalidInput: `buffer_size` < 1 or `max_delay` not > 0.
    """

    def __init__(self, buffer_size: int = 10, max_delay: float | None = None) -> None:
        if isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or buffer_size < 1:
            raise InvalidInput(f"buffer_size must be an integer >= 1, got {buffer_size!r}")
        if max_delay is not None and not max_delay > 0:
            raise InvalidInput(f"max_delay must be > 0 seconds (or None), got {max_delay!r}")
        self.buffer_size = buffer_size
        self.max_delay = max_delay
        self._texts: list[str] = []
        self._since = 0.0

    # -- text form ----------------------------------------------------------------------

    def add(self, token: str) -> str | None:
        """Buffer one token; return the batch's text when it is due, else None."""
        if not self._texts:
            self._since = time.monotonic()
        self._texts.append(token)
        if len(self._texts) >= self.buffer_size or self._overdue():
            return self.flush()
        return None

    def flush(self) -> str:
        """Return the buffered text ("" when there is none) and empty the buffer."""
        text = "".join(self._texts)
        self._texts.clear()
        return text

    def _overdue(self) -> bool:
        return self.max_delay is not None and time.monotonic() - self._since >= self.max_delay

    # -- event form ---------------------------------------------------------------------

    async def events(self, source: AsyncIterable[BaseEvent]) -> AsyncIterator[BaseEvent]:
        """Yield `source`'s events with adjacent tokens of one call and kind joined."""
        batch: list[LLMToken] = []
        iterator = aiter(source)
        pending: asyncio.Future[BaseEvent] | None = None
        try:
            while True:
                timed = bool(batch) and self.max_delay is not None
                if timed or pending is not None:
                    # A batch may wait only so long: ask for the next event in a task, and
                    # flush if the time runs out first (the request stays pending for later).
                    if pending is None:
                        pending = asyncio.ensure_future(anext(iterator))
                    if timed:
                        assert self.max_delay is not None
                        left = self._since + self.max_delay - time.monotonic()
                        done, _ = await asyncio.wait((pending,), timeout=max(left, 0.0))
                        if not done:
                            yield join_tokens(batch)
                            batch.clear()
                            continue
                    asked, pending = pending, None
                    try:
                        event = await asked
                    except StopAsyncIteration:
                        break
                else:
                    try:
                        event = await anext(iterator)
                    except StopAsyncIteration:
                        break
                if type(event) is LLMToken:
                    if batch and (
                        batch[-1].call_id != event.call_id or batch[-1].kind != event.kind
                    ):
                        yield join_tokens(batch)
                        batch.clear()
                    if not batch:
                        self._since = time.monotonic()
                    batch.append(event)
                    if len(batch) >= self.buffer_size or self._overdue():
                        yield join_tokens(batch)
                        batch.clear()
                    continue
                if batch:
                    yield join_tokens(batch)
                    batch.clear()
                yield event
            if batch:
                yield join_tokens(batch)
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await pending
            close = getattr(iterator, "aclose", None)
            if close is not None:
                await close()
