"""The runtime: run lifecycle, seq numbering, the closure invariant, the per-run event log."""

from agentcast.runtime._buffer import TokenBuffer, coalesce, join_tokens
from agentcast.runtime._log import HEARTBEAT, EventLog, LogReader, ResumeGap
from agentcast.runtime._salvage import close_lost_run
from agentcast.runtime.manager import (
    CancelStatus,
    DisconnectPolicy,
    ManagedRun,
    RunHandle,
    RunManager,
    SessionPolicy,
)
from agentcast.runtime.run import EventHandler, Run, RunEvents, RunResult, new_id

__all__ = (
    "HEARTBEAT",
    "CancelStatus",
    "DisconnectPolicy",
    "EventHandler",
    "EventLog",
    "LogReader",
    "ManagedRun",
    "ResumeGap",
    "Run",
    "RunEvents",
    "RunHandle",
    "RunManager",
    "RunResult",
    "SessionPolicy",
    "TokenBuffer",
    "close_lost_run",
    "coalesce",
    "join_tokens",
    "new_id",
)
