"""Which provider failures may be retried, and how long to wait.

A retry is only ever attempted before the first token of a model call: after output has
streamed, a retry would show the user duplicated text, so the run ends with
`error(partial=true)` instead.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from agentcast.errors import AgentcastError, ProviderError

__all__ = ["RetryPolicy", "classify_provider_error"]

_RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
_RETRYABLE_NAMES = (
    "RateLimit",
    "Timeout",
    "APIConnection",
    "ConnectError",
    "InternalServer",
    "Overloaded",
    "ServiceUnavailable",
    "Throttling",
    "RemoteProtocolError",
    "ReadError",
)


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of a model call that failed before its first token.

    Attributes:
        retries: how many times to retry (0 disables retries).
        base_delay: seconds before the first retry; doubled each time, with jitter.
        max_delay: the longest wait between retries.
    """

    retries: int = 2
    base_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        if self.base_delay <= 0:
            return 0.0
        base = float(min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1)))
        return base * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not security


def classify_provider_error(exc: BaseException) -> AgentcastError:
    """Return the agentcast error for an exception raised by a model call."""
    if isinstance(exc, AgentcastError):
        return exc
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int):
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
    retryable = (isinstance(status, int) and status in _RETRYABLE_STATUS) or any(
        name in cls.__name__ for cls in type(exc).__mro__ for name in _RETRYABLE_NAMES
    )
    message = str(exc) or type(exc).__name__
    return ProviderError(
        f"the model provider failed: {message}",
        retryable=retryable,
        status_code=status if isinstance(status, int) else None,
    )
