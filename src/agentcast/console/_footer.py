"""The one-line summary shown after a run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentcast.events import AgentEnd

_OUTCOME_LABELS = {
    "cancelled": "stopped",
    "timeout": "timed out",
    "error": "failed",
    "interrupted": "interrupted",
}


@dataclass(frozen=True)
class Footer:
    """The one-line summary shown after a run, from `agent_end` and its metrics.

    Attributes:
        outcome: how the run ended (`success`, `error`, `cancelled`, `timeout`, `interrupted`).
        ttft_ms: run start to first answer token, if one came.
        tokens_per_s: output tokens per second.
        tool_calls: how many tools were called.
        tokens: output tokens.
        duration_ms: how long the run took.
    """

    outcome: str = "success"
    ttft_ms: float | None = None
    tokens_per_s: float | None = None
    tool_calls: int | None = None
    tokens: int | None = None
    duration_ms: float | None = None

    @classmethod
    def from_event(cls, event: AgentEnd) -> Footer:
        """Build the footer of an `agent_end` event, ignoring metrics of the wrong type."""
        metrics = event.metrics if isinstance(event.metrics, dict) else {}
        return cls(
            outcome=event.outcome,
            ttft_ms=_number(metrics.get("ttft_ms")),
            tokens_per_s=_number(metrics.get("tokens_per_s")),
            tool_calls=_integer(metrics.get("tool_calls")),
            tokens=_integer(metrics.get("tokens")),
            duration_ms=_number(metrics.get("duration_ms")),
        )

    @property
    def outcome_label(self) -> str | None:
        """A short word for an unsuccessful outcome (`stopped` for cancelled), else None."""
        return _OUTCOME_LABELS.get(self.outcome)

    def summary(self, *, ascii_only: bool = False) -> str:
        """Format the footer, e.g. `⏱ ttft 120 ms · 45.2 tok/s · 2 tool calls · 310 tokens`.

        Args:
            ascii_only: use ASCII separators, for outputs that cannot encode `⏱` and `·`.
        """
        prefix, parts, separator = self.layout(ascii_only=ascii_only)
        return prefix + separator.join(parts)

    def layout(self, *, ascii_only: bool = False) -> tuple[str, list[str], str]:
        """The footer's pieces: its prefix, its items and the separator between them.

        A terminal wraps the footer between items (`SeparatedLine`), never inside one.

        Args:
            ascii_only: use ASCII separators, for outputs that cannot encode `⏱` and `·`.
        """
        parts: list[str] = []
        if self.outcome_label:
            parts.append(self.outcome_label)
        if self.ttft_ms is not None:
            parts.append(f"ttft {self.ttft_ms:.0f} ms")
        if self.tokens_per_s:
            parts.append(f"{self.tokens_per_s:.1f} tok/s")
        if self.tool_calls:
            parts.append(f"{self.tool_calls} tool call{'' if self.tool_calls == 1 else 's'}")
        if self.tokens is not None:
            parts.append(f"{self.tokens} token{'' if self.tokens == 1 else 's'}")
        if self.duration_ms is not None:
            seconds = self.duration_ms / 1000
            parts.append(f"{seconds:.1f} s" if seconds >= 1 else f"{self.duration_ms:.0f} ms")
        if not parts:
            parts.append("done")
        if ascii_only:
            return "-- ", parts, " | "
        return "⏱ ", parts, " · "


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _integer(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)
