"""Plain-text output for pipes, files and dumb terminals: no escape codes, no redraws.

The answer is written token by token as it arrives. Everything else is one line per fact:

    [thinking] reasoning text
    [tool] add {"a": 2, "b": 3}
      [add] text of an LLM called inside the tool
      [custom] progress {"done": 1}
    [tool] add -> 5
    [tool] divide failed: ZeroDivisionError: division by zero
    [custom] name {"data": 1}
    [error] message
    ⏱ ttft 120 ms · 45.2 tok/s · 2 tool calls · 310 tokens · 1.2 s

Lines inside a tool are indented by nesting depth. Streams that interleave (the answer, a
reasoning stream, parallel tools' nested LLMs) each start on a line of their own.
"""

from __future__ import annotations

from typing import IO, Any

from agentcast.console._format import encoding_of, safe_text, show_value, supports_unicode, to_json
from agentcast.console._view import ChatView, ToolCallView
from agentcast.events import (
    AgentEnd,
    BaseEvent,
    Custom,
    Error,
    LLMToken,
    ToolCallEnd,
    ToolEnd,
    ToolStart,
)

_OUTPUT_LIMIT = 2000


class PlainWriter:
    """Writes a run's events as plain text to a file, reading context from the view."""

    def __init__(self, file: IO[str], view: ChatView, *, show_reasoning: bool) -> None:
        self._file = file
        self._view = view
        self._show_reasoning = show_reasoning
        self._encoding = encoding_of(file)
        self._ascii = not supports_unicode(self._encoding)
        self._ellipsis = "..." if self._ascii else "…"
        self._at_line_start = True
        self._stream_key: tuple[str, str] | None = None
        self._announced: set[str] = set()
        self._broken = False

    def on_event(self, event: BaseEvent) -> None:
        """Write what `event` adds; the view has already been updated with it."""
        if isinstance(event, LLMToken):
            self._token(event)
        elif isinstance(event, (ToolCallEnd, ToolStart)):
            tool = self._view.tools.get(event.tool_call_id)
            if tool is not None:
                self._announce(tool)
        elif isinstance(event, ToolEnd):
            self._tool_end(event)
        elif isinstance(event, Custom):
            self._custom(event)
        elif isinstance(event, Error):
            self._line(f"[error] {event.error}")
        elif isinstance(event, AgentEnd) and self._view.footer is not None:
            self._line(self._view.footer.summary(ascii_only=self._ascii))

    def close(self) -> None:
        """End an unfinished line, so what follows (a shell prompt) starts on its own."""
        self._end_line()

    # -- streams -------------------------------------------------------------------------

    def _token(self, event: LLMToken) -> None:
        reasoning = event.kind == "reasoning"
        if reasoning and not self._show_reasoning:
            return
        label = "[thinking] " if reasoning else ""
        tool = self._view.tool_for_call(event.call_id)
        if tool is not None or event.depth > 0:
            name = f"[{tool.name}] " if tool is not None else ""
            label = "  " * max(event.depth, 1) + name + label
        self._stream((event.call_id, event.kind), label, event.token)

    def _stream(self, key: tuple[str, str], prefix: str, text: str) -> None:
        if self._stream_key != key:
            self._end_line()
            self._stream_key = key
        if prefix:
            out: list[str] = []
            for piece in text.splitlines(keepends=True):
                if self._at_line_start:
                    out.append(prefix)
                out.append(piece)
                self._at_line_start = piece.endswith(("\n", "\r"))
            self._write("".join(out))
        else:
            self._write(text)
            self._at_line_start = text.endswith(("\n", "\r"))

    # -- one-line facts ------------------------------------------------------------------

    def _announce(self, tool: ToolCallView) -> None:
        if tool.tool_call_id in self._announced:
            return
        self._announced.add(tool.tool_call_id)
        if tool.args_error is not None:
            text = f"{tool.raw_args} (invalid arguments: {tool.args_error})"
        else:
            text = to_json(tool.args if tool.args is not None else {})
        self._line(f"[tool] {tool.name} {text}", depth=tool.depth)

    def _tool_end(self, event: ToolEnd) -> None:
        tool = self._view.tools.get(event.tool_call_id)
        depth = tool.depth if tool is not None else 0
        if tool is not None:
            self._announce(tool)
        if event.status == "ok":
            output = show_value(event.output, _OUTPUT_LIMIT, self._ellipsis)
            self._line(f"[tool] {event.name} -> {output}", depth=depth)
        elif event.status == "error":
            self._line(f"[tool] {event.name} failed: {event.error}", depth=depth)
        else:
            self._line(f"[tool] {event.name} cancelled", depth=depth)

    def _custom(self, event: Custom) -> None:
        tool = self._view.tools.get(event.tool_call_id) if event.tool_call_id else None
        depth = tool.depth + 1 if tool is not None else 0
        data: Any = event.data
        text = event.name if data is None else f"{event.name} {show_value(data, _OUTPUT_LIMIT)}"
        self._line(f"[custom] {text}", depth=depth)

    def _line(self, text: str, *, depth: int = 0) -> None:
        self._end_line()
        indent = "  " * depth
        # Continuation lines of a multi-line value stay inside the line's indentation.
        self._write(indent + text.replace("\n", "\n" + indent + "  ") + "\n")
        self._stream_key = None

    def _end_line(self) -> None:
        if not self._at_line_start:
            self._write("\n")
            self._at_line_start = True

    def _write(self, text: str) -> None:
        if self._broken:
            return
        try:
            try:
                self._file.write(text)
            except UnicodeEncodeError:
                # A legacy console (cp1252) or a stray surrogate: degrade the glyph, keep the run.
                self._file.write(safe_text(text, self._encoding))
            self._file.flush()
        except BrokenPipeError:
            # The reader went away (`| head`); rendering must not take the run down with it.
            self._broken = True
