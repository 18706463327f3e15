"""The tool calls of one LLM call: fragments -> `tool_call_*` events and parsed calls.

Part of `LLMCallStream` (see `llm_call`): calls are keyed by provider id first, index second
(invariant 6); arguments are parsed once, when a call ends (invariant 5); a tool the provider
runs itself is marked `executor="provider"`, reported as run when its result arrives, and its
blocks are kept in order for the next request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from agentcast.events import (
    BaseEvent,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolEnd,
    ToolStart,
    json_safe,
)
from agentcast.sources._deltas import ProviderToolResult, ToolChunk
from agentcast.sources._provider_tools import history_block

__all__ = ["ParsedToolCall", "ToolCalls"]

_PLACEHOLDER_IDS = frozenset({"", "null", "None"})


@dataclass
class ParsedToolCall:
    """A tool call as the model finished it.

    Attributes:
        id: the provider's id (or a synthesized one).
        name: the tool's name.
        args: the parsed arguments, or None when `error` is set.
        error: why the arguments are unusable.
        raw: the raw argument text.
    """

    id: str
    name: str
    args: dict[str, Any] | None
    error: str | None
    raw: str


@dataclass
class _ToolCallState:
    id: str
    provider_id: str | None
    index: int | None
    position: int
    name: str | None = None
    started: bool = False
    parts: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    ended: bool = False
    provider: dict[str, Any] | None = None  # the provider's block when the provider runs it
    parsed: ParsedToolCall | None = None
    input_done: float = 0.0  # when its last input fragment arrived (provider tools)


class ToolCalls:
    """Assembles the tool calls of one LLM call and emits their events.

    Args:
        emit: where events go.
        call_id: the LLM call (synthesized tool-call ids derive from it).
        parent_id: the LLM call's parent, for the `tool_start` of a provider's tool.
        depth: the LLM call's depth, likewise.
        text_parts: the call's text so far (the same list), to place provider blocks in it.
        on_output: called when a call starts (it is output, for the time to first token).
    """

    __slots__ = (
        "_by_id",
        "_by_index",
        "_emit",
        "_on_output",
        "_text_parts",
        "call_id",
        "calls",
        "depth",
        "parent_id",
        "placed",
    )

    def __init__(
        self,
        emit: Callable[[BaseEvent], Any],
        *,
        call_id: str,
        parent_id: str | None,
        depth: int,
        text_parts: list[str],
        on_output: Callable[[], None],
    ) -> None:
        self._emit = emit
        self.call_id = call_id
        self.parent_id = parent_id
        self.depth = depth
        self._text_parts = text_parts
        self._on_output = on_output
        self.calls: list[_ToolCallState] = []
        self._by_id: dict[str, _ToolCallState] = {}
        self._by_index: dict[int, _ToolCallState] = {}
        # Provider tool blocks, each with the number of text parts that came before it.
        self.placed: list[tuple[int, _ToolCallState | dict[str, Any]]] = []

    def end_all(self) -> tuple[list[ParsedToolCall], list[ParsedToolCall]]:
        """Close every open call; return (the calls the agent runs, the provider's)."""
        for call in self.calls:
            if not call.ended:
                self._end(call)
        local = [c.parsed for c in self.calls if c.provider is None and c.parsed is not None]
        ran = [c.parsed for c in self.calls if c.provider is not None and c.parsed is not None]
        return local, ran

    def fail(self, reason: str) -> None:
        """Close the started, open calls with an error: nothing is parsed."""
        for call in self.calls:
            if call.started and not call.ended:
                call.ended = True
                self._emit(
                    ToolCallEnd(
                        tool_call_id=call.id,
                        name=call.name or "",
                        error=f"the model call ended before the arguments were complete ({reason})",
                        raw="".join(call.parts),
                        executor="local" if call.provider is None else "provider",
                    )
                )

    def feed(self, chunk: ToolChunk) -> None:
        """Take one tool-call fragment."""
        provider_id = chunk.id if chunk.id not in _PLACEHOLDER_IDS else None
        call: _ToolCallState | None
        if provider_id is not None:
            call = self._by_id.get(provider_id)
            if call is None:
                pending = self._by_index.get(chunk.index) if chunk.index is not None else None
                # A call first seen without an id (some gateways) gets its id later.
                if pending is not None and pending.provider_id is None and not pending.started:
                    call = pending
                    call.provider_id = provider_id
                    call.id = provider_id
                    self._by_id[provider_id] = call
        else:
            call = self._by_index.get(chunk.index) if chunk.index is not None else None
            if call is None and chunk.index is None and self.calls:
                call = self.calls[-1]
            # A complete call with a name under an index already used (Ollama sends every
            # call as index 0, no id): a new call, not a continuation.
            if call is not None and chunk.name and call.name and call.parts:
                call = None
        if call is None:
            call = _ToolCallState(
                id=provider_id or f"{self.call_id}-tool-{len(self.calls)}",
                provider_id=provider_id,
                index=chunk.index,
                position=len(self.calls),
                provider=chunk.provider,
            )
            self.calls.append(call)
            if provider_id is not None:
                self._by_id[provider_id] = call
            if call.provider is not None:
                self.placed.append((len(self._text_parts), call))
        if chunk.index is not None:
            self._by_index[chunk.index] = call
        if chunk.name and not call.name:
            call.name = chunk.name
        if not call.started and call.name:
            self._on_output()
            self._start(call)
        if chunk.args:
            call.parts.append(chunk.args)
            if call.started:
                self._emit(ToolCallDelta(tool_call_id=call.id, delta=chunk.args))
            else:
                call.pending.append(chunk.args)
        if call.provider is not None:
            call.input_done = time.perf_counter()

    def provider_result(self, result: ProviderToolResult) -> None:
        """A provider's tool finished: close its call, report it as run, keep its block."""
        call = self._by_id.get(result.tool_call_id)
        if result.block is not None:
            self.placed.append((len(self._text_parts), result.block))
        if call is None or call.provider is None or call.ended:
            return  # a result for a call this stream never saw: kept for history only
        parsed = self._end(call)
        tool_kwargs: dict[str, Any] = {"tool_call_id": call.id, "name": parsed.name}
        self._emit(
            ToolStart(
                **tool_kwargs,
                input=parsed.args,
                call_id=self.call_id,
                parent_id=self.parent_id,
                depth=self.depth,
                executor="provider",
            )
        )
        self._emit(
            ToolEnd(
                **tool_kwargs,
                status="error" if result.error else "ok",
                output=None if result.error else json_safe(result.output),
                error=result.error,
                duration_ms=round((time.perf_counter() - call.input_done) * 1000, 3),
                executor="provider",
            )
        )

    def content(self) -> list[dict[str, Any]]:
        """The answer's blocks in arrival order, when the provider ran tools (else [])."""
        if not self.placed:
            return []
        blocks: list[dict[str, Any]] = []
        taken = 0
        for before, item in self.placed:
            if before > taken:
                blocks.append({"type": "text", "text": "".join(self._text_parts[taken:before])})
                taken = before
            if isinstance(item, dict):
                blocks.append(item)
            elif item.provider is not None and item.parsed is not None:
                blocks.append(history_block(item.provider, item.parsed.args))
        if len(self._text_parts) > taken:
            blocks.append({"type": "text", "text": "".join(self._text_parts[taken:])})
        return blocks

    def _start(self, call: _ToolCallState) -> None:
        """Emit the call's `tool_call_start`, then the argument fragments held back for it."""
        call.started = True
        self._emit(
            ToolCallStart(
                call_id=self.call_id,
                tool_call_id=call.id,
                name=call.name or "",
                index=call.position,
                executor="local" if call.provider is None else "provider",
            )
        )
        for part in call.pending:
            self._emit(ToolCallDelta(tool_call_id=call.id, delta=part))
        call.pending.clear()

    def _end(self, call: _ToolCallState) -> ParsedToolCall:
        raw = "".join(call.parts)
        name = call.name or ""
        args: dict[str, Any] | None = None
        error: str | None = None
        if not call.started:  # arguments but never a name: still close it, visibly
            self._start(call)
            error = "the model sent a tool call without a tool name"
        elif not raw.strip():
            args = {}
        else:
            try:
                value = msgspec.json.decode(raw)
            except msgspec.DecodeError as exc:
                error = f"the tool arguments are not valid JSON: {exc}"
            else:
                if isinstance(value, dict):
                    args = value
                else:
                    error = f"the tool arguments must be a JSON object, got {type(value).__name__}"
        call.ended = True
        self._emit(
            ToolCallEnd(
                tool_call_id=call.id,
                name=name,
                args=args,
                error=error,
                raw=raw if error else None,
                executor="local" if call.provider is None else "provider",
            )
        )
        call.parsed = ParsedToolCall(id=call.id, name=name, args=args, error=error, raw=raw)
        return call.parsed
