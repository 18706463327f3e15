"""What the offline demo model says: a deterministic planner over the conversation.

The planner is pure: given the messages and the names of the bound tools it returns the reasoning,
the text and the tool calls of the next model turn. It derives everything from the messages
(the tool results of the current turn included), so the model itself keeps no state.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

__all__ = ["Plan", "plan_turn"]

_OPS = {ast.Add: "add", ast.Sub: "subtract", ast.Mult: "multiply", ast.Div: "divide"}
_SYMBOLS = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/"}
_WORDS = (
    (r"\bmultiplied by\b", "*"),
    (r"\bdivided by\b", "/"),
    (r"\btimes\b", "*"),
    (r"\bplus\b", "+"),
    (r"\bminus\b", "-"),
    (r"[x×]", "*"),
    (r"÷", "/"),
)
_EXPRESSION = re.compile(r"[\d(][\d\s.+\-*/()]*[\d)]")
_PLACE_ITEMS = {
    "bed": "socks, a pair of shoes and some dust bunnies",
    "shelf": "books, a pencil and a picture frame",
    "sofa": "coins, a TV remote and cookie crumbs",
}
CAT_PLACE = "under the bed"

HELP_TEXT = (
    "I'm the **offline demo model** built into agentcast: I run without an API key or a "
    "network, so I only understand a few things. Try arithmetic such as *What is (3 + 4) * 5?*, "
    "the classic demo *What items are located where the cat is hiding?*, or tell me your name "
    "and ask for it later. To talk to a real model, pick a provider with `--model`, for example "
    "`agentcast chat --model openai:gpt-4o-mini` (with `OPENAI_API_KEY` set), "
    "`anthropic:claude-sonnet-4-5`, `bedrock:anthropic.claude-3-5-haiku-20241022-v1:0` or "
    "`ollama:llama3.1`; any OpenAI-compatible server works through `openai:` with `--base-url`."
)


@dataclass
class Plan:
    """The next model turn: reasoning, text and tool calls (name, args)."""

    text: str = ""
    reasoning: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def plan_turn(messages: list[BaseMessage], tools: set[str]) -> Plan:
    """Return the next turn for `messages` with the tools named in `tools` bound."""
    last_human = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=-1)
    question = _text(messages[last_human]) if last_human >= 0 else ""
    turn = messages[last_human + 1 :]
    results = _tool_results(turn)
    lowered = question.lower()

    if (
        "where_cat_is_hiding" in tools
        and "cat" in lowered
        and ("hid" in lowered or "where" in lowered)
    ):
        return _cat(lowered, tools, results)
    if lowered.startswith("list the items you would find"):
        place = question[len("list the items you would find") :].strip(" .?")
        return Plan(text=_items_for(place), reasoning=f"The user wants the items {place}.")
    expressions = _expressions(question)
    if expressions:
        return _arithmetic(expressions, tools, results)
    name = re.search(r"\bmy name is\s+([A-Za-z][\w'-]*)", question, re.IGNORECASE)
    if name:
        who = name.group(1).capitalize() if name.group(1).islower() else name.group(1)
        return Plan(
            text=f"Nice to meet you, {who}! I'll remember your name for the rest of this session.",
            reasoning="The user told me their name; I should acknowledge it.",
        )
    if re.search(r"\b(what'?s|what is|do you know|remember) my name\b|\bwho am i\b", lowered):
        return _recall_name(messages[:last_human])
    return Plan(text=HELP_TEXT, reasoning="This is not something the offline demo model can do.")


def _cat(
    question: str, tools: set[str], results: dict[str, list[tuple[dict[str, Any], str]]]
) -> Plan:
    hiding = results.get("where_cat_is_hiding")
    if not hiding:
        return Plan(
            reasoning="I need to find out where the cat is hiding first.",
            tool_calls=[("where_cat_is_hiding", {})],
        )
    place = hiding[-1][1].strip().strip('"')
    wants_items = "item" in question or "what" in question
    items = results.get("get_items")
    if wants_items and "get_items" in tools and not items:
        return Plan(
            reasoning=f"The cat is {place}. Now I look up the items there.",
            tool_calls=[("get_items", {"place": place})],
        )
    if items:
        found = items[-1][1].strip().strip('"')
        return Plan(
            text=f"The cat is hiding **{place}**. Items located there: {found}.",
            reasoning="I have both answers.",
        )
    return Plan(text=f"The cat is hiding **{place}**.", reasoning="I know where the cat is.")


def _items_for(place: str) -> str:
    for key, items in _PLACE_ITEMS.items():
        if key in place.lower():
            return items
    return "a few forgotten odds and ends"


def _recall_name(earlier: list[BaseMessage]) -> Plan:
    for message in reversed(earlier):
        if isinstance(message, HumanMessage):
            found = re.search(r"\bmy name is\s+([A-Za-z][\w'-]*)", _text(message), re.IGNORECASE)
            if found:
                who = found.group(1)
                who = who.capitalize() if who.islower() else who
                return Plan(text=f"Your name is {who}.", reasoning="The user told me earlier.")
    return Plan(
        text="You haven't told me your name yet. Say *My name is ...* and I'll remember it.",
        reasoning="No name in this conversation.",
    )


# -- arithmetic --------------------------------------------------------------------------


def _expressions(question: str) -> list[tuple[str, ast.expr]]:
    text = question
    for pattern, symbol in _WORDS:
        text = re.sub(pattern, symbol, text, flags=re.IGNORECASE)
    found: list[tuple[str, ast.expr]] = []
    for match in _EXPRESSION.finditer(text):
        source = match.group(0).strip()
        if not re.search(r"\d\s*[-+*/]\s*[\d(]|\)\s*[-+*/]", source):
            continue
        try:
            tree = ast.parse(source, mode="eval").body
        except SyntaxError:
            continue
        if _is_arithmetic(tree):
            found.append((source, tree))
    return found


def _is_arithmetic(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, (int, float)) and not isinstance(node.value, bool)
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, ast.USub) and _is_arithmetic(node.operand)
    if isinstance(node, ast.BinOp):
        return type(node.op) in _OPS and _is_arithmetic(node.left) and _is_arithmetic(node.right)
    return False


def _arithmetic(
    expressions: list[tuple[str, ast.expr]],
    tools: set[str],
    results: dict[str, list[tuple[dict[str, Any], str]]],
) -> Plan:
    known: dict[tuple[str, float, float], float | str] = {}
    for name, calls in results.items():
        for args, output in calls:
            if name in _SYMBOLS and "a" in args and "b" in args:
                known[(name, float(args["a"]), float(args["b"]))] = _parse_number(output)
    use_tools = all(op in tools for op in _needed_ops(expressions))
    pending: list[tuple[str, float, float]] = []
    values: list[float | str | None] = []
    for _, tree in expressions:
        values.append(_reduce(tree, known, pending, use_tools))
    if pending:
        unique = list(dict.fromkeys(pending))
        steps = ", ".join(f"{_fmt(a)} {_SYMBOLS[op]} {_fmt(b)}" for op, a, b in unique)
        return Plan(
            reasoning=f"I need to compute {steps}. I'll use the calculator tools.",
            tool_calls=[(op, {"a": _num(a), "b": _num(b)}) for op, a, b in unique],
        )
    parts = []
    for (source, _), value in zip(expressions, values, strict=False):
        pretty = (
            " ".join(re.sub(r"([-+*/])", r" \1 ", source).split())
            .replace("( ", "(")
            .replace(" )", ")")
        )
        if isinstance(value, str):
            parts.append(f"I couldn't compute {pretty}: {value}")
        elif value is not None:
            parts.append(f"{pretty} = **{_fmt(value)}**")
    return Plan(text=" and ".join(parts) + ".", reasoning="I have every result I need.")


def _needed_ops(expressions: list[tuple[str, ast.expr]]) -> set[str]:
    return {
        _OPS[type(n.op)]
        for _, tree in expressions
        for n in ast.walk(tree)
        if isinstance(n, ast.BinOp)
    }


def _reduce(
    node: ast.expr,
    known: dict[tuple[str, float, float], float | str],
    pending: list[tuple[str, float, float]],
    use_tools: bool,
) -> float | str | None:
    if isinstance(node, ast.Constant):
        return float(node.value)  # type: ignore[arg-type]  # _is_arithmetic checked it
    if isinstance(node, ast.UnaryOp):
        inner = _reduce(node.operand, known, pending, use_tools)
        return -inner if isinstance(inner, float) else inner
    assert isinstance(node, ast.BinOp)
    left = _reduce(node.left, known, pending, use_tools)
    right = _reduce(node.right, known, pending, use_tools)
    if left is None or right is None:
        return None
    if isinstance(left, str):
        return left
    if isinstance(right, str):
        return right
    op = _OPS[type(node.op)]
    if not use_tools:
        if op == "divide" and right == 0:
            return "division by zero"
        return {"add": left + right, "subtract": left - right, "multiply": left * right}.get(
            op, left / right if right else 0.0
        )
    key = (op, left, right)
    if key in known:
        return known[key]
    pending.append(key)
    return None


def _parse_number(output: str) -> float | str:
    text = output.strip().strip('"')
    try:
        return float(text)
    except ValueError:
        return text.removeprefix("Error: ")


def _num(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _fmt(value: float) -> str:
    number = _num(value)
    return str(number) if isinstance(number, int) else f"{number:.10g}"


# -- messages ----------------------------------------------------------------------------


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(
        b if isinstance(b, str) else str(b.get("text", ""))
        for b in content
        if isinstance(b, (str, dict))
    )


def _tool_results(turn: list[BaseMessage]) -> dict[str, list[tuple[dict[str, Any], str]]]:
    calls: dict[str, tuple[str, dict[str, Any]]] = {}
    results: dict[str, list[tuple[dict[str, Any], str]]] = {}
    for message in turn:
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                calls[call["id"] or ""] = (call["name"], call["args"])
        elif isinstance(message, ToolMessage) and message.tool_call_id in calls:
            name, args = calls[message.tool_call_id]
            results.setdefault(name, []).append((args, _text(message)))
    return results
