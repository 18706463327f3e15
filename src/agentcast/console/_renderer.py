"""`ChatRenderer`: shows a run's events in a terminal, or as plain text when not a terminal."""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, Callable
from types import TracebackType

from rich.console import Console

from agentcast.console._live import LiveWriter, RenderStats
from agentcast.console._plain import PlainWriter
from agentcast.console._view import ChatView
from agentcast.events import BaseEvent


class ChatRenderer:
    """Renders the events of one run as a chat, live.

    On a terminal it streams the answer as markdown, shows tool calls with their arguments,
    results and the output of LLMs called inside them, and ends with a one-line footer. Finished
    parts are printed to the scrollback once and only the unfinished tail is redrawn, so the
    total work is O(n) in the answer's length. When the console is not a terminal (a pipe, a
    file, `TERM=dumb`, a legacy Windows console) it writes plain text lines with no escape codes.

    Example:
        >>> renderer = ChatRenderer()
        >>> view = await renderer.render(run.events())  # doctest: +SKIP

    Args:
        console: where to render; a new `rich.console.Console()` on stdout when None.
        show_reasoning: show the model's reasoning (dimmed; `[thinking]` lines in plain text).
        refresh_interval: least seconds between two redraws caused by streaming events
            (tokens, argument fragments, custom events); other events redraw at once.
        clock: monotonic seconds, for the throttle; tests pass a fake one.
        progress: in plain-text mode, where everything but the answer goes (tool lines,
            reasoning, custom events, errors, the footer), e.g. a console on stderr; the answer
            alone stays on `console`. None: everything on `console`. A terminal shows the
            whole chat on `console` either way.
    """

    def __init__(
        self,
        console: Console | None = None,
        *,
        show_reasoning: bool = True,
        refresh_interval: float = 1 / 30,
        clock: Callable[[], float] = time.monotonic,
        progress: Console | None = None,
    ) -> None:
        self.console = console if console is not None else Console()
        self.view = ChatView()
        self.stats = RenderStats()
        self._writer: LiveWriter | PlainWriter
        if self.console.is_terminal and not (
            self.console.is_dumb_terminal or self.console.legacy_windows
        ):
            self._writer = LiveWriter(
                self.console,
                self.view,
                show_reasoning=show_reasoning,
                refresh_interval=refresh_interval,
                clock=clock,
                stats=self.stats,
            )
        else:
            self._writer = PlainWriter(
                self.console.file,
                self.view,
                show_reasoning=show_reasoning,
                progress=progress.file if progress is not None else None,
            )
        self._closed = False

    @property
    def live(self) -> bool:
        """Whether output goes to a live terminal region (False: plain text)."""
        return isinstance(self._writer, LiveWriter)

    def feed(self, event: BaseEvent) -> None:
        """Apply one event to `view` and render what it changed. Ignored after `close()`."""
        if self._closed:
            return
        self.view.apply(event)
        self._writer.on_event(event)

    def tick(self) -> None:
        """Redraw the live region, so spinners move while no event arrives.

        Call it a few times a second while waiting; it does nothing in plain-text mode or
        after `close()`.
        """
        if not self._closed and isinstance(self._writer, LiveWriter):
            self._writer.tick()

    def close(self) -> None:
        """Flush everything still open, end the live region and print the footer. Idempotent.

        Call it when the stream ends, also on error or cancellation, so the terminal is left
        with its cursor shown and the partial answer in the scrollback.
        """
        if self._closed:
            return
        self._closed = True
        self._writer.close()

    async def render(self, events: AsyncIterable[BaseEvent]) -> ChatView:
        """Feed every event of `events`, close (also on error), and return the final view."""
        try:
            async for event in events:
                self.feed(event)
        finally:
            self.close()
        return self.view

    def __enter__(self) -> ChatRenderer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
