"""Split streamed markdown into finished blocks and an open tail, in O(n) total.

A block is finished at a blank line outside a fenced code block, once the next line shows that
it starts a new block: an indented line after a blank line may still belong to the block above
(a list item's second paragraph, indented code), so it does not end it. Fence markers are only
recognised on complete lines, so a marker split across tokens ("`" then "``python") is never
misread. Text is kept as lines and pieces, never as one growing string: appending a token to a
long string copies it, which is what makes naive streaming renderers quadratic.
"""

from __future__ import annotations


def _fence_marker(line: str) -> str:
    text = line.strip()
    if not text.startswith(("```", "~~~")):
        return ""
    char = text[0]
    size = len(text) - len(text.lstrip(char))
    # "```code```" on one line is inline code in a paragraph, not a fence (CommonMark).
    if char == "`" and "`" in text[size:]:
        return ""
    return char * size


def _closes(line: str, marker: str) -> bool:
    text = line.strip()
    return len(text) >= len(marker) and text == marker[0] * len(text)


class MarkdownBlocks:
    """Incremental block splitter for streamed markdown.

    `feed(text)` returns the text of the blocks the new text finished (often ""); the rest stays
    in the open tail until more text or `flush()` ends it. Each character is scanned once.
    """

    __slots__ = ("_cut", "_fence", "_fence_line", "_lines", "_partial", "fed")

    def __init__(self) -> None:
        self._lines: list[str] = []  # complete lines of the open tail, each ending in "\n"
        self._partial: list[str] = []  # pieces of the current, unfinished line
        self._fence = ""  # the opening marker while inside a fenced code block
        self._fence_line = 0  # index in _lines of that fence's opening line
        self._cut = 0  # len(_lines) just after a blank line: a block may end there
        self.fed = 0
        """Characters fed so far; changes whenever the tail does."""

    @property
    def in_fence(self) -> bool:
        """Whether the tail is inside an open fenced code block."""
        return bool(self._fence)

    @property
    def tail(self) -> str:
        """The open, unfinished text."""
        return "".join(self._lines) + "".join(self._partial)

    def feed(self, text: str) -> str:
        """Add streamed text; return the finished blocks' text ("" if none finished)."""
        self.fed += len(text)
        done: list[str] = []
        pieces = text.split("\n")
        for piece in pieces[:-1]:
            self._partial.append(piece)
            self._line("".join(self._partial) + "\n", done)
            self._partial.clear()
        last = pieces[-1]
        if last:
            if not self._partial and self._cut and last[0] not in " \t":
                # The first character of the line after a blank line is enough to know that a
                # new block starts, so the finished one is committed without waiting a line.
                self._take(done)
            self._partial.append(last)
        return "".join(done)

    def _line(self, line: str, done: list[str]) -> None:
        if self._fence:
            if _closes(line, self._fence):
                self._fence = ""
            self._lines.append(line)
            return
        if not line.strip():
            self._lines.append(line)
            self._cut = len(self._lines)
            return
        if self._cut and line[0] not in " \t":
            self._take(done)
        self._cut = 0
        marker = _fence_marker(line)
        if marker:
            self._fence = marker
            self._fence_line = len(self._lines)
        self._lines.append(line)

    def _take(self, done: list[str]) -> None:
        done.append("".join(self._lines[: self._cut]))
        del self._lines[: self._cut]
        self._cut = 0

    def flush(self) -> str:
        """End the stream: return the open tail and reset."""
        text = self.tail
        self._lines.clear()
        self._partial.clear()
        self._fence = ""
        self._cut = 0
        return text

    def preview(self, limit: int) -> str:
        """The end of the open tail, at most about `limit` characters, cut at a line start.

        When the cut falls inside an open fenced code block, the fence's opening line is kept
        so the preview still renders as code. Costs O(limit), whatever the tail's length.
        """
        size = 0
        partial: list[str] = []
        for piece in reversed(self._partial):
            size += len(piece)
            partial.append(piece)
            if size > limit:
                # One line longer than the limit: show its end.
                return "".join(reversed(partial))[-limit:]
        start = len(self._lines)
        while start and size + len(self._lines[start - 1]) <= limit:
            start -= 1
            size += len(self._lines[start])
        head = self._lines[self._fence_line] if self._fence and self._fence_line < start else ""
        return head + "".join(self._lines[start:]) + "".join(reversed(partial))
