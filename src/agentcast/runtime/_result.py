"""What a finished run returns, and run ids."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from agentcast.events import Outcome

__all__ = ["RunResult", "new_id"]


def new_id(prefix: str = "run") -> str:
    """Return a new random id such as `run_3f2a...`: 80 random bits, as 20 hex digits."""
    # The bits `uuid4().hex[:20]` gave, without building a UUID object (a fifth of the cost).
    return f"{prefix}_{os.urandom(10).hex()}"


@dataclass(frozen=True)
class RunResult:
    """How a run ended.

    Attributes:
        output: the final answer (partial when the run did not succeed).
        run_id: the run's id.
        session_id: the session's id.
        steps: how many messages the run completed.
        metrics: the metrics of `agent_end`.
        outcome: `success`, `error`, `cancelled`, `timeout` or `interrupted`.
        error: the error message when the run failed.
    """

    output: Any
    run_id: str
    session_id: str | None
    steps: int
    metrics: dict[str, Any]
    outcome: Outcome = "success"
    error: str | None = None
    error_code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON result of `invoke` (and of `POST /invoke`, `invoke_agent`).

        Its keys: output, session_id, run_id, steps, metrics, outcome, error.
        """
        return {
            "output": self.output,
            "session_id": self.session_id,
            "run_id": self.run_id,
            "steps": self.steps,
            "metrics": self.metrics,
            "outcome": self.outcome,
            "error": self.error,
        }
