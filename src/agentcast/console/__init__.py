"""Terminal rendering of agent runs: events -> view model (pure reducer) -> rich output.

`ChatView` is the view model, updated by `ChatView.apply(event)` or `reduce(view, event)`, with
no I/O. `ChatRenderer` draws it: live on a terminal (finished markdown blocks printed to the
scrollback once, only the open tail redrawn), plain text lines on pipes and dumb terminals.

This layer imports `rich` and `agentcast.events` only.
"""

from agentcast.console._footer import Footer
from agentcast.console._live import RenderStats
from agentcast.console._renderer import ChatRenderer
from agentcast.console._view import (
    ChatView,
    CustomView,
    ErrorView,
    Item,
    TextBlock,
    ToolCallView,
    ToolState,
    reduce,
)
from agentcast.console._widgets import SeparatedLine

__all__ = (
    "ChatRenderer",
    "ChatView",
    "CustomView",
    "ErrorView",
    "Footer",
    "Item",
    "RenderStats",
    "SeparatedLine",
    "TextBlock",
    "ToolCallView",
    "ToolState",
    "reduce",
)
