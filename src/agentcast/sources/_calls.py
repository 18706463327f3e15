"""The open LLM calls of a source: one registry, whichever way LangChain reports them.

LangChain tells a source about an LLM call in three shapes: callbacks (`on_chat_model_start`,
`on_llm_new_token`, `on_llm_end`, `on_llm_error`), `astream_events(v2)` events, and LangGraph's
`messages` stream. Every adapter only translates its shape onto `CallRegistry` - open a call
with its provenance, feed its chunks, finish or fail it - so the bookkeeping lives once: one
`LLMCallStream` per call, keyed by the source's id for it, closed exactly once; and the tool
calls the models made, so a tool run LangChain reports without the model's id (a classic
agent) is matched to one by name, in one place.

`LLMCallbacks` is the callback shape of that translation, shared by the nested-LLM capture and
the callback bridge, which differ only in where a call's provenance comes from.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Hashable, Iterator
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, LLMResult

from agentcast.events import BaseEvent, TokenKind
from agentcast.sources.llm_call import LLMCallResult, LLMCallStream, final_message

__all__ = ["CallRegistry", "LLMCallbacks", "callback_message"]


class CallRegistry:
    """The LLM calls a source has open, and the tool calls their models made.

    Safe to use from several threads (callbacks of sync code run in worker threads); each
    call's chunks must still come from one thread, in order.

    Args:
        emit: where the calls' events go.
        track_text: `RunSink.track_text`, for the answer calls' text.
        emit_token: `RunSink.emit_token`, for a source that feeds on the loop's thread (None:
            tokens go to `emit`, as from callbacks on any thread).
    """

    __slots__ = ("_calls", "_emit", "_emit_token", "_lock", "_made", "_track_text", "get")

    def __init__(
        self,
        emit: Callable[[BaseEvent], Any],
        track_text: Callable[[str, Callable[[], str]], Any] | None = None,
        emit_token: Callable[[str, str, TokenKind, int], Any] | None = None,
    ) -> None:
        self._emit = emit
        self._emit_token = emit_token
        self._track_text = track_text
        self._calls: dict[Hashable, LLMCallStream] = {}
        # tool_call_id -> name, in the order the models made them; a match by name takes one.
        self._made: dict[str, str] = {}
        self._lock = threading.Lock()
        # Looked up once per chunk: the dict's own `get`, with no call of ours around it.
        self.get: Callable[[Hashable], LLMCallStream | None] = self._calls.get
        """The open call under a key, to feed it (None: not open, or not one of ours)."""

    def open(
        self,
        key: Hashable,
        *,
        call_id: str,
        parent_id: str | None = None,
        depth: int = 0,
        model: str | None = None,
        name: str | None = None,
        tags: tuple[str, ...] = (),
        node: str | None = None,
    ) -> LLMCallStream:
        """Start a call (emit its `llm_start`) under the source's `key` for it."""
        call = LLMCallStream(
            self._emit,
            call_id=call_id,
            depth=depth,
            parent_id=parent_id,
            model=model,
            name=name,
            tags=tags,
            node=node,
            track_text=self._track_text,
            emit_token=self._emit_token,
        )
        with self._lock:
            self._calls[key] = call
        call.start()
        return call

    def finish(self, key: Hashable, *, final: BaseMessage | None = None) -> LLMCallResult | None:
        """End the call under `key` (see `LLMCallStream.finish`); None if it is not open."""
        with self._lock:
            call = self._calls.pop(key, None)
        if call is None:
            return None
        result = call.finish(final=final)
        if result.tool_calls:
            with self._lock:
                for tool_call in result.tool_calls:
                    self._made[tool_call.id] = tool_call.name
        return result

    def fail(self, key: Hashable, reason: str = "error") -> None:
        """End the call under `key` as failed, if it is open."""
        with self._lock:
            call = self._calls.pop(key, None)
        if call is not None:
            call.fail(reason)

    def finish_open(self, *, with_output_only: bool = False) -> None:
        """End the calls still open, oldest first (optionally only those that said something)."""
        for key, call in list(self._calls.items()):
            if not with_output_only or call.has_output:
                self.finish(key)

    def made(self, tool_call_id: str) -> bool:
        """Whether a finished call's model made this tool call."""
        return tool_call_id in self._made

    def claim_tool_call_id(self, name: str) -> str | None:
        """The model's id for a tool run reported without one: the oldest unclaimed by `name`.

        Classic agents (`AgentExecutor`) run a tool with no `tool_call_id`; the model's calls of
        that tool are taken in the order it made them.
        """
        with self._lock:
            for tool_call_id, made_name in self._made.items():
                if made_name == name:
                    del self._made[tool_call_id]
                    return tool_call_id
        return None


def callback_message(token: Any, chunk: Any) -> BaseMessage | None:
    """The message to feed for one `on_llm_new_token`, never the raw `token` when there is more.

    A chat model's chunk carries the whole message (tool-call chunks, usage, metadata); the
    raw token may be a list of content blocks (Bedrock, Anthropic with tools).
    """
    if isinstance(chunk, ChatGenerationChunk):
        return chunk.message
    text = getattr(chunk, "text", None) if chunk is not None else None
    if isinstance(text, str):
        return AIMessageChunk(content=text)
    if token:
        return AIMessageChunk(content=token)
    return None


class LLMCallbacks(BaseCallbackHandler):
    """LLM-call callbacks -> a `CallRegistry`; subclasses say where a call sits in the run.

    Args:
        emit_threadsafe: pushes an event into the run from any thread.
        track_text: `RunSink.track_text`, for the answer calls' text.
    """

    # Called inline, in order, on whichever thread reports: events must not be reordered.
    run_inline = True
    raise_error = False

    def __init__(
        self,
        emit_threadsafe: Callable[[BaseEvent], None],
        track_text: Callable[[str, Callable[[], str]], Any] | None = None,
    ) -> None:
        self.calls = CallRegistry(emit_threadsafe, track_text)

    def provenance(self, run_id: UUID, parent_run_id: UUID | None) -> tuple[str | None, int]:
        """The `parent_id` and `depth` of an LLM call that starts."""
        raise NotImplementedError

    # `_StreamingCallbackHandler` marker: with it attached, `ainvoke`/`invoke` on a chat model
    # stream internally, so the caller's `model.invoke(...)` still yields live tokens.
    def tap_output_aiter(self, run_id: UUID, output: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """Pass the output through unchanged."""
        return output

    def tap_output_iter(self, run_id: UUID, output: Iterator[Any]) -> Iterator[Any]:
        """Pass the output through unchanged."""
        return output

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Emit `llm_start`."""
        parent_id, depth = self.provenance(run_id, parent_run_id)
        self.calls.open(
            run_id,
            call_id=f"llm_{run_id.hex}",  # LangChain run ids are UUID7: a prefix is a timestamp
            parent_id=parent_id,
            depth=depth,
            model=(metadata or {}).get("ls_model_name"),
            name=(serialized or {}).get("name") or kwargs.get("name"),
            tags=tuple(tags or ()),
        )

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """A completion (non-chat) model: same as a chat model."""
        self.on_chat_model_start(
            serialized, prompts, run_id=run_id, parent_run_id=parent_run_id, **kwargs
        )

    def on_llm_new_token(
        self,
        token: str | list[str | dict[str, Any]],
        *,
        chunk: Any = None,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        """Feed a streamed chunk."""
        call = self.calls.get(run_id)
        if call is not None:
            message = callback_message(token, chunk)
            if message is not None:
                call.feed(message)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the call; a model that did not stream reports its whole output here."""
        self.calls.finish(run_id, final=final_message(response))

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the call as failed."""
        self.calls.fail(run_id)
