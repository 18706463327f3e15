"""The one backoff both retries of model calls and client reconnects wait with."""

from __future__ import annotations

from agentcast._backoff import backoff_delay
from agentcast.sources.retry import RetryPolicy


def test_backoff_doubles_up_to_the_cap():
    assert [backoff_delay(n, base=0.2, cap=1.0) for n in range(1, 6)] == [0.2, 0.4, 0.8, 1.0, 1.0]
    assert backoff_delay(5000, base=0.2, cap=1.0) == 1.0, "no overflow on a long outage"
    assert backoff_delay(3, base=0, cap=1.0) == 0.0


def test_jitter_stays_in_the_upper_half():
    for attempt in range(1, 8):
        full = backoff_delay(attempt, base=0.5, cap=8.0)
        assert all(
            full / 2 <= backoff_delay(attempt, base=0.5, cap=8.0, jitter=True) <= full
            for _ in range(50)
        )


def test_retry_policy_waits_with_the_shared_backoff():
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0)
    assert 2.0 <= policy.delay(4) <= 4.0
    assert RetryPolicy(base_delay=0).delay(1) == 0.0
