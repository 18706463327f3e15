"""Small rich renderables the live writer builds its output from."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.markdown import Markdown
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text


class MarkdownBlock:
    """A markdown block without the empty lines rich puts around some elements.

    rich starts a list, table or quote rendered alone with an empty line and ends a rule with
    one; stripped, blocks printed one at a time with one blank line between them look like the
    whole document rendered at once.
    """

    def __init__(self, markdown: Markdown) -> None:
        self.markdown = markdown

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = console.render_lines(self.markdown, options, pad=False)
        start, end = 0, len(lines)
        while start < end and not Segment.get_line_length(lines[start]):
            start += 1
        while end > start and not Segment.get_line_length(lines[end - 1]):
            end -= 1
        yield Lines(lines[start:end])


class Lines:
    """Lines rendered earlier, yielded again without re-rendering."""

    def __init__(self, lines: list[list[Segment]]) -> None:
        self.lines = lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        newline = Segment.line()
        for line in self.lines:
            yield from line
            yield newline


class Gutter:
    """Indents a renderable behind a dim vertical bar: what happened inside a tool."""

    def __init__(self, renderable: RenderableType, bar: str) -> None:
        self.renderable = renderable
        self.prefix = Segment(f"  {bar} ", Style(dim=True))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        inner = options.update(width=max(1, options.max_width - self.prefix.cell_length))
        newline = Segment.line()
        for line in console.render_lines(self.renderable, inner, pad=False):
            yield self.prefix
            yield from line
            yield newline


class SeparatedLine:
    """Items joined by a separator on one line, wrapped between items, never inside one.

    On a narrow terminal `ttft 120 ms · 45.2 tok/s · 850 ms` becomes two lines that each hold
    whole items (`850 ms` never splits into `850` and `ms`); a continuation line starts after
    `indent` spaces, under the first item's text. An item wider than the screen alone is folded
    by rich as usual.

    Args:
        items: the items, plain strings or styled `Text`.
        separator: put between two items on the same line.
        style: the style of the whole line.
        indent: spaces before each continuation line.
    """

    def __init__(
        self,
        items: Sequence[str | Text],
        *,
        separator: str = " · ",
        style: str = "",
        indent: int = 0,
    ) -> None:
        self.items = [Text(item) if isinstance(item, str) else item for item in items]
        self.separator = separator
        self.style = style
        self.indent = indent

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        gap = Text(self.separator).cell_len
        line = Text(style=self.style)
        for item in self.items:
            if line.plain.strip() and line.cell_len + gap + item.cell_len > width:
                yield line
                line = Text(" " * self.indent, style=self.style)
            elif line.plain.strip():
                line.append(self.separator)
            line.append_text(item)
        yield line


def took(duration_ms: float | None) -> str:
    # Sources that do not time their tools report 0; showing "0 ms" there would be made up.
    if not duration_ms:
        return ""
    if duration_ms >= 1000:
        return f"  {duration_ms / 1000:.1f} s"
    return f"  {duration_ms:.0f} ms" if duration_ms >= 1 else "  <1 ms"


def hang(prefix: Text, body: Text) -> Table:
    """`prefix` then `body`, with the body's wrapped lines aligned after the prefix."""
    grid = Table.grid()
    grid.add_column(no_wrap=True)
    grid.add_column()
    grid.add_row(prefix, body)
    return grid
