"""agentcast: one typed, ordered, resumable event stream for any LLM agent run.

The everyday surface: `Agent`, `stream_agent`/`invoke_agent`, `emit`, the event types, the
callback handlers and the errors. Only the errors load eagerly; everything else (events,
LangChain, rich, providers) loads on first use, so `import agentcast` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from agentcast.errors import (
    AgentcastError,
    ConfigError,
    InvalidInput,
    MaxStepsExceeded,
    MissingCredentials,
    MissingDependency,
    ProviderError,
    RunError,
    SessionBusy,
    SessionError,
    SessionFenced,
    StoreUnavailable,
    ToolNotFound,
    UserError,
)

if TYPE_CHECKING:
    from agentcast.agents import (
        Agent,
        Runner,
        default_agent,
        invoke_agent,
        stream_agent,
        stream_callbacks,
        wrap,
    )
    from agentcast.agents.callbacks import (
        CallbackHandler,
        ConsolePrinter,
        ProgressTracker,
        TokenAccumulator,
    )
    from agentcast.events import (
        AgentEnd,
        AgentStart,
        AgentStep,
        BaseEvent,
        Custom,
        Error,
        Event,
        LLMEnd,
        LLMStart,
        LLMToken,
        ToolCallDelta,
        ToolCallEnd,
        ToolCallStart,
        ToolEnd,
        ToolStart,
    )
    from agentcast.events._scope import emit
    from agentcast.runtime import Run, RunResult, TokenBuffer

from agentcast._version import __version__ as __version__

__all__ = (
    "Agent",
    "AgentEnd",
    "AgentStart",
    "AgentStep",
    "AgentcastError",
    "BaseEvent",
    "CallbackHandler",
    "ConfigError",
    "ConsolePrinter",
    "Custom",
    "Error",
    "Event",
    "InvalidInput",
    "LLMEnd",
    "LLMStart",
    "LLMToken",
    "MaxStepsExceeded",
    "MissingCredentials",
    "MissingDependency",
    "ProgressTracker",
    "ProviderError",
    "Run",
    "Runner",
    "RunError",
    "RunResult",
    "SessionBusy",
    "SessionError",
    "SessionFenced",
    "StoreUnavailable",
    "TokenAccumulator",
    "TokenBuffer",
    "ToolCallDelta",
    "ToolCallEnd",
    "ToolCallStart",
    "ToolEnd",
    "ToolNotFound",
    "ToolStart",
    "UserError",
    "default_agent",
    "emit",
    "invoke_agent",
    "stream_agent",
    "stream_callbacks",
    "wrap",
)

_LAZY = {
    "emit": "agentcast.events._scope",
    "AgentEnd": "agentcast.events",
    "AgentStart": "agentcast.events",
    "AgentStep": "agentcast.events",
    "BaseEvent": "agentcast.events",
    "Custom": "agentcast.events",
    "Error": "agentcast.events",
    "Event": "agentcast.events",
    "LLMEnd": "agentcast.events",
    "LLMStart": "agentcast.events",
    "LLMToken": "agentcast.events",
    "ToolCallDelta": "agentcast.events",
    "ToolCallEnd": "agentcast.events",
    "ToolCallStart": "agentcast.events",
    "ToolEnd": "agentcast.events",
    "ToolStart": "agentcast.events",
    "Agent": "agentcast.agents",
    "Runner": "agentcast.agents",
    "wrap": "agentcast.agents",
    "stream_callbacks": "agentcast.agents",
    "default_agent": "agentcast.agents",
    "invoke_agent": "agentcast.agents",
    "stream_agent": "agentcast.agents",
    "CallbackHandler": "agentcast.agents.callbacks",
    "ConsolePrinter": "agentcast.agents.callbacks",
    "ProgressTracker": "agentcast.agents.callbacks",
    "TokenAccumulator": "agentcast.agents.callbacks",
    "Run": "agentcast.runtime",
    "RunResult": "agentcast.runtime",
    "TokenBuffer": "agentcast.runtime",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agentcast' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
