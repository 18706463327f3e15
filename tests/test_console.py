"""agentcast.console: the view-model reducer, the markdown block splitter, plain and live output."""

from __future__ import annotations

import asyncio
import io
import random
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from rich.console import Console
from rich.markdown import Markdown

import agentcast.console as console_pkg
from agentcast.console import (
    ChatRenderer,
    ChatView,
    CustomView,
    ErrorView,
    Footer,
    TextBlock,
    ToolCallView,
    reduce,
)
from agentcast.console._blocks import MarkdownBlocks
from agentcast.events import (
    AgentEnd,
    AgentStart,
    AgentStep,
    BaseEvent,
    Custom,
    Error,
    LLMEnd,
    LLMStart,
    LLMToken,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolEnd,
    ToolStart,
)

METRICS = {"ttft_ms": 120, "tokens_per_s": 45.2, "tool_calls": 1, "tokens": 12, "duration_ms": 850}
FOOTER = "⏱ ttft 120 ms · 45.2 tok/s · 1 tool call · 12 tokens · 850 ms"


def chat_events() -> list[BaseEvent]:
    """A run with reasoning, a tool with streamed args, a custom event, a nested LLM, an answer."""
    return [
        AgentStart(seq=0, run_id="r1", input="add 2 and 3"),
        LLMStart(seq=1, call_id="c1"),
        LLMToken(seq=2, call_id="c1", token="Hmm, ", kind="reasoning"),
        LLMToken(seq=3, call_id="c1", token="add.\n", kind="reasoning"),
        LLMToken(seq=4, call_id="c1", token="Let me "),
        LLMToken(seq=5, call_id="c1", token="add."),
        ToolCallStart(seq=6, call_id="c1", tool_call_id="t1", name="add"),
        ToolCallDelta(seq=7, tool_call_id="t1", delta='{"a": 2, '),
        ToolCallDelta(seq=8, tool_call_id="t1", delta='"b": 3}'),
        ToolCallEnd(seq=9, tool_call_id="t1", name="add", args={"a": 2, "b": 3}),
        LLMEnd(seq=10, call_id="c1", role="tool_use"),
        ToolStart(seq=11, tool_call_id="t1", name="add", input={"a": 2, "b": 3}, call_id="c1"),
        Custom(seq=12, name="progress", data={"pct": 50}, tool_call_id="t1"),
        LLMStart(seq=13, call_id="n1", parent_id="t1", depth=1),
        LLMToken(seq=14, call_id="n1", token="checking\n", depth=1),
        LLMToken(seq=15, call_id="n1", token="done", depth=1),
        LLMEnd(seq=16, call_id="n1", role="internal"),
        ToolEnd(seq=17, tool_call_id="t1", name="add", output=5, duration_ms=3.0),
        LLMStart(seq=18, call_id="c2"),
        LLMToken(seq=19, call_id="c2", token="The answer "),
        LLMToken(seq=20, call_id="c2", token="is **5**."),
        LLMEnd(seq=21, call_id="c2"),
        AgentEnd(seq=22, outcome="success", output="The answer is **5**.", metrics=METRICS),
    ]


@pytest.fixture(autouse=True)
def _terminal_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # rich reads these at render time; a CI with TERM=dumb or TTY_INTERACTIVE=0 would turn the
    # forced terminals of these tests into plain output.
    monkeypatch.setenv("TERM", "xterm-256color")
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)


def view_of(events: list[BaseEvent]) -> ChatView:
    view = ChatView()
    for event in events:
        view.apply(event)
    return view


_CONTROL = re.compile(
    r"\x1b\[(\??)(\d*)(?:;\d+)*([A-Za-z])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\r|\n|[^\x1b\r\n]+"
)


def screen(raw: str) -> list[str]:
    """What a terminal shows after `raw`, scrollback included: just the VT100 that Live uses."""
    lines: list[list[str]] = [[]]
    row = col = 0
    for match in _CONTROL.finditer(raw):
        text = match.group(0)
        if text == "\r":
            col = 0
        elif text == "\n":
            row, col = row + 1, 0
            if row == len(lines):
                lines.append([])
        elif text.startswith("\x1b["):
            op = match.group(3)
            if op == "A":
                row = max(0, row - int(match.group(2) or 1))
            elif op == "K":
                lines[row] = [] if match.group(2) == "2" else lines[row][:col]
        elif not text.startswith("\x1b]"):
            line = lines[row]
            line.extend(" " * (col - len(line)))
            line[col : col + len(text)] = list(text)
            col += len(text)
    out = ["".join(line).rstrip() for line in lines]
    while out and not out[-1]:
        out.pop()
    return out


def tty(width: int = 80, **kwargs: Any) -> Console:
    return Console(
        file=io.StringIO(), width=width, height=40, force_terminal=True, color_system=None, **kwargs
    )


def cursor_shown(raw: str) -> bool:
    return raw.rfind("\x1b[?25h") > raw.rfind("\x1b[?25l")


def raw_of(console: Console) -> str:
    file = console.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


# -- the reducer -------------------------------------------------------------------------------


def test_thinking_until_first_token_or_tool_event() -> None:
    view = ChatView()
    assert view.thinking
    view.apply(AgentStart(seq=0))
    view.apply(LLMStart(seq=1, call_id="c1"))
    assert view.thinking
    view.apply(LLMToken(seq=2, call_id="c1", token="x"))
    assert not view.thinking

    tool_first = view_of(
        [AgentStart(seq=0), ToolCallStart(seq=1, call_id="c", tool_call_id="t", name="f")]
    )
    assert not tool_first.thinking
    ended = view_of([AgentStart(seq=0), AgentEnd(seq=1, outcome="error")])
    assert not ended.thinking


def test_answer_and_reasoning_are_kept_apart() -> None:
    view = view_of(chat_events())
    assert view.answer == "Let me add.The answer is **5**."
    assert view.reasoning == "Hmm, add.\n"
    kinds = [(type(item).__name__, getattr(item, "kind", None)) for item in view.items]
    assert kinds == [
        ("TextBlock", "reasoning"),
        ("TextBlock", "text"),
        ("ToolCallView", None),
        ("TextBlock", "text"),
    ]
    assert all(item.closed for item in view.items if isinstance(item, TextBlock))
    assert view.run_id == "r1"
    assert view.input == "add 2 and 3"


def test_tool_call_lifecycle_with_nested_tokens_and_custom_event() -> None:
    events = chat_events()
    view = view_of(events[:8])
    tool = view.tools["t1"]
    assert (tool.state, tool.raw_args, tool.args) == ("streaming", '{"a": 2, ', None)

    view = view_of(events[:10])
    assert (tool := view.tools["t1"]).state == "called"
    assert tool.args == {"a": 2, "b": 3}
    assert not tool.finished

    view = view_of(events[:16])
    tool = view.tools["t1"]
    assert tool.state == "running"
    assert tool.nested_text == "checking\ndone"
    assert isinstance(tool.items[0], CustomView)
    assert (tool.items[0].name, tool.items[0].data) == ("progress", {"pct": 50})
    assert view.answer == "Let me add."  # nested tokens never leak into the answer

    view = view_of(events)
    tool = view.tools["t1"]
    assert (tool.state, tool.output, tool.duration_ms, tool.finished) == ("ok", 5, 3.0, True)


def test_invalid_arguments_and_failed_tool() -> None:
    view = view_of(
        [
            LLMStart(seq=0, call_id="c"),
            ToolCallStart(seq=1, call_id="c", tool_call_id="t", name="div"),
            ToolCallEnd(seq=2, tool_call_id="t", name="div", error="Expecting value", raw="{bad"),
            ToolStart(seq=3, tool_call_id="t", name="div", call_id="c"),
            ToolEnd(seq=4, tool_call_id="t", name="div", status="error", error="invalid arguments"),
        ]
    )
    tool = view.tools["t"]
    assert (tool.args, tool.args_error, tool.raw_args) == (None, "Expecting value", "{bad")
    assert (tool.state, tool.error, tool.finished) == ("error", "invalid arguments", True)


def test_parallel_tool_calls_keep_their_own_arguments_and_nested_tokens() -> None:
    view = view_of(
        [
            LLMStart(seq=0, call_id="c"),
            ToolCallStart(seq=1, call_id="c", tool_call_id="a", name="f", index=0),
            ToolCallStart(seq=2, call_id="c", tool_call_id="b", name="g", index=1),
            ToolCallDelta(seq=3, tool_call_id="b", delta='{"y"'),
            ToolCallDelta(seq=4, tool_call_id="a", delta='{"x"'),
            ToolCallDelta(seq=5, tool_call_id="a", delta=": 1}"),
            ToolCallDelta(seq=6, tool_call_id="b", delta=": 2}"),
            ToolStart(seq=7, tool_call_id="a", name="f", call_id="c"),
            ToolStart(seq=8, tool_call_id="b", name="g", call_id="c"),
            LLMStart(seq=9, call_id="na", parent_id="a", depth=1),
            LLMStart(seq=10, call_id="nb", parent_id="b", depth=1),
            LLMToken(seq=11, call_id="nb", token="B", depth=1),
            LLMToken(seq=12, call_id="na", token="A", depth=1),
            LLMToken(seq=13, call_id="nb", token="b", depth=1, kind="reasoning"),
        ]
    )
    assert (view.tools["a"].raw_args, view.tools["b"].raw_args) == ('{"x": 1}', '{"y": 2}')
    assert (view.tools["a"].nested_text, view.tools["b"].nested_text) == ("A", "B")
    assert [block.kind for block in view.tools["b"].items if isinstance(block, TextBlock)] == [
        "text",
        "reasoning",
    ]
    assert [item.index for item in view.items if isinstance(item, ToolCallView)] == [0, 1]
    assert view.answer == ""


def test_tool_of_an_agent_inside_a_tool_is_nested_under_it() -> None:
    view = view_of(
        [
            LLMStart(seq=0, call_id="c"),
            ToolCallStart(seq=1, call_id="c", tool_call_id="outer", name="research"),
            ToolStart(seq=2, tool_call_id="outer", name="research", call_id="c"),
            LLMStart(seq=3, call_id="inner-llm", parent_id="outer", depth=1),
            ToolCallStart(seq=4, call_id="inner-llm", tool_call_id="inner", name="search"),
            ToolStart(seq=5, tool_call_id="inner", name="search", call_id="inner-llm", depth=1),
            Custom(seq=6, name="hit", data=1, tool_call_id="inner"),
        ]
    )
    outer, inner = view.tools["outer"], view.tools["inner"]
    assert view.items == [outer]
    assert outer.items == [inner]
    assert (inner.parent_id, inner.depth) == ("outer", 1)
    assert isinstance(inner.items[0], CustomView)


def test_a_tool_call_that_never_runs_settles_at_the_next_model_turn() -> None:
    view = view_of(
        [
            LLMStart(seq=0, call_id="c1"),
            ToolCallStart(seq=1, call_id="c1", tool_call_id="t", name="f"),
            ToolCallEnd(seq=2, tool_call_id="t", name="f", args={}),
            LLMEnd(seq=3, call_id="c1", role="tool_use"),
        ]
    )
    assert not view.tools["t"].finished
    view.apply(LLMStart(seq=4, call_id="c2"))
    assert view.tools["t"].finished
    assert view.tools["t"].state == "called"


def test_top_level_custom_error_and_footer() -> None:
    view = view_of(
        [
            AgentStart(seq=0),
            Custom(seq=1, name="note", data={"k": 1}),
            Custom(seq=2, name="orphan", tool_call_id="unknown"),
            Error(seq=3, error="boom", error_type="ValueError", code="tool_error"),
            AgentEnd(seq=4, outcome="cancelled", metrics={"tokens": 1, "tool_calls": 0}),
            AgentStep(seq=5, step=1, content="ignored"),
        ]
    )
    assert [type(item) for item in view.items] == [CustomView, CustomView, ErrorView]
    assert view.errors[0].message == "boom"
    assert view.errors[0].error_type == "ValueError"
    assert (view.ended, view.outcome) == (True, "cancelled")
    assert view.footer == Footer(outcome="cancelled", tokens=1, tool_calls=0)
    assert view.footer.summary() == "⏱ stopped · 1 token"


def test_footer_formats_metrics_and_ignores_bad_values() -> None:
    footer = Footer.from_event(AgentEnd(seq=0, metrics=METRICS))
    assert footer.summary() == FOOTER
    assert footer.summary(ascii_only=True) == "-- " + FOOTER[2:].replace(" · ", " | ")
    odd = Footer.from_event(
        AgentEnd(seq=0, outcome="timeout", metrics={"ttft_ms": "soon", "duration_ms": 2500})
    )
    assert odd.summary() == "⏱ timed out · 2.5 s"


def test_reduce_returns_the_updated_view() -> None:
    view = ChatView()
    assert reduce(view, LLMToken(seq=0, call_id="c", token="hi")) is view
    assert view.answer == "hi"


def test_public_names_match_all() -> None:
    public = {name for name in vars(console_pkg) if not name.startswith("_")}
    assert public == set(console_pkg.__all__)
    for name in console_pkg.__all__:
        value = getattr(console_pkg, name)
        if isinstance(value, type) or hasattr(value, "__code__"):
            assert value.__doc__, name


# -- the block splitter ------------------------------------------------------------------------


def feed_all(chunks: list[str]) -> tuple[list[str], str]:
    blocks = MarkdownBlocks()
    done = [text for chunk in chunks if (text := blocks.feed(chunk))]
    return done, blocks.flush()


def test_blocks_end_at_blank_lines_outside_fences() -> None:
    text = "# Title\n\npara one\n\n```py\na = 1\n\nb = 2\n```\n\nlast"
    done, rest = feed_all(list(text))
    assert done == ["# Title\n\n", "para one\n\n", "```py\na = 1\n\nb = 2\n```\n\n"]
    assert rest == "last"


def test_fence_markers_split_across_tokens() -> None:
    done, rest = feed_all(
        ["intro\n\n`", "``py", "thon\nx = 1\n", "\n", "y\n`", "`", "`\n\n", "after"]
    )
    assert done == ["intro\n\n", "```python\nx = 1\n\ny\n```\n\n"]
    assert rest == "after"


def test_indented_line_after_blank_line_continues_the_block() -> None:
    done, rest = feed_all(["1. item\n\n   more of the item\n\n", "    code\n\n", "next"])
    assert done == ["1. item\n\n   more of the item\n\n    code\n\n"]
    assert rest == "next"


def test_inline_triple_backticks_do_not_open_a_fence() -> None:
    done, rest = feed_all(["use ```x``` inline\n\n", "next\n\n", "end"])
    assert done == ["use ```x``` inline\n\n", "next\n\n"]
    assert rest == "end"


def test_any_chunking_gives_the_same_blocks() -> None:
    text = document(4)
    one_by_one, _ = feed_all(list(text))
    boundaries = {len("".join(one_by_one[: i + 1])) for i in range(len(one_by_one))}
    rng = random.Random(7)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(text)), 300))
        chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        done, rest = feed_all(chunks)
        assert "".join(done) + rest == text
        # Several blocks may be committed at once, but never a cut between two block boundaries.
        assert {len("".join(done[: i + 1])) for i in range(len(done))} <= boundaries
    assert len(boundaries) == 4 * 6 - 1  # the last block waits to see what follows it


def test_preview_is_bounded_and_reopens_the_fence() -> None:
    blocks = MarkdownBlocks()
    blocks.feed("```python\n" + "".join(f"line_{i} = {i}\n" for i in range(200)))
    assert blocks.in_fence
    preview = blocks.preview(100)
    assert preview.startswith("```python\n")
    assert preview.endswith("line_199 = 199\n")
    assert len(preview) <= 100 + len("```python\n")
    blocks.feed("x" * 500)
    assert blocks.preview(100) == "x" * 100


# -- plain output (not a terminal) ------------------------------------------------------------


def plain(**kwargs: Any) -> tuple[ChatRenderer, io.StringIO]:
    file = io.StringIO()
    console = Console(file=file, width=80, force_terminal=False)
    return ChatRenderer(console, **kwargs), file


def test_plain_output_exact() -> None:
    renderer, file = plain()
    assert not renderer.live
    for event in chat_events():
        renderer.feed(event)
    renderer.close()
    assert file.getvalue() == (
        "[thinking] Hmm, add.\n"
        "Let me add.\n"
        '[tool] add {"a": 2, "b": 3}\n'
        '  [custom] progress {"pct": 50}\n'
        "  [add] checking\n"
        "  [add] done\n"
        "[tool] add -> 5\n"
        "The answer is **5**.\n"
        f"{FOOTER}\n"
    )
    assert "\x1b" not in file.getvalue()


def test_plain_with_a_progress_file_keeps_only_the_answer_in_the_main_one() -> None:
    answer, progress = io.StringIO(), io.StringIO()
    renderer = ChatRenderer(
        Console(file=answer, width=80, force_terminal=False),
        progress=Console(file=progress, width=80, force_terminal=False),
    )
    for event in chat_events():
        renderer.feed(event)
    renderer.close()
    assert answer.getvalue() == "Let me add.\nThe answer is **5**.\n"
    assert progress.getvalue() == (
        "[thinking] Hmm, add.\n"
        '[tool] add {"a": 2, "b": 3}\n'
        '  [custom] progress {"pct": 50}\n'
        "  [add] checking\n"
        "  [add] done\n"
        "[tool] add -> 5\n"
        f"{FOOTER}\n"
    )


def test_plain_streams_tokens_as_they_arrive() -> None:
    renderer, file = plain()
    renderer.feed(LLMStart(seq=0, call_id="c"))
    renderer.feed(LLMToken(seq=1, call_id="c", token="Hel"))
    assert file.getvalue() == "Hel"
    renderer.feed(LLMToken(seq=2, call_id="c", token="lo"))
    assert file.getvalue() == "Hello"


def test_plain_failures_errors_and_hidden_reasoning() -> None:
    renderer, file = plain(show_reasoning=False)
    for event in [
        LLMStart(seq=0, call_id="c"),
        LLMToken(seq=1, call_id="c", token="secret", kind="reasoning"),
        ToolCallStart(seq=2, call_id="c", tool_call_id="t", name="div"),
        ToolCallEnd(seq=3, tool_call_id="t", name="div", error="Expecting value", raw="{1/"),
        ToolStart(seq=4, tool_call_id="t", name="div", call_id="c"),
        ToolEnd(seq=5, tool_call_id="t", name="div", status="error", error="ZeroDivisionError"),
        ToolStart(seq=6, tool_call_id="u", name="slow", input={"s": 9}, call_id="c"),
        ToolEnd(seq=7, tool_call_id="u", name="slow", status="cancelled"),
        Custom(seq=8, name="note"),
        Error(seq=9, error="provider went away"),
        AgentEnd(seq=10, outcome="error", metrics={"tokens": 0}),
    ]:
        renderer.feed(event)
    renderer.close()
    assert file.getvalue() == (
        "[tool] div {1/ (invalid arguments: Expecting value)\n"
        "[tool] div failed: ZeroDivisionError\n"
        '[tool] slow {"s": 9}\n'
        "[tool] slow cancelled\n"
        "[custom] note\n"
        "[error] provider went away\n"
        "⏱ failed · 0 tokens\n"
    )


def test_plain_interleaved_nested_streams_each_get_their_own_lines() -> None:
    renderer, file = plain()
    for event in [
        LLMStart(seq=0, call_id="c"),
        ToolStart(seq=1, tool_call_id="a", name="f", input={}, call_id="c"),
        ToolStart(seq=2, tool_call_id="b", name="g", input={}, call_id="c"),
        LLMStart(seq=3, call_id="na", parent_id="a", depth=1),
        LLMStart(seq=4, call_id="nb", parent_id="b", depth=1),
        LLMToken(seq=5, call_id="na", token="one ", depth=1),
        LLMToken(seq=6, call_id="nb", token="two ", depth=1),
        LLMToken(seq=7, call_id="na", token="three", depth=1),
    ]:
        renderer.feed(event)
    renderer.close()
    assert file.getvalue() == "[tool] f {}\n[tool] g {}\n  [f] one \n  [g] two \n  [f] three\n"


def test_plain_legacy_encoding_never_raises() -> None:
    raw = io.BytesIO()
    file = io.TextIOWrapper(raw, encoding="cp1252", newline="")
    renderer = ChatRenderer(Console(file=file, force_terminal=False))
    for event in [
        LLMStart(seq=0, call_id="c"),
        LLMToken(seq=1, call_id="c", token="café 😀 中文"),
        AgentEnd(seq=2, metrics={"tokens": 3}),
    ]:
        renderer.feed(event)
    renderer.close()
    file.flush()
    assert raw.getvalue().decode("cp1252") == "café ? ??\n-- 3 tokens\n"


def test_plain_broken_pipe_does_not_raise() -> None:
    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError

    renderer = ChatRenderer(Console(file=Closed(), force_terminal=False))
    for event in chat_events():
        renderer.feed(event)
    renderer.close()


# -- live output (a terminal) -----------------------------------------------------------------


def test_tty_final_screen() -> None:
    console = tty()
    renderer = ChatRenderer(console)
    assert renderer.live
    for event in chat_events():
        renderer.feed(event)
    renderer.close()
    assert screen(raw_of(console)) == [
        "Hmm, add.",
        "",
        "Let me add.",
        "",
        '⚙ add {"a": 2, "b": 3}',
        '  │ • custom progress: {"pct": 50}',
        "  │ checking",
        "  │ done",
        "  ↳ 5  3 ms",
        "",
        "The answer is 5.",
        "",
        FOOTER,
    ]
    assert cursor_shown(raw_of(console))


def test_tty_footer_wraps_between_items_at_60_columns() -> None:
    console = tty(width=60)
    renderer = ChatRenderer(console)
    metrics = {**METRICS, "duration_ms": 8400, "tokens": 1200}
    renderer.feed(AgentEnd(seq=0, outcome="cancelled", metrics=metrics))
    renderer.close()
    assert screen(raw_of(console)) == [
        "⏱ stopped · ttft 120 ms · 45.2 tok/s · 1 tool call",
        "  1200 tokens · 8.4 s",
    ]


def test_tty_custom_event_reads_as_custom_data_not_as_a_tool_call() -> None:
    console = tty()
    renderer = ChatRenderer(console)
    renderer.feed(Custom(seq=0, name="lookup", data={"place": "under the bed"}))
    renderer.close()
    [line] = screen(raw_of(console))
    assert line == '• custom lookup: {"place": "under the bed"}'
    assert "⚙" not in line


def test_tty_live_region_while_streaming() -> None:
    console = tty()
    renderer = ChatRenderer(console, refresh_interval=0)
    events = chat_events()
    renderer.feed(events[0])
    assert screen(raw_of(console)) == ["⠋ Thinking..."]
    for event in events[1:8]:
        renderer.feed(event)
    assert screen(raw_of(console)) == ["Hmm, add.", "", "Let me add.", "", '⚙ add {"a": 2,']
    for event in events[8:15]:
        renderer.feed(event)
    assert screen(raw_of(console))[4:] == [
        '⚙ add {"a": 2, "b": 3}',
        '  │ • custom progress: {"pct": 50}',
        "  │ checking",
        "  ⠋ running",
    ]


def test_tty_tool_error_cancel_and_error_event() -> None:
    console = tty(width=60)
    renderer = ChatRenderer(console)
    for event in [
        LLMStart(seq=0, call_id="c"),
        ToolCallStart(seq=1, call_id="c", tool_call_id="t", name="div"),
        ToolCallEnd(seq=2, tool_call_id="t", name="div", args={"a": 1, "b": 0}),
        ToolStart(seq=3, tool_call_id="t", name="div", call_id="c"),
        ToolEnd(seq=4, tool_call_id="t", name="div", status="error", error="ZeroDivisionError"),
        ToolStart(seq=5, tool_call_id="u", name="slow", input={}, call_id="c"),
        ToolEnd(seq=6, tool_call_id="u", name="slow", status="cancelled"),
        Error(seq=7, error="provider went away"),
        AgentEnd(seq=8, outcome="cancelled", metrics={"tokens": 0}),
    ]:
        renderer.feed(event)
    assert screen(raw_of(console)) == [
        '⚙ div {"a": 1, "b": 0}',
        "  ✗ failed: ZeroDivisionError",
        "⚙ slow {}",
        "  ⏹ cancelled",
        "✗ provider went away",
        "",
        "⏱ stopped · 0 tokens",
    ]


def test_tty_hides_reasoning_when_asked() -> None:
    console = tty()
    renderer = ChatRenderer(console, show_reasoning=False)
    for event in chat_events():
        renderer.feed(event)
    renderer.close()
    assert "Hmm" not in raw_of(console)
    assert screen(raw_of(console))[0] == "Let me add."


def test_tty_close_without_agent_end_keeps_the_partial_answer() -> None:
    console = tty()
    renderer = ChatRenderer(console)
    renderer.feed(LLMStart(seq=0, call_id="c"))
    renderer.feed(LLMToken(seq=1, call_id="c", token="# Part\n\nhalf an ans"))
    renderer.close()
    renderer.close()
    renderer.feed(LLMToken(seq=2, call_id="c", token="ignored"))
    assert screen(raw_of(console)) == [" " * 38 + "Part", "", "half an ans"]
    assert cursor_shown(raw_of(console))


def test_tty_refreshes_are_throttled_for_tokens_only() -> None:
    now = [0.0]
    renderer = ChatRenderer(tty(), clock=lambda: now[0], refresh_interval=0.5)
    renderer.feed(LLMStart(seq=0, call_id="c"))
    assert renderer.stats.refreshes == 1
    for seq in range(1, 50):
        renderer.feed(LLMToken(seq=seq, call_id="c", token="word "))
    assert renderer.stats.refreshes == 1
    now[0] = 1.0
    renderer.feed(LLMToken(seq=50, call_id="c", token="word "))
    assert renderer.stats.refreshes == 2
    renderer.feed(ToolCallStart(seq=51, call_id="c", tool_call_id="t", name="f"))
    assert renderer.stats.refreshes == 3


def test_wide_glyphs_are_never_duplicated() -> None:
    console = tty(width=20)
    renderer = ChatRenderer(console, refresh_interval=0)
    renderer.feed(LLMStart(seq=0, call_id="c"))
    text = "😀中文 emoji 🎉 and 漢字 wrap around the narrow screen"
    for seq, char in enumerate(text, start=1):
        renderer.feed(LLMToken(seq=seq, call_id="c", token=char))
    renderer.close()
    final = screen(raw_of(console))
    assert "".join(line.strip() for line in final).replace(" ", "") == text.replace(" ", "")


def test_no_color_codes_with_color_system_none_or_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    color = re.compile(r"\x1b\[[0-9;]*(?:3[0-9]|4[0-9]|9[0-7]|10[0-7])(?:;[0-9;]*)?m")
    sgr = re.compile(r"\x1b\[[0-9;]*m")
    plain_tty = tty()
    monkeypatch.setenv("NO_COLOR", "1")
    no_color = Console(file=io.StringIO(), width=80, force_terminal=True, color_system="truecolor")
    for console in (plain_tty, no_color):
        renderer = ChatRenderer(console)
        for event in chat_events():
            renderer.feed(event)
        renderer.close()
        assert not color.search(raw_of(console))
    assert not sgr.search(raw_of(plain_tty))
    assert "\x1b[1m" in raw_of(no_color)  # NO_COLOR removes colours, not bold


def test_tty_legacy_encoding_never_raises() -> None:
    raw = io.BytesIO()
    file = io.TextIOWrapper(raw, encoding="cp1252", newline="")
    console = Console(file=file, width=80, height=40, force_terminal=True, color_system=None)
    renderer = ChatRenderer(console)
    for event in [
        *chat_events()[:-1],
        LLMStart(seq=30, call_id="c3"),
        LLMToken(seq=31, call_id="c3", token="\n\n😀 中文 café\n\n| a |\n|---|\n| 😀 |\n"),
        AgentEnd(seq=32, metrics=METRICS),
    ]:
        renderer.feed(event)
    renderer.close()
    file.flush()
    shown = screen(raw.getvalue().decode("cp1252"))
    assert '* add {"a": 2, "b": 3}' in shown
    assert "  -> 5  3 ms" in shown
    assert "? ?? café" in shown
    assert shown[-1] == "-- ttft 120 ms | 45.2 tok/s | 1 tool call | 12 tokens | 850 ms"


def test_render_feeds_every_event_and_closes_on_error() -> None:
    async def events(fail: bool) -> AsyncIterator[BaseEvent]:
        for event in chat_events()[:6]:
            yield event
        if fail:
            raise RuntimeError("stream broke")

    renderer, file = plain()
    view = asyncio.run(renderer.render(events(fail=False)))
    assert view is renderer.view
    assert view.answer == "Let me add."

    console = tty()
    renderer = ChatRenderer(console)
    with pytest.raises(RuntimeError):
        asyncio.run(renderer.render(events(fail=True)))
    assert screen(raw_of(console)) == ["Hmm, add.", "", "Let me add."]
    assert cursor_shown(raw_of(console))


# -- O(n) work for a long markdown answer -----------------------------------------------------


def document(sections: int) -> str:
    """Markdown with headings, paragraphs, nested lists, tables and fenced code with blank lines."""
    out: list[str] = []
    for i in range(sections):
        out.append(f"## Section {i}\n\n")
        out.append("Streaming **markdown** with `inline code` and a [link](https://x.org). " * 3)
        out.append("\n\n- first point\n- second point\n  - nested point\n- third point\n\n")
        out.append("| name | value | note |\n|---|---:|---|\n")
        out.extend(f"| row {r} | {r * i} | ok 😀 |\n" for r in range(6))
        out.append(
            "\n```python\ndef f(x):\n    y = x * 2\n\n    return y  # blank line above\n```\n\n"
        )
        out.append("1. one\n2. two\n\n")
    return "".join(out)


def tokens_of(text: str) -> Iterator[str]:
    sizes = (3, 4, 5, 2, 6, 1, 4)
    start = 0
    for index in range(len(text)):
        if start >= len(text):
            return
        yield text[start : start + sizes[index % len(sizes)]]
        start += sizes[index % len(sizes)]


def stream_answer(text: str, seconds_per_token: float) -> tuple[ChatRenderer, Console, int]:
    now = [0.0]

    def clock() -> float:
        return now[0]

    console = tty()
    renderer = ChatRenderer(console, clock=clock)
    renderer.feed(LLMStart(seq=0, call_id="c"))
    seq = 1
    for token in tokens_of(text):
        now[0] += seconds_per_token
        renderer.feed(LLMToken(seq=seq, call_id="c", token=token))
        seq += 1
    renderer.feed(LLMEnd(seq=seq, call_id="c"))
    renderer.close()
    return renderer, console, seq - 1


def full_render(text: str) -> list[str]:
    console = tty()
    console.print(Markdown(text))
    lines = screen(raw_of(console))
    while lines and not lines[0]:
        lines.pop(0)
    return lines


def test_markdown_work_is_linear_for_a_20000_token_answer() -> None:
    text = document(130)
    tokens = list(tokens_of(text))
    assert len(tokens) >= 20_000
    assert any(
        a.endswith("`") and b.startswith("`") for a, b in zip(tokens, tokens[1:], strict=False)
    )

    # 1,000 tokens/s: the live tail is redrawn every ~33 tokens (the 30 Hz throttle).
    renderer, console, count = stream_answer(text, seconds_per_token=0.001)
    assert count == len(tokens)
    stats = renderer.stats
    assert stats.committed_chars == len(text)  # every character committed exactly once
    assert stats.markdown_chars <= 3 * len(text)
    assert renderer.view.answer == text
    # The scrollback, built block by block, is what rendering the whole answer at once shows.
    assert screen(raw_of(console)) == full_render(text)


def test_markdown_work_per_character_does_not_grow_with_the_answer() -> None:
    # 50 tokens/s redraws the open tail about every other token: the worst realistic case. The
    # work per answer character must stay the same when the answer doubles (O(n), not O(n^2)).
    ratios = []
    for sections in (10, 20):
        text = document(sections)
        renderer, _, _ = stream_answer(text, seconds_per_token=0.02)
        assert renderer.stats.committed_chars == len(text)
        ratios.append(renderer.stats.markdown_chars / len(text))
    assert ratios[1] <= ratios[0] * 1.05
