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

Given a second file (`progress`), the writer puts only the answer - the text of top-level LLM
calls - in the first one and every other line in `progress`: `agentcast run "..." > file`
keeps the answer alone in the file and shows the rest on stderr.
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


class _Out:
    """One output file and whether its cursor is at the start of a line."""

    def __init__(self, file: IO[str]) -> None:
        self.file = file
        self.encoding = encoding_of(file)
        self.at_line_start = True
        self.broken = False

    def write(self, text: str) -> None:
        if self.broken or not text:
            return
        try:
            try:
                self.file.write(text)
            except UnicodeEncodeError:
                # A legacy console (cp1252) or a stray surrogate: degrade the glyph, keep the run.
                self.file.write(safe_text(text, self.encoding))
            self.file.flush()
        except BrokenPipeError:
            # The reader went away (`| head`); rendering must not take the run down with it.
            self.broken = True
        self.at_line_start = text.endswith(("\n", "\r"))

    def end_line(self) -> None:
        if not self.at_line_start:
            self.write("\n")


class PlainWriter:
    """Writes a run's events as plain text, reading context from the view.

    Args:
        file: where the answer goes, and everything else when `progress` is None.
        view: the view model, already updated with each event passed to `on_event`.
        show_reasoning: write reasoning as `[thinking]` lines.
        progress: where everything but the answer goes (tool lines, reasoning, nested LLMs,
            custom events, errors, the footer).
    """

    def __init__(
        self,
        file: IO[str],
        view: ChatView,
        *,
        show_reasoning: bool,
        progress: IO[str] | None = None,
    ) -> None:
        self._answer = _Out(file)
        self._progress = _Out(progress) if progress is not None else self._answer
        self._view = view
        self._show_reasoning = show_reasoning
        self._ascii = not supports_unicode(self._progress.encoding)
        self._ellipsis = "..." if self._ascii else "…"
        self._stream_key: tuple[str, str] | None = None
        self._announced: set[str] = set()

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
        """End unfinished lines, so what follows (a shell prompt) starts on its own."""
        self._answer.end_line()
        self._progress.end_line()

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
        out = self._progress if label else self._answer
        self._stream(out, (event.call_id, event.kind), label, event.token)

    def _stream(self, out: _Out, key: tuple[str, str], prefix: str, text: str) -> None:
        if self._stream_key != key:
            self._answer.end_line()
            self._progress.end_line()
            self._stream_key = key
        if prefix:
            pieces: list[str] = []
            for piece in text.splitlines(keepends=True):
                if out.at_line_start:
                    pieces.append(prefix)
                pieces.append(piece)
                out.at_line_start = piece.endswith(("\n", "\r"))
            out.write("".join(pieces))
        else:
            out.write(text)

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
        self._answer.end_line()
        self._progress.end_line()
        indent = "  " * depth
        # Continuation lines of a multi-line value stay inside the line's indentation.
        self._progress.write(indent + text.replace("\n", "\n" + indent + "  ") + "\n")
        self._stream_key = None
