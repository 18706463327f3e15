"""Many workers, one stream: runs shared by every server process through a broker (Redis).

With a broker, each run's events are mirrored to a Redis Stream per run, a registry says which
worker executes which run, cancels and reader counts travel by pub/sub, and workers hold
liveness leases so that the runs of a dead worker are ended by another (`_node`). Without one,
the in-memory log is all there is: the runtime never knows which it writes to.

`redis.py` is the backend (the only module that imports `redis`); it is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentcast.errors import MissingDependency

if TYPE_CHECKING:
    from agentcast.broker._node import BrokerNode
    from agentcast.broker.redis import RedisBroker
    from agentcast.runtime import RunManager

__all__ = ["attach", "open_broker"]


def open_broker(url: str, **options: Any) -> RedisBroker:
    """Return the broker a URL names (`redis://host:6379/0`); connections open on first use.

    `options` are `RedisBroker`'s (lease, retention, maxlen, per_event, timeout,
    flush_interval).

    Raises:
        ConfigError: the URL is not a Redis URL.
        MissingDependency: redis-py is not installed.
    """
    try:
        from agentcast.broker.redis import RedisBroker
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("redis"):
            raise
        raise MissingDependency(
            "the Redis broker needs redis-py: pip install 'agentcast[redis]'"
        ) from None
    return RedisBroker(url, **options)


def attach(broker: RedisBroker, manager: RunManager) -> BrokerNode:
    """Hook a worker's run manager to the broker; `await node.start()` on the serving loop."""
    from agentcast.broker._node import BrokerNode

    return BrokerNode(broker, manager)
