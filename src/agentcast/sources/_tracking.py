"""The run tree of LangChain callbacks, and tool executions as `tool_start`/`tool_end`.

Shared by the callback bridge and the LangGraph source: both learn of tool executions from
callbacks and need each tool's `tool_call_id`, its nesting (a tool inside a tool), and the tool
that encloses an LLM call (for that call's `parent_id` and `depth`).
"""

from __future__ import annotations

import threading
import time
from typing import Any, NamedTuple
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import ToolMessage

from agentcast.events import ToolEnd, ToolStart, json_safe

__all__ = ["RunTreeTracker", "TrackedTool"]


class TrackedTool(NamedTuple):
    """A tool execution in progress."""

    tool_call_id: str
    name: str
    depth: int
    started: float


class RunTreeTracker(BaseCallbackHandler):
    """Records parents of runs and open tool executions; subclasses decide where events go."""

    run_inline = True  # keep the callbacks' order: no hop to an executor
    raise_error = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parents: dict[UUID, UUID | None] = {}
        self._tools: dict[UUID, TrackedTool] = {}

    def tool_ancestor(self, run_id: UUID | None) -> TrackedTool | None:
        """The nearest tool execution enclosing a run, if any."""
        while run_id is not None:
            tool = self._tools.get(run_id)
            if tool is not None:
                return tool
            run_id = self._parents.get(run_id)
        return None

    def on_chain_start(
        self,
        serialized: Any,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Remember the run's parent."""
        self._parents[run_id] = parent_run_id

    def match_tool_call_id(self, name: str, run_id: UUID) -> str | None:
        """The model's id for a tool run LangChain gave none (default: none known)."""
        return None

    def tool_started(self, event: ToolStart, tool: TrackedTool, run_id: UUID) -> None:
        """Deliver a `tool_start` (subclasses decide where events go)."""
        raise NotImplementedError

    def tool_ended(self, event: ToolEnd | None, run_id: UUID) -> None:
        """Deliver a `tool_end` (None: the tool was not tracked)."""
        raise NotImplementedError

    def on_tool_start(
        self,
        serialized: Any,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        inputs: dict[str, Any] | None = None,
        tool_call_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Register the tool execution and deliver its `tool_start`."""
        event, tool = self.open_tool(
            serialized,
            input_str,
            run_id=run_id,
            parent_run_id=parent_run_id,
            inputs=inputs,
            tool_call_id=tool_call_id,
            name=kwargs.get("name"),
        )
        self.tool_started(event, tool, run_id)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Deliver the tool's `tool_end`."""
        self.tool_ended(self.close_tool(run_id, output=output), run_id)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Deliver the tool's `tool_end(status="error")`."""
        self.tool_ended(self.close_tool(run_id, error=error), run_id)

    def open_tool(
        self,
        serialized: Any,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None,
        inputs: dict[str, Any] | None,
        tool_call_id: str | None,
        name: str | None,
    ) -> tuple[ToolStart, TrackedTool]:
        """Register a starting tool execution; return its `tool_start`."""
        self._parents[run_id] = parent_run_id
        name = name or (serialized or {}).get("name") or ""
        with self._lock:
            call_id = tool_call_id or self.match_tool_call_id(name, run_id) or f"tool_{run_id.hex}"
            outer = self.tool_ancestor(parent_run_id)
            depth = outer.depth + 1 if outer else 0
            tool = self._tools[run_id] = TrackedTool(call_id, name, depth, time.perf_counter())
        event = ToolStart(
            tool_call_id=call_id,
            name=name,
            input=json_safe(inputs if inputs is not None else input_str),
            parent_id=outer.tool_call_id if outer else None,
            depth=depth,
        )
        return event, tool

    def close_tool(
        self, run_id: UUID, *, output: Any = None, error: BaseException | None = None
    ) -> ToolEnd | None:
        """Unregister a finished tool execution; return its `tool_end` (None if unknown)."""
        with self._lock:
            tool = self._tools.pop(run_id, None)
        if tool is None:
            return None
        failed_message = isinstance(output, ToolMessage) and output.status == "error"
        content = output.content if isinstance(output, ToolMessage) else output
        if error is not None:
            status, value, message = "error", None, f"{type(error).__name__}: {error}"
        elif failed_message:
            status, value, message = "error", None, str(content)
        else:
            status, value, message = "ok", json_safe(content), None
        return ToolEnd(
            tool_call_id=tool.tool_call_id,
            name=tool.name,
            status=status,  # type: ignore[arg-type]
            output=value,
            error=message,
            duration_ms=round((time.perf_counter() - tool.started) * 1000, 3),
        )
