"""One LLM call's chunks -> `llm_start`, tokens, tool-call events, `llm_end`, and the final message.

Every source feeds chunks through `LLMCallStream` (the native agent directly; the nested-LLM
capture, the callback bridge, the runnable and the LangGraph sources through the one
`_calls.CallRegistry`), so the rules live once:

- text, reasoning and tool-argument bytes go to separate events (invariant 4);
- tool calls (assembled by `_tool_calls.ToolCalls`) are keyed by provider id first, index
  second, so parallel calls interleaved by index, calls that all say index 0 (Ollama), and
  calls sharing an index with distinct ids (Bedrock) stay separate (invariant 6);
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

from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import LLMResult

from agentcast.events import (
    BaseEvent,
    LLMEnd,
    LLMRole,
    LLMStart,
    LLMToken,
    TokenKind,
)
from agentcast.sources._base import cut_llm_end
from agentcast.sources._tool_calls import ParsedToolCall, ToolCalls
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


class LLMCallStream:
    """Converts the chunks of one LLM call into events pushed to `emit`.

    Call `start()`, then `feed(chunk)` for every chunk, then `finish()` (or `fail()` when the
    call raised). Not thread-safe: feed it from one thread, in order.

    Tokens go to `emit_token` when given (`RunSink.emit_token`: the run builds each token
    stamped, one struct per chunk), else to `emit` as `LLMToken` events.
    """

    __slots__ = (
        "_cumulative",
        "_emit",
        "_emit_token",
        "_fed",
        "_finish_reason",
        "_first_token",
        "_reasoning",
        "_reasoning_open",
        "_refused",
        "_started",
        "_text_parts",
        "_track_text",
        "_tools",
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
        track_text: Callable[[str, Callable[[], str]], Any] | None = None,
        emit_token: Callable[[str, str, TokenKind, int], Any] | None = None,
    ) -> None:
        self._emit = emit
        self._emit_token = emit_token or self._token_event
        self._track_text = track_text
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
        self._usage: dict[str, Any] | None = None
        self._finish_reason: str | None = None
        self._started = 0.0
        self._first_token: float | None = None
        self._fed = False
        self._refused = False
        self._tools = ToolCalls(
            emit,
            call_id=call_id,
            parent_id=parent_id,
            depth=depth,
            text_parts=self._text_parts,
            on_output=self._mark_output,
        )

    @property
    def has_output(self) -> bool:
        """Whether any token or tool-call fragment has been emitted for this call."""
        return self._first_token is not None or bool(self._tools.calls)

    @property
    def text(self) -> str:
        """The answer text so far."""
        return "".join(self._text_parts)

    def start(self) -> None:
        """Emit `llm_start` (and, for the agent's answer, show the run where its text is)."""
        self._started = time.perf_counter()
        if self._track_text is not None and self.depth == 0:
            # The run reads the text from here when the call is cut short: one copy of it.
            self._track_text(self.call_id, lambda: "".join(self._text_parts))
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
        # An AI chunk's fields are read from its `__dict__`, where pydantic keeps them: a dict
        # subscript costs a fraction of a pydantic attribute lookup, and this runs per chunk.
        fields = chunk.__dict__
        try:
            content = fields["content"]
            plain = content.__class__ is str and not (
                fields["additional_kwargs"] or fields["tool_call_chunks"] or fields["tool_calls"]
            )
        except KeyError:  # not an AI chunk (a whole message, a human or tool message)
            plain = False
        if plain:
            # The common case, a plain text token: no deltas are built, and `_text` is inlined
            # (but for a cumulative stream, which must be cut to its new part).
            if content and not self._cumulative:
                if self._first_token is None:
                    self._first_token = time.perf_counter()
                self._text_parts.append(content)
                self._emit_token(self.call_id, content, "text", self.depth)
            elif content:
                self._text(content)
            if fields["response_metadata"]:
                self._note_finish(chunk)
            if fields["usage_metadata"]:
                self._add_usage(usage_of(chunk))
            return
        self._feed_deltas(chunk)
        if chunk.response_metadata:
            self._note_finish(chunk)
        if getattr(chunk, "usage_metadata", None):
            self._add_usage(usage_of(chunk))

    def _feed_deltas(self, chunk: BaseMessage) -> None:
        """Emit the events of a chunk that is more than a plain text token."""
        for delta in normalize_chunk(chunk):
            kind = delta.__class__
            if kind is TextDelta:
                self._text(delta.text)  # type: ignore[union-attr]
            elif kind is ToolChunk:
                self._tools.feed(delta)  # type: ignore[arg-type]
            elif kind is ReasoningDelta:
                self._reason(delta)  # type: ignore[arg-type]
            elif kind is RefusalDelta:
                self._refused = True
                self._text(delta.text)  # type: ignore[union-attr]
            elif kind is ProviderToolResult:
                self._tools.provider_result(delta)  # type: ignore[arg-type]
            elif kind is OpaqueBlock:
                self._reasoning.append(dict(delta.block))  # type: ignore[union-attr,arg-type]
                self._reasoning_open = False

    def _note_finish(self, chunk: BaseMessage) -> None:
        reason = finish_reason_of(chunk)
        if reason:
            self._finish_reason = reason

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
        parsed, provider_tools = self._tools.end_all()
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
                ttft_ms=self._ttft_ms(),
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
            provider_tools=provider_tools,
            content=self._tools.content(),
        )

    def fail(self, reason: str = "error") -> None:
        """Close what is open after the call raised or was cancelled: nothing is parsed."""
        self._tools.fail(reason)
        self._emit(
            cut_llm_end(
                self.call_id,
                self.depth,
                reason,
                usage=self._usage,
                ttft_ms=self._ttft_ms(),
                duration_ms=self._ms(time.perf_counter()),
            )
        )

    # -- deltas ---------------------------------------------------------------------------

    def _mark_output(self) -> None:
        if self._first_token is None:
            self._first_token = time.perf_counter()

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
        self._emit_token(self.call_id, text, "text", self.depth)

    def _token_event(self, call_id: str, token: str, kind: TokenKind, depth: int) -> None:
        self._emit(LLMToken(call_id=call_id, token=token, kind=kind, depth=depth))

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
            self._emit_token(self.call_id, delta.text, "reasoning", self.depth)
        if delta.signature:
            block["signature"] = block.get("signature", "") + delta.signature

    def _add_usage(self, usage: dict[str, int] | None) -> None:
        if usage is None:
            return
        if self._usage is None:
            self._usage = {**usage, "source": "provider"}
        else:
            for key in ("input_tokens", "output_tokens", "total_tokens"):
                self._usage[key] += usage[key]

    def _ttft_ms(self) -> float | None:
        return self._ms(self._first_token) if self._first_token is not None else None

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
