"""What the Vercel AI SDK's UI message stream must be, as a checker; and how tests run its client.

`check_ui_stream` holds the protocol's rules as the `ai` package applies them (the chunk
schemas of `ai` 5.0.216, whose strict objects reject unknown fields, intersected with 6.x's;
`processUIMessageStream`'s order rules) plus what agentcast promises on top (`start` first,
`finish` last, steps balanced, the answer in a later step than the tool output it follows,
a fresh id per part, one output per tool call). `check_sse_body` checks the framing.
`run_node` runs a script of tests/js/vercel under Node with the pinned packages.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

JS = Path(__file__).parent / "js" / "vercel"

# type -> (required fields, optional fields): what both ai 5.0.216 (strict) and 6.x accept.
_PROVIDER = {"providerMetadata"}
FIELDS: dict[str, tuple[set[str], set[str]]] = {
    "start": (set(), {"messageId", "messageMetadata"}),
    "finish": (set(), {"finishReason", "messageMetadata"}),
    "start-step": (set(), set()),
    "finish-step": (set(), set()),
    "abort": (set(), set()),
    "error": ({"errorText"}, set()),
    "message-metadata": ({"messageMetadata"}, set()),
    "text-start": ({"id"}, _PROVIDER),
    "text-delta": ({"id", "delta"}, _PROVIDER),
    "text-end": ({"id"}, _PROVIDER),
    "reasoning-start": ({"id"}, _PROVIDER),
    "reasoning-delta": ({"id", "delta"}, _PROVIDER),
    "reasoning-end": ({"id"}, _PROVIDER),
    "tool-input-start": ({"toolCallId", "toolName"}, {"providerExecuted", "dynamic"}),
    "tool-input-delta": ({"toolCallId", "inputTextDelta"}, set()),
    "tool-input-available": (
        {"toolCallId", "toolName", "input"},
        {"providerExecuted", "dynamic"} | _PROVIDER,
    ),
    "tool-input-error": (
        {"toolCallId", "toolName", "input", "errorText"},
        {"providerExecuted", "dynamic"} | _PROVIDER,
    ),
    "tool-output-available": ({"toolCallId", "output"}, {"providerExecuted", "dynamic"}),
    "tool-output-error": ({"toolCallId", "errorText"}, {"providerExecuted", "dynamic"}),
}
DATA_FIELDS = ({"data"}, {"id", "transient"})
FINISH_REASONS = {"stop", "length", "content-filter", "tool-calls", "error", "other"}
_STRINGS = {"id", "delta", "errorText", "toolCallId", "toolName", "inputTextDelta", "messageId"}
_IN_STEP = ("text-", "reasoning-", "tool-input-")
_ENDING = {"finish-step", "abort", "finish", "data-agentcast-interrupt"}


class ProtocolError(AssertionError):
    """A chunk sequence breaks a rule of the UI message stream."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ProtocolError(message)


def check_ui_stream(chunks: list[dict[str, Any]]) -> None:
    """Check one stream's chunks against the protocol's rules (raises `ProtocolError`)."""
    _require(bool(chunks), "no chunks")
    types = [c.get("type") for c in chunks]
    _require(types[0] == "start" and types.count("start") == 1, f"start not first/once: {types}")
    _require(types[-1] == "finish" and types.count("finish") == 1, f"finish not last/once: {types}")
    step = 0  # number of the open step, 0 between steps
    steps = 0
    open_parts: dict[str, str] = {}  # part id -> kind
    used_ids: set[str] = set()
    tools: dict[str, str] = {}  # tool call id -> "streaming" | "input" | "done"
    output_step: int | None = None  # the step of the last tool output
    for index, chunk in enumerate(chunks):
        kind = chunk["type"]
        _require(isinstance(kind, str), f"chunk {index} has no string type")
        _require(kind.startswith("data-") or kind in FIELDS, f"unknown chunk type {kind!r}")
        required, optional = DATA_FIELDS if kind.startswith("data-") else FIELDS[kind]
        keys = set(chunk) - {"type"}
        _require(required <= keys, f"{kind} misses {required - keys}")
        _require(keys <= required | optional, f"{kind} has fields {keys - required - optional}")
        for key in keys & _STRINGS:
            _require(isinstance(chunk[key], str), f"{kind}.{key} is not a string")
        if kind.startswith(_IN_STEP):
            _require(step > 0, f"{kind} outside a step (chunk {index})")
        if kind == "start-step":
            _require(step == 0, "start-step inside a step")
            steps += 1
            step = steps
        elif kind == "finish-step":
            _require(step > 0, "finish-step without start-step")
            _require(not open_parts, f"finish-step with parts open: {open_parts}")
            step = 0
        elif kind in ("text-start", "reasoning-start"):
            part = chunk["id"]
            _require(part not in used_ids, f"part id {part!r} reused")
            used_ids.add(part)
            open_parts[part] = kind.split("-")[0]
            _require(output_step != step, f"{kind} in the step of a tool output (chunk {index})")
        elif kind.endswith(("-delta", "-end")) and kind.startswith(("text", "reasoning")):
            part_kind = kind.split("-")[0]
            _require(open_parts.get(chunk["id"]) == part_kind, f"{kind} of a part not open")
            if kind.endswith("-end"):
                del open_parts[chunk["id"]]
        elif kind == "tool-input-start":
            _require(chunk["toolCallId"] not in tools, "tool-input-start of a known tool call")
            tools[chunk["toolCallId"]] = "streaming"
        elif kind == "tool-input-delta":
            _require(tools.get(chunk["toolCallId"]) == "streaming", "delta of no streaming call")
        elif kind in ("tool-input-available", "tool-input-error"):
            _require(tools.get(chunk["toolCallId"], "streaming") == "streaming", f"second {kind}")
            tools[chunk["toolCallId"]] = "input" if kind == "tool-input-available" else "done"
        elif kind.startswith("tool-output-"):
            _require(tools.get(chunk["toolCallId"]) == "input", f"{kind} of a call without input")
            tools[chunk["toolCallId"]] = "done"
            if not chunk.get("providerExecuted"):  # a provider's tool answers inside its call
                output_step = step
        elif kind == "error":
            _require(set(types[index + 1 :]) <= _ENDING, f"chunks after error: {types[index:]}")
        elif kind == "abort":
            _require(set(types[index + 1 :]) <= {"finish"}, f"chunks after abort: {types[index:]}")
        elif kind == "finish":
            _require(step == 0, "finish inside a step")
            reason = chunk.get("finishReason")
            _require(reason is None or reason in FINISH_REASONS, f"finishReason {reason!r}")
    _require(not open_parts, f"parts never ended: {open_parts}")
    _require(all(s == "done" for s in tools.values()), f"tool calls without output: {tools}")


def check_sse_body(raw: str) -> list[dict[str, Any]]:
    """Return the chunks of a raw response body, checking its framing.

    Every message is `data: <json>` then a blank line (LF only; `:` comments allowed) and
    the body ends with exactly one `data: [DONE]`.
    """
    _require("\r" not in raw, "CR in the body")
    _require(raw.endswith("\n\n"), "the body does not end with a blank line")
    messages = raw[:-2].split("\n\n")
    _require(messages[-1] == "data: [DONE]", f"last message is {messages[-1]!r}, not [DONE]")
    _require(raw.count("data: [DONE]") == 1, "more than one [DONE]")
    chunks = []
    for message in messages[:-1]:
        if message.startswith(":"):
            continue
        _require(message.startswith("data: ") and "\n" not in message, f"bad frame {message!r}")
        chunks.append(json.loads(message[len("data: ") :]))
    return chunks


def run_node(script: str, *args: str, stdin: str | None = None, timeout: float = 120) -> Any:
    """Run `node <script> <args>` in tests/js/vercel and return its stdout parsed as JSON."""
    if shutil.which("node") is None:
        pytest.fail("the protocol tests need Node.js 20 (apt-get install nodejs npm)")
    if not (JS / "node_modules" / "ai5").is_dir():
        pytest.fail(f"the pinned npm packages are missing: cd {JS} && npm ci (scripts/install)")
    done = subprocess.run(
        ["node", script, *args],
        cwd=JS,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"node {script} failed:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout)
