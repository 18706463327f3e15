"""Small formatting helpers shared by the plain and the live renderer."""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.segment import Segment


@dataclass(frozen=True)
class Glyphs:
    """The symbols the renderers draw with; ASCII ones for outputs that cannot encode the rest."""

    tool: str
    ok: str
    failed: str
    stopped: str
    custom: str
    gutter: str
    ellipsis: str
    error: str
    spinner: str


UNICODE = Glyphs("⚙", "↳", "✗", "⏹", "•", "│", "…", "✗", "dots")
ASCII = Glyphs("*", "->", "x", "#", "-", "|", "...", "!", "line")

_PROBE = "⚙↳✗⏹•│…⏱·⠋"


def encoding_of(file: object) -> str:
    """The canonical name of a text file's encoding; UTF-8 when it declares none (StringIO)."""
    name = getattr(file, "encoding", None) or "utf-8"
    try:
        return codecs.lookup(name).name
    except LookupError:
        return "utf-8"


def supports_unicode(encoding: str) -> bool:
    """Whether `encoding` can write the renderers' Unicode glyphs."""
    try:
        _PROBE.encode(encoding)
    except (UnicodeError, LookupError):
        return False
    return True


def safe_text(text: str, encoding: str) -> str:
    """`text` with what `encoding` cannot write replaced, so a write never raises."""
    return text.encode(encoding, "replace").decode(encoding, "replace")


def to_json(value: Any) -> str:
    """Compact, readable JSON (`{"a": 2, "b": 3}`), falling back to `str` for odd values."""
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def show_value(value: Any, limit: int, ellipsis: str = "…") -> str:
    """A tool output or custom payload as one bounded string (strings shown as they are)."""
    text = value if isinstance(value, str) else to_json(value)
    if len(text) > limit:
        return f"{text[:limit]}{ellipsis} (+{len(text) - limit} chars)"
    return text


def tail_text(parts: list[str], limit: int) -> str:
    """The last `limit` characters of the joined `parts`, in O(limit) whatever their length."""
    size = 0
    picked: list[str] = []
    for piece in reversed(parts):
        picked.append(piece)
        size += len(piece)
        if size >= limit:
            break
    text = "".join(reversed(picked))
    return text[-limit:] if len(text) > limit else text


class Encodable:
    """Renders a renderable with every character the console's encoding lacks replaced by `?`.

    rich writes with the file's own error handler, so on a legacy (e.g. cp1252) stream a single
    emoji raises `UnicodeEncodeError` and leaves rich's buffer dirty, failing every later print.
    """

    def __init__(self, renderable: RenderableType, encoding: str) -> None:
        self.renderable = renderable
        self.encoding = encoding

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        encoding = self.encoding
        for segment in console.render(self.renderable, options):
            if segment.text and not segment.control:
                yield Segment(safe_text(segment.text, encoding), segment.style)
            else:
                yield segment
