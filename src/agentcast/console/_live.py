"""Terminal output: finished parts go to the scrollback once, only the open tail is live.

Why append-only: `rich.live.Live` erases its last frame by moving the cursor up by the number of
rows it believes it drew. A frame holding the whole answer makes every refresh re-render all of
it (O(n^2) for a long answer) and, with wide glyphs or a resize, leaves stale rows behind. So each
finished markdown block, tool call, custom event and error is printed once with
`console.print`, in timeline order, and the `Live` region only holds what is still changing: the
unfinished markdown tail, running tool calls, the "Thinking..." line. The tail preview is capped
(`_PREVIEW_CHARS`), so one refresh costs O(1) whatever the answer's length, and refreshes are
throttled; total work is O(n).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, Group, NewLine, RenderableType, RenderResult
from rich.live import Live
from rich.markdown import Markdown
from rich.padding import Padding
from rich.segment import Segment
from rich.spinner import Spinner
from rich.text import Text

from agentcast.console._blocks import MarkdownBlocks
from agentcast.console._format import (
    ASCII,
    UNICODE,
    Encodable,
    encoding_of,
    show_value,
    supports_unicode,
    tail_text,
    to_json,
)
from agentcast.console._tty import NoControlEcho
from agentcast.console._view import (
    ChatView,
    CustomView,
    ErrorView,
    Item,
    TextBlock,
    ToolCallView,
)
from agentcast.console._widgets import Gutter, Lines, MarkdownBlock, SeparatedLine, hang, took
from agentcast.events import AgentEnd, BaseEvent, Custom, LLMToken, ToolCallDelta

_PREVIEW_CHARS = 2000  # the live markdown tail; about a screenful of prose
_NESTED_CHARS = 320  # the live tail of text streamed by an LLM inside a tool
_ARGS_CHARS = 300
_OUTPUT_CHARS = 600
_LIVE_ITEMS = 6  # items shown live after the first uncommitted one, and inside a running tool
_THROTTLED = (LLMToken, ToolCallDelta, Custom)
_GROUPED = frozenset(("tool", "custom", "error"))


@dataclass
class RenderStats:
    """Counters of the renderer's work, for tests and benchmarks.

    Attributes:
        markdown_chars: characters passed to `rich.markdown.Markdown`, committed and preview.
        committed_chars: characters of markdown printed to the scrollback (each exactly once).
        refreshes: redraws of the live region requested by the renderer.
    """

    markdown_chars: int = 0
    committed_chars: int = 0
    refreshes: int = 0


class _LiveView:
    """The live region: whatever the writer has not committed yet, cropped to the screen."""

    def __init__(self, writer: LiveWriter) -> None:
        self.writer = writer

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        renderables = self.writer.live_renderables(console, options)
        if not renderables:
            return
        lines = console.render_lines(Group(*renderables), options, pad=False)
        # Keep the newest rows: a frame taller than the screen cannot be erased by Live.
        yield Lines(lines[-max(3, console.size.height - 2) :])


class _TextStream:
    """Commit state of the text block being streamed into the scrollback."""

    def __init__(self, block: TextBlock) -> None:
        self.block = block
        self.used = 0  # how many of block.parts were fed to `blocks`
        self.blocks = MarkdownBlocks()
        self.cache_key: tuple[int, int] = (-1, -1)
        self.cache: list[list[Segment]] = []


class LiveWriter:
    """Drives a `rich.live.Live` region for a terminal, reading everything from the view."""

    def __init__(
        self,
        console: Console,
        view: ChatView,
        *,
        show_reasoning: bool,
        refresh_interval: float,
        clock: Callable[[], float],
        stats: RenderStats,
    ) -> None:
        self._console = console
        self._view = view
        self._show_reasoning = show_reasoning
        self._interval = refresh_interval
        self._clock = clock
        self.stats = stats
        encoding = encoding_of(console.file)
        unicode = supports_unicode(encoding)
        self._encoding = None if unicode else encoding
        self._glyphs = UNICODE if unicode else ASCII
        self._live: Live | None = None
        self._no_echo: NoControlEcho | None = None
        self._next = 0  # index of the first top-level item not yet in the scrollback
        self._stream: _TextStream | None = None
        self._last_printed: str | None = None
        self._last_refresh = float("-inf")
        self._closed = False
        # Kept, not rebuilt per redraw: a spinner's frame comes from the time since it was made.
        self._spinners: dict[str, Spinner] = {}

    def on_event(self, event: BaseEvent) -> None:
        """Commit what `event` finished and refresh the live region (throttled for tokens)."""
        if self._closed:
            return
        if self._live is None:
            view: RenderableType = _LiveView(self)
            if self._encoding is not None:
                view = Encodable(view, self._encoding)
            self._live = Live(
                view,
                console=self._console,
                auto_refresh=False,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            # Before the first frame: a Ctrl-C echoed as `^C` would break its erase (see _tty).
            self._no_echo = NoControlEcho(self._console.file)
            self._live.start()
        self._commit(force=False)
        if isinstance(event, AgentEnd):
            self.close()
            return
        now = self._clock()
        if isinstance(event, _THROTTLED) and now - self._last_refresh < self._interval:
            return
        self._last_refresh = now
        self.stats.refreshes += 1
        self._live.refresh()

    def tick(self) -> None:
        """Redraw the live region so spinners move while no event arrives."""
        if self._live is not None and not self._closed:
            self._live.refresh()

    def _spinner(self, key: str, label: str) -> Spinner:
        spinner = self._spinners.get(key)
        if spinner is None:
            spinner = self._spinners[key] = Spinner(self._glyphs.spinner, Text(label, style="dim"))
        return spinner

    def close(self) -> None:
        """Commit everything left, remove the live region, print the footer. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._commit(force=True)
        if self._live is not None:
            self._live.stop()
        if self._no_echo is not None:
            self._no_echo.restore()
        footer = self._view.footer
        if footer is not None:
            prefix, parts, separator = footer.layout(ascii_only=self._encoding is not None)
            line = SeparatedLine(
                [prefix + parts[0], *parts[1:]],
                separator=separator,
                style="dim",
                indent=len(prefix),
            )
            self._print(line, "footer")

    # -- scrollback ----------------------------------------------------------------------

    def _commit(self, *, force: bool) -> None:
        # `_next` moves past an item before it is printed: rich redraws the live region right
        # after the printed lines, and that frame must not show the item a second time.
        items = self._view.items
        while self._next < len(items):
            item = items[self._next]
            if isinstance(item, TextBlock):
                rest = self._commit_text(item, force=force)
                if rest is None:
                    return
                self._next += 1
                if rest:
                    self._print_text(item, rest)
                continue
            if isinstance(item, ToolCallView) and not (item.finished or force):
                return
            self._next += 1
            if isinstance(item, ToolCallView):
                self._print(self._tool(item, live=False), "tool")
            elif isinstance(item, CustomView):
                self._print(self._custom(item), "custom")
            else:
                self._print(self._error(item), "error")

    def _commit_text(self, block: TextBlock, *, force: bool) -> str | None:
        """Print the block's finished markdown blocks; its remaining text once it is closed."""
        stream = self._stream
        if stream is None or stream.block is not block:
            stream = self._stream = _TextStream(block)
        hidden = block.kind == "reasoning" and not self._show_reasoning
        if stream.used < len(block.parts) and not hidden:
            done = stream.blocks.feed("".join(block.parts[stream.used :]))
            if done.strip():
                self._print_text(block, done)
        stream.used = len(block.parts)
        if not (block.closed or force):
            return None
        self._stream = None
        rest = stream.blocks.flush()
        return rest if rest.strip() and not hidden else ""

    def _print_text(self, block: TextBlock, text: str) -> None:
        if block.kind == "text" and block.depth == 0:
            self.stats.committed_chars += len(text)
            self._print(self._markdown(text), "text")
        else:
            self._print(self._plain(block, text.strip("\n")), "text")

    def _print(self, renderable: RenderableType, kind: str) -> None:
        last = self._last_printed
        if last is not None and not (kind in _GROUPED and last in _GROUPED):
            renderable = Group(NewLine(), renderable)
        if self._encoding is not None:
            renderable = Encodable(renderable, self._encoding)
        self._last_printed = kind  # before printing: the live frame drawn after it needs it
        self._console.print(renderable)

    # -- live region ---------------------------------------------------------------------

    def live_renderables(self, console: Console, options: ConsoleOptions) -> list[RenderableType]:
        """What the live region shows now (called by rich on every redraw)."""
        out: list[RenderableType] = []
        if self._view.thinking:
            out.append(self._spinner("", "Thinking..."))
        items = self._view.items
        if self._next >= len(items):
            return out
        first = items[self._next]
        # Only the newest items of a backlog (behind a running tool) are drawn, so one redraw
        # costs the same however long the backlog grows.
        later = items[max(self._next + 1, len(items) - _LIVE_ITEMS) :]
        for item in (first, *later):
            renderable = self._live_item(item, console, options)
            if renderable is not None:
                out.append(renderable)
        last = self._last_printed
        kind = "text" if isinstance(first, TextBlock) else "tool"
        if out and last is not None and not (kind in _GROUPED and last in _GROUPED):
            out.insert(0, NewLine())
        return out

    def _live_item(
        self, item: Item, console: Console, options: ConsoleOptions
    ) -> RenderableType | None:
        stream = self._stream
        if not isinstance(item, TextBlock) or stream is None or stream.block is not item:
            return self._nested(item, live=True)
        if item.kind == "reasoning" and not self._show_reasoning:
            return None
        if not (item.kind == "text" and item.depth == 0):
            return self._plain(item, stream.blocks.preview(_PREVIEW_CHARS).strip("\n"))
        key = (stream.blocks.fed, options.max_width)
        if key != stream.cache_key:
            preview = stream.blocks.preview(_PREVIEW_CHARS)
            stream.cache = console.render_lines(self._markdown(preview), options, pad=False)
            stream.cache_key = key
        return Lines(stream.cache)

    # -- renderables ---------------------------------------------------------------------

    def _markdown(self, text: str) -> MarkdownBlock:
        self.stats.markdown_chars += len(text)
        return MarkdownBlock(Markdown(text))

    def _plain(self, block: TextBlock, text: str) -> Text:
        if block.kind == "reasoning":
            return Text(text, style="dim italic")
        return Text(text, style="dim" if block.depth else "")

    def _tool(self, tool: ToolCallView, *, live: bool) -> RenderableType:
        glyphs = self._glyphs
        header = Text.assemble((f"{glyphs.tool} ", "cyan"), (tool.name or "tool", "bold cyan"))
        if tool.args_error is not None:
            header.append(" " + show_value(tool.raw_args, _ARGS_CHARS, glyphs.ellipsis), "dim")
            header.append(f"  invalid arguments: {tool.args_error}", "red")
        elif tool.args is not None:
            header.append(" " + show_value(to_json(tool.args), _ARGS_CHARS, glyphs.ellipsis), "dim")
        elif tool.arg_parts:
            header.append(" " + tail_text(tool.arg_parts, _ARGS_CHARS), "dim")
        rows: list[RenderableType] = [header]
        inner: list[RenderableType] = []
        for item in tool.items[-_LIVE_ITEMS:] if live else tool.items:
            renderable = self._nested(item, live=live)
            if renderable is not None:
                inner.append(renderable)
        if inner:
            rows.append(Gutter(Group(*inner), glyphs.gutter))
        status = self._tool_status(tool, live=live)
        if status is not None:
            rows.append(status)
        return Group(*rows)

    def _tool_status(self, tool: ToolCallView, *, live: bool) -> RenderableType | None:
        glyphs = self._glyphs
        duration = took(tool.duration_ms)
        if tool.state == "ok":
            output = show_value(tool.output, _OUTPUT_CHARS, glyphs.ellipsis)
            return hang(Text(f"  {glyphs.ok} ", "green"), Text(output).append(duration, "dim"))
        if tool.state == "error":
            message = Text(f"failed: {tool.error}", "red").append(duration, "dim")
            return hang(Text(f"  {glyphs.failed} ", "red"), message)
        if tool.state == "cancelled":
            return Text(f"  {glyphs.stopped} cancelled", "yellow")
        if live and tool.state == "running":
            return Padding(self._spinner(tool.tool_call_id, "running"), (0, 0, 0, 2))
        return None

    def _nested(self, item: Item, *, live: bool) -> RenderableType | None:
        if isinstance(item, ToolCallView):
            return self._tool(item, live=live)
        if isinstance(item, CustomView):
            return self._custom(item)
        if isinstance(item, ErrorView):
            return self._error(item)
        if item.kind == "reasoning" and not self._show_reasoning:
            return None
        text = tail_text(item.parts, _NESTED_CHARS) if live else item.text
        return self._plain(item, text.strip("\n"))

    def _custom(self, item: CustomView) -> Text:
        # Dim and worded as what it is - data the app sent into the run - so it cannot be
        # mistaken for a tool call (a bold cyan name after the tool glyph).
        text = Text(f"{self._glyphs.custom} custom {item.name}", style="dim")
        if item.data is not None:
            data = show_value(item.data, _OUTPUT_CHARS, self._glyphs.ellipsis)
            text.append(f": {data}", "dim italic")
        return text

    def _error(self, item: ErrorView) -> RenderableType:
        style = "yellow" if item.retryable else "bold red"
        return hang(Text(f"{self._glyphs.error} ", style), Text(item.message, style))
