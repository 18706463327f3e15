"""One LLM call's chunks -> `llm_start`, tokens, tool-call events, `llm_end`, and the final message.

Every source (native agent, nested LLM callbacks, later LangChain and LangGraph adapters) feeds
chunks through `LLMCallStream`, so the rules live once:

- text, reasoning and tool-argument bytes go to separate events (invariant 4);
- tool calls are keyed by provider id first, index second, so parallel calls interleaved by
  index, calls that all say index 0 (Ollama), and calls sharing an index with distinct ids
  (Bedrock) stay separate (invariant 6);
- arguments are parsed once, when the call ends (invariant 5), and invalid JSON becomes
  `tool_call_end(error, raw)` rather than an exception;
- the final text is the concatenation of the text tokens (invariant 3), built from the deltas
  rather than by summing chunks, which LangChain does at O(n) objects per call;
- a refusal is the call's answer: its text streams as `llm_token(kind=text)` and the call ends
  with `finish_reason="refusal"`;
- a tool the provider executes (web search, code execution...) streams as a tool call marked
  `executor="provider"`, and as `tool_start`/`tool_end` marked the same when its result
  arrives; it is never among the calls the agent runs, and its blocks are kept, in order, in
  `LLMCallResult.content` for the next request;
- the whole message an end callback reports is fed only when no chunk was streamed
  (`finish(final=...)`), so nothing, usage included, is counted twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import LLMResult

from agentcast.events import (
    BaseEvent,
    LLMEnd,
    LLMRole,
    LLMStart,
    LLMToken,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolEnd,
    ToolStart,
    json_safe,
)
from agentcast.sources._provider_tools import history_block
from agentcast.sources.normalize import (
    OpaqueBlock,
    ProviderToolResult,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolChunk,
    finish_reason_of,
    normalize_chunk,
    usage_of,
)

__all__ = ["LLMCallResult", "LLMCallStream", "ParsedToolCall", "final_message"]

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
class LLMCallResult:
    """What one LLM call produced, assembled from its deltas.

    `tool_calls` are the calls the agent must run; `provider_tools` the ones the provider ran.
    `content` is empty unless the provider ran tools: then it is the answer's content blocks in
    the order they came (text runs, the provider's tool blocks verbatim, their results), which
    is what the provider needs back on the next request.
    """

    call_id: str
    text: str
    tool_calls: list[ParsedToolCall]
    reasoning: list[dict[str, Any]]
    usage: dict[str, Any] | None
    finish_reason: str | None
    role: LLMRole
    provider_tools: list[ParsedToolCall] = field(default_factory=list)
    content: list[dict[str, Any]] = field(default_factory=list)


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


class LLMCallStream:
    """Converts the chunks of one LLM call into events pushed to `emit`.

    Call `start()`, then `feed(chunk)` for every chunk, then `finish()` (or `fail()` when the
    call raised). Not thread-safe: feed it from one thread, in order.
    """

    __slots__ = (
        "_by_id",
        "_by_index",
        "_calls",
        "_cumulative",
        "_emit",
        "_fed",
        "_finish_reason",
        "_first_token",
        "_placed",
        "_reasoning",
        "_reasoning_open",
        "_refused",
        "_started",
        "_text_parts",
        "_usage",
        "call_id",
        "depth",
        "model",
        "name",
        "node",
        "parent_id",
        "tags",
    )

    def __init__(
        self,
        emit: Callable[[BaseEvent], Any],
        *,
        call_id: str,
        depth: int = 0,
        parent_id: str | None = None,
        model: str | None = None,
        name: str | None = None,
        tags: tuple[str, ...] = (),
        node: str | None = None,
        cumulative: bool = False,
    ) -> None:
        self._emit = emit
        self.call_id = call_id
        self.depth = depth
        self.parent_id = parent_id
        self.model = model
        self.name = name
        self.tags = tags
        self.node = node
        self._cumulative = cumulative
        self._text_parts: list[str] = []
        self._reasoning: list[dict[str, Any]] = []
        self._reasoning_open = False
        self._calls: list[_ToolCallState] = []
        self._by_id: dict[str, _ToolCallState] = {}
        self._by_index: dict[int, _ToolCallState] = {}
        self._usage: dict[str, Any] | None = None
        self._finish_reason: str | None = None
        self._started = 0.0
        self._first_token: float | None = None
        self._fed = False
        self._refused = False
        # Provider tool blocks, each with the number of text parts that came before it.
        self._placed: list[tuple[int, _ToolCallState | dict[str, Any]]] = []

    @property
    def has_output(self) -> bool:
        """Whether any token or tool-call fragment has been emitted for this call."""
        return self._first_token is not None or bool(self._calls)

    @property
    def text(self) -> str:
        """The answer text so far."""
        return "".join(self._text_parts)

    def start(self) -> None:
        """Emit `llm_start`."""
        self._started = time.perf_counter()
        self._emit(
            LLMStart(
                call_id=self.call_id,
                parent_id=self.parent_id,
                depth=self.depth,
                model=self.model,
                name=self.name,
                tags=self.tags,
                node=self.node,
            )
        )

    def feed(self, chunk: BaseMessage) -> None:
        """Emit the events of one chunk."""
        self._fed = True
        content = chunk.content
        if (
            content.__class__ is str
            and not chunk.additional_kwargs
            and not getattr(chunk, "tool_call_chunks", None)
            and not getattr(chunk, "tool_calls", None)
        ):
            if content:  # the common case (plain text token), without building deltas
                self._text(content)  # type: ignore[arg-type]
        else:
            for delta in normalize_chunk(chunk):
                kind = delta.__class__
                if kind is TextDelta:
                    self._text(delta.text)  # type: ignore[union-attr]
                elif kind is ToolChunk:
                    self._tool(delta)  # type: ignore[arg-type]
                elif kind is ReasoningDelta:
                    self._reason(delta)  # type: ignore[arg-type]
                elif kind is RefusalDelta:
                    self._refused = True
                    self._text(delta.text)  # type: ignore[union-attr]
                elif kind is ProviderToolResult:
                    self._provider_result(delta)  # type: ignore[arg-type]
                elif kind is OpaqueBlock:
                    self._reasoning.append(dict(delta.block))  # type: ignore[union-attr,arg-type]
                    self._reasoning_open = False
        if chunk.response_metadata:
            reason = finish_reason_of(chunk)
            if reason:
                self._finish_reason = reason
        if getattr(chunk, "usage_metadata", None):
            self._add_usage(usage_of(chunk))

    def finish(
        self,
        *,
        finish_reason: str | None = None,
        role: LLMRole | None = None,
        final: BaseMessage | None = None,
    ) -> LLMCallResult:
        """Close every tool call (parsing its arguments), emit `llm_end`, return the result.

        Args:
            finish_reason: overrides the provider's.
            role: overrides the role derived from the output.
            final: the whole message an end callback reports; fed only when no chunk was
                streamed (a model that does not stream), since it is the sum of the chunks.
        """
        if final is not None and not self._fed:
            self.feed(final)
        for call in self._calls:
            if not call.ended:
                self._end_call(call)
        parsed = [c.parsed for c in self._calls if c.provider is None and c.parsed is not None]
        if role is None:
            role = "tool_use" if parsed else ("answer" if self.depth == 0 else "internal")
        reason = (
            finish_reason
            or ("refusal" if self._refused else None)
            or self._finish_reason
            or ("tool_calls" if parsed else "stop")
        )
        self._emit(
            LLMEnd(
                call_id=self.call_id,
                finish_reason=reason,
                usage=self._usage,
                ttft_ms=self._ms(self._first_token) if self._first_token is not None else None,
                duration_ms=self._ms(time.perf_counter()),
                role=role,
            )
        )
        return LLMCallResult(
            call_id=self.call_id,
            text=self.text,
            tool_calls=parsed,
            reasoning=self._reasoning,
            usage=self._usage,
            finish_reason=reason,
            role=role,
            provider_tools=[c.parsed for c in self._calls if c.provider is not None and c.parsed],
            content=self._content(),
        )

    def fail(self, reason: str = "error") -> None:
        """Close what is open after the call raised or was cancelled: nothing is parsed."""
        for call in self._calls:
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
        self._emit(
            LLMEnd(
                call_id=self.call_id,
                finish_reason=reason,
                usage=self._usage,
                ttft_ms=self._ms(self._first_token) if self._first_token is not None else None,
                duration_ms=self._ms(time.perf_counter()),
                role="answer" if self.depth == 0 else "internal",
            )
        )

    # -- deltas ---------------------------------------------------------------------------

    def _text(self, text: str) -> None:
        if self._cumulative and self._text_parts:
            so_far = self.text
            if text.startswith(so_far):
                text = text[len(so_far) :]
                if not text:
                    return
        if self._first_token is None:
            self._first_token = time.perf_counter()
        self._text_parts.append(text)
        self._emit(LLMToken(call_id=self.call_id, token=text, kind="text", depth=self.depth))

    def _reason(self, delta: ReasoningDelta) -> None:
        # A block is closed by its signature, but a signature may arrive in several pieces:
        # only new reasoning text after a signature opens the next block.
        block = self._reasoning[-1] if self._reasoning_open else None
        if block is None or (delta.text and "signature" in block):
            block = {"type": "reasoning", "text": ""}
            if delta.shape:
                block["shape"] = delta.shape
            self._reasoning.append(block)
            self._reasoning_open = True
        if delta.text:
            if self._first_token is None:
                self._first_token = time.perf_counter()
            block["text"] += delta.text
            self._emit(
                LLMToken(call_id=self.call_id, token=delta.text, kind="reasoning", depth=self.depth)
            )
        if delta.signature:
            block["signature"] = block.get("signature", "") + delta.signature

    def _tool(self, chunk: ToolChunk) -> None:
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
            if call is None and chunk.index is None and self._calls:
                call = self._calls[-1]
            # A complete call with a name under an index already used (Ollama sends every
            # call as index 0, no id): a new call, not a continuation.
            if call is not None and chunk.name and call.name and call.parts:
                call = None
        if call is None:
            call = _ToolCallState(
                id=provider_id or f"{self.call_id}-tool-{len(self._calls)}",
                provider_id=provider_id,
                index=chunk.index,
                position=len(self._calls),
                provider=chunk.provider,
            )
            self._calls.append(call)
            if provider_id is not None:
                self._by_id[provider_id] = call
            if call.provider is not None:
                self._placed.append((len(self._text_parts), call))
        if chunk.index is not None:
            self._by_index[chunk.index] = call
        if chunk.name and not call.name:
            call.name = chunk.name
        if not call.started and call.name:
            call.started = True
            if self._first_token is None:
                self._first_token = time.perf_counter()
            self._emit(
                ToolCallStart(
                    call_id=self.call_id,
                    tool_call_id=call.id,
                    name=call.name,
                    index=call.position,
                    executor="local" if call.provider is None else "provider",
                )
            )
            for part in call.pending:
                self._emit(ToolCallDelta(tool_call_id=call.id, delta=part))
            call.pending.clear()
        if chunk.args:
            call.parts.append(chunk.args)
            if call.started:
                self._emit(ToolCallDelta(tool_call_id=call.id, delta=chunk.args))
            else:
                call.pending.append(chunk.args)
        if call.provider is not None:
            call.input_done = time.perf_counter()

    def _provider_result(self, result: ProviderToolResult) -> None:
        """A provider's tool finished: close its call, report it as run, keep its block."""
        call = self._by_id.get(result.tool_call_id)
        if result.block is not None:
            self._placed.append((len(self._text_parts), result.block))
        if call is None or call.provider is None or call.ended:
            return  # a result for a call this stream never saw: kept for history only
        parsed = self._end_call(call)
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

    def _content(self) -> list[dict[str, Any]]:
        """The answer's blocks in arrival order, when the provider ran tools (else [])."""
        if not self._placed:
            return []
        blocks: list[dict[str, Any]] = []
        taken = 0
        for before, item in self._placed:
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

    def _end_call(self, call: _ToolCallState) -> ParsedToolCall:
        raw = "".join(call.parts)
        name = call.name or ""
        args: dict[str, Any] | None = None
        error: str | None = None
        if not call.started:  # arguments but never a name: still close it, visibly
            call.started = True
            self._emit(
                ToolCallStart(
                    call_id=self.call_id,
                    tool_call_id=call.id,
                    name=name,
                    index=call.position,
                    executor="local" if call.provider is None else "provider",
                )
            )
            for part in call.pending:
                self._emit(ToolCallDelta(tool_call_id=call.id, delta=part))
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

    def _add_usage(self, usage: dict[str, int] | None) -> None:
        if usage is None:
            return
        if self._usage is None:
            self._usage = {**usage, "source": "provider"}
        else:
            for key in ("input_tokens", "output_tokens", "total_tokens"):
                self._usage[key] += usage[key]

    def _ms(self, end: float) -> float:
        return round((end - self._started) * 1000, 3)


def final_message(response: LLMResult) -> BaseMessage | None:
    """The whole message an `on_llm_end` callback reports (its first generation), if any."""
    for generations in response.generations:
        for generation in generations:
            message = getattr(generation, "message", None)
            if isinstance(message, BaseMessage):
                return message
            return AIMessageChunk(content=generation.text) if generation.text else None
    return None
