"""Exponential backoff: how long to wait before a retry (model calls, client reconnects)."""

from __future__ import annotations

import random

__all__ = ["backoff_delay"]


def backoff_delay(attempt: int, *, base: float, cap: float, jitter: bool = False) -> float:
    """Seconds to wait before retry number `attempt` (1-based).

    `base` doubled at each attempt after the first, at most `cap`. Jitter draws the wait from
    its upper half, so many clients that failed together do not retry together.

    Args:
        attempt: the retry's number, from 1.
        base: the wait before the first retry (0 or less: never wait).
        cap: the longest wait.
        jitter: randomize the wait.
    """
    if base <= 0:
        return 0.0
    # The exponent is bounded: past it the cap wins anyway, and 2.0 ** 1024 overflows.
    delay = min(cap, base * 2.0 ** min(attempt - 1, 64))
    if jitter:
        delay *= 0.5 + random.random() / 2  # noqa: S311 - spreading retries, not security
    return delay
