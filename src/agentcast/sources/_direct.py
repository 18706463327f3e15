"""Stream a chat model without LangChain's per-call chunk retention when nothing needs it.

`BaseChatModel.astream` keeps every chunk of a call until it ends (it merges them for
`on_llm_end`): a few pydantic objects per token that stay alive, and tracked by the garbage
collector, for the whole answer. At a thousand concurrent streams that is most of what the
collector walks, and its pauses become the p99 latency (bench/README.md). The merge exists only
for callback handlers and tracers. So when the call would have none (no handler passed down
from an enclosing run, none on the model, no tracer from the environment: the callback
manager LangChain would build is empty), the model's own `_astream` is driven directly, with
the per-chunk fix-ups `astream` applies (the message id, the generation info merged into
`response_metadata`) and nothing retained. Every other case, and anything this module does not
know how to do exactly as `astream` would (output_version "v1", a rate limiter, a model that
does not stream, a LangChain without the helpers used here), takes `astream` itself.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManager
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, BaseMessageChunk
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.runnables import Runnable, RunnableBinding, ensure_config

__all__ = ["feed_model", "stream_model"]

_Normalize = Callable[[Sequence[BaseMessage]], list[BaseMessage]]

try:  # `astream`'s own input normalisation; absent in some LangChain: then no direct path
    from langchain_core.language_models._utils import _normalize_messages as _normalize_import

    _normalize: _Normalize | None = _normalize_import
except ImportError:  # pragma: no cover - depends on the installed langchain-core
    _normalize = None

_GATEWAY_KEY: str | None
try:
    from langchain_core.utils._gateway import GATEWAY_METADATA_RESPONSE_KEY

    _GATEWAY_KEY = GATEWAY_METADATA_RESPONSE_KEY
except ImportError:  # pragma: no cover - older langchain-core has no gateway metadata
    _GATEWAY_KEY = None


def stream_model(
    runnable: Runnable[Any, Any], messages: list[BaseMessage]
) -> AsyncIterator[BaseMessageChunk]:
    """Stream one model call's message chunks, as `runnable.astream(messages)` yields them.

    Takes the direct path (no chunk retained) when it gives the same chunks and no callback
    handler or tracer would see the call; otherwise returns `runnable.astream(messages)`.
    """
    target = _direct_target(runnable)
    if target is None:
        return runnable.astream(messages)
    model, kwargs = target
    return _direct(model, messages, kwargs)


def _direct_target(runnable: Runnable[Any, Any]) -> tuple[BaseChatModel, dict[str, Any]] | None:
    kwargs: dict[str, Any] = {}
    model: Any = runnable
    if isinstance(runnable, RunnableBinding):
        if runnable.config or runnable.config_factories or runnable.custom_input_type:
            return None
        model, kwargs = runnable.bound, dict(runnable.kwargs)
    if not isinstance(model, BaseChatModel):
        return None
    if _normalize is None or model.rate_limiter is not None or model.output_version == "v1":
        return None
    if not model._should_stream(async_api=True, **{**kwargs, "stream": True}):  # noqa: SLF001
        return None
    if _would_be_seen(model):
        return None
    return model, kwargs


def _would_be_seen(model: BaseChatModel) -> bool:
    """Whether `astream` would build a callback manager with any handler (tracer included)."""
    config = ensure_config(None)  # picks up an enclosing run's config (its callbacks)
    manager = AsyncCallbackManager.configure(
        config.get("callbacks"),
        model.callbacks,
        model.verbose,
        config.get("tags"),
        model.tags,
        config.get("metadata"),
        model.metadata,
    )
    return bool(manager.handlers or manager.inheritable_handlers)


async def feed_model(
    runnable: Runnable[Any, Any],
    messages: list[BaseMessage],
    feed: Callable[[BaseMessageChunk], object],
) -> None:
    """Stream one model call into `feed`, chunk by chunk: what `stream_model` yields.

    A coroutine, not a generator: on the direct path the model's own `_astream` is the only
    generator between the provider's bytes and `feed` (one generator resume per token less
    than iterating `stream_model`). Whatever ends the call closes the model's stream here.

    The call streams in a task of its own, which the caller awaits. Every chunk resumes the
    task that waits for the provider: in the caller's task that is the whole chain of the
    run's coroutines (manager, run, source, this call: five frames in and out per chunk), in
    a task of its own only this loop and the model's generator (README, Performance: at
    1,000 streams a p99 of 33 ms instead of 52, and 1.7 µs per token less with 400-token
    answers). Cancelling the
    caller cancels the task (asyncio passes a cancellation on to the task being awaited), and
    its context is a copy of the caller's, so an enclosing run's callbacks still decide the
    path.
    """
    await asyncio.get_running_loop().create_task(_feed_call(runnable, messages, feed))


async def _feed_call(
    runnable: Runnable[Any, Any],
    messages: list[BaseMessage],
    feed: Callable[[BaseMessageChunk], object],
) -> None:
    target = _direct_target(runnable)
    if target is None:
        chunks: Any = runnable.astream(messages)
        adopt = None
    else:
        model, kwargs = target
        chunks, default_id = _open(model, messages, kwargs)
        adopt = _adopter(default_id)
    try:
        if adopt is None:
            async for chunk in chunks:
                feed(chunk)
        else:
            async for generation in chunks:
                feed(adopt(generation))
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


def _open(
    model: BaseChatModel, messages: list[BaseMessage], kwargs: dict[str, Any]
) -> tuple[AsyncIterator[ChatGenerationChunk], str]:
    assert _normalize is not None
    stop = kwargs.pop("stop", None)
    default_id = f"lc_run--{uuid.uuid4()}"  # what `astream` names a call's messages
    return model._astream(_normalize(messages), stop=stop, **kwargs), default_id  # noqa: SLF001


def _adopter(default_id: str) -> Callable[[ChatGenerationChunk], BaseMessageChunk]:
    """The per-chunk fix-ups `astream` applies: the call's message id, the generation info."""

    def adopt(generation: ChatGenerationChunk) -> BaseMessageChunk:
        message = generation.message
        if message.id is None:
            message.id = default_id
        info = generation.generation_info
        if info:
            if _GATEWAY_KEY is not None and _GATEWAY_KEY in info:
                info = {k: v for k, v in info.items() if k != _GATEWAY_KEY}
            message.response_metadata = {**info, **message.response_metadata}
        return message

    return adopt


async def _direct(
    model: BaseChatModel, messages: list[BaseMessage], kwargs: dict[str, Any]
) -> AsyncIterator[BaseMessageChunk]:
    chunks, default_id = _open(model, messages, kwargs)
    adopt = _adopter(default_id)
    try:
        async for generation in chunks:
            yield adopt(generation)
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
