"""The run tree of a LangChain run, and tool executions as `tool_start`/`tool_end`.

`ToolRuns` holds the state: each run's parent, the tool executions in progress with their
`tool_call_id` and nesting (a tool inside a tool), and so the tool that encloses an LLM call
(for that call's `parent_id` and `depth`). The callback bridge and the LangGraph source feed it
from callbacks through `RunTreeTracker`; the runnable source feeds it from `astream_events`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import ToolMessage

from agentcast.events import ToolEnd, ToolStart, json_safe

__all__ = ["RunTreeTracker", "ToolRuns", "TrackedTool"]


class TrackedTool(NamedTuple):
    """A tool execution in progress."""

    tool_call_id: str
    name: str
    depth: int
    started: float


class ToolRuns:
    """The run tree and the open tool executions, keyed by the source's run ids.

    Args:
        match_tool_call_id: the model's id for a tool run reported without one, by the tool's
            name (None: none known).
    """

    def __init__(self, match_tool_call_id: Callable[[str], str | None] | None = None) -> None:
        self._lock = threading.Lock()
        self.parents: dict[Hashable, Hashable | None] = {}
        self._open: dict[Hashable, TrackedTool] = {}
        self._match = match_tool_call_id

    def ancestor(self, run_id: Hashable | None) -> TrackedTool | None:
        """The nearest tool execution enclosing a run (or being it), if any."""
        while run_id is not None:
            tool = self._open.get(run_id)
            if tool is not None:
                return tool
            run_id = self.parents.get(run_id)
        return None

    def open(
        self,
        run_id: Hashable,
        *,
        parent_run_id: Hashable | None,
        name: str,
        tool_input: Any,
        tool_call_id: str | None,
    ) -> tuple[ToolStart, TrackedTool]:
        """Register a starting tool execution; return its `tool_start`."""
        self.parents[run_id] = parent_run_id
        with self._lock:
            matched = self._match(name) if self._match is not None and not tool_call_id else None
            call_id = tool_call_id or matched or f"tool_{_hex(run_id)}"
            outer = self.ancestor(parent_run_id)
            depth = outer.depth + 1 if outer else 0
            tool = self._open[run_id] = TrackedTool(call_id, name, depth, time.perf_counter())
        event = ToolStart(
            tool_call_id=call_id,
            name=name,
            input=json_safe(tool_input),
            parent_id=outer.tool_call_id if outer else None,
            depth=depth,
        )
        return event, tool

    def close(
        self, run_id: Hashable, *, output: Any = None, error: BaseException | None = None
    ) -> ToolEnd | None:
        """Unregister a finished tool execution; return its `tool_end` (None if unknown)."""
        with self._lock:
            tool = self._open.pop(run_id, None)
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


def _hex(run_id: Hashable) -> str:
    # Callbacks give UUIDs, astream_events their string form: the same id either way.
    return run_id.hex if isinstance(run_id, UUID) else str(run_id).replace("-", "")


class RunTreeTracker(BaseCallbackHandler):
    """Feeds `ToolRuns` from callbacks; subclasses decide where the tool events go."""

    run_inline = True  # keep the callbacks' order: no hop to an executor
    raise_error = False

    def __init__(self) -> None:
        self.tools = ToolRuns(self.match_tool_call_id)

    def tool_ancestor(self, run_id: UUID | None) -> TrackedTool | None:
        """The nearest tool execution enclosing a run, if any."""
        return self.tools.ancestor(run_id)

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
        self.tools.parents[run_id] = parent_run_id

    def match_tool_call_id(self, name: str) -> str | None:
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
        event, tool = self.tools.open(
            run_id,
            parent_run_id=parent_run_id,
            name=kwargs.get("name") or (serialized or {}).get("name") or "",
            tool_input=inputs if inputs is not None else input_str,
            tool_call_id=tool_call_id,
        )
        self.tool_started(event, tool, run_id)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Deliver the tool's `tool_end`."""
        self.tool_ended(self.tools.close(run_id, output=output), run_id)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Deliver the tool's `tool_end(status="error")`."""
        self.tool_ended(self.tools.close(run_id, error=error), run_id)
