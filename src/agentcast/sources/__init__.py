"""Sources: everything that turns an agent run into events.

`agentcast.sources._base` (the `Source` and `RunSink` contracts) imports no framework; the
adapters import LangChain, so they load lazily, on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentcast.sources._base import RunRequest, RunSink, Source

if TYPE_CHECKING:
    from agentcast.sources.llm_call import LLMCallResult, LLMCallStream
    from agentcast.sources.native import NativeAgentSource
    from agentcast.sources.normalize import normalize_chunk

__all__ = (
    "LLMCallResult",
    "LLMCallStream",
    "NativeAgentSource",
    "RunRequest",
    "RunSink",
    "Source",
    "normalize_chunk",
)

_LAZY = {
    "LLMCallResult": "agentcast.sources.llm_call",
    "LLMCallStream": "agentcast.sources.llm_call",
    "NativeAgentSource": "agentcast.sources.native",
    "normalize_chunk": "agentcast.sources.normalize",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agentcast.sources' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
