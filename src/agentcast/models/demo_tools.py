"""The demo tools the offline model knows how to use: calculator tools and the cat demo.

`get_items` calls an LLM itself and streams it: its tokens reach the run as nested tokens
(depth 1, `parent_id` = the tool call) although the tool passes no callbacks or config.
"""

from __future__ import annotations

from langchain_core.tools import BaseTool, tool

from agentcast.events._scope import emit
from agentcast.models._planner import CAT_PLACE

__all__ = [
    "add",
    "demo_tools",
    "divide",
    "get_items",
    "multiply",
    "subtract",
    "where_cat_is_hiding",
]


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


@tool
def add(a: float, b: float) -> int | float:
    """Add two numbers and return the sum."""
    return _number(a + b)


@tool
def subtract(a: float, b: float) -> int | float:
    """Subtract b from a and return the difference."""
    return _number(a - b)


@tool
def multiply(a: float, b: float) -> int | float:
    """Multiply two numbers and return the product."""
    return _number(a * b)


@tool
def divide(a: float, b: float) -> int | float:
    """Divide a by b and return the quotient."""
    if b == 0:
        raise ValueError("cannot divide by zero")
    return _number(a / b)


@tool
async def where_cat_is_hiding() -> str:
    """Return where the cat is hiding right now."""
    return CAT_PLACE


@tool
async def get_items(place: str) -> str:
    """List the items located in a place, by asking an LLM."""
    from agentcast.models.offline import OfflineChatModel

    emit("lookup", {"place": place})
    model = OfflineChatModel()
    parts: list[str] = []
    async for chunk in model.astream(f"List the items you would find {place}."):
        parts.append(str(chunk.text))
    return "".join(parts)


def demo_tools() -> list[BaseTool]:
    """Return the demo tools: add, subtract, multiply, divide, where_cat_is_hiding, get_items."""
    return [add, subtract, multiply, divide, where_cat_is_hiding, get_items]
