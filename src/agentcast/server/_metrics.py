"""Prometheus metrics of one server (its own registry: several apps in a process never clash).

Nothing here runs per token: counters are updated once per run, from `agent_end`'s metrics;
the streams' write counts are two plain ints (`WriteStats`) read at scrape time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from agentcast.runtime import RunManager, RunResult
from agentcast.server._stream import WriteStats

if TYPE_CHECKING:
    from agentcast.broker._node import BrokerNode

__all__ = ["ServerMetrics"]

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)


class ServerMetrics:
    """Runs, active runs and streams, tokens, TTFT and duration histograms, errors by type."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.runs = Counter(
            "agentcast_runs", "Runs finished, by outcome.", ["outcome"], registry=self.registry
        )
        self.active_runs = Gauge(
            "agentcast_active_runs", "Runs executing now.", registry=self.registry
        )
        self.streams = Gauge(
            "agentcast_active_streams",
            "SSE and WebSocket readers attached now.",
            registry=self.registry,
        )
        self.tokens = Counter("agentcast_tokens", "Output tokens streamed.", registry=self.registry)
        self.ttft = Histogram(
            "agentcast_ttft_seconds",
            "Run start to first answer token.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.duration = Histogram(
            "agentcast_run_duration_seconds",
            "Run duration.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "agentcast_errors", "Failed runs, by error type.", ["type"], registry=self.registry
        )
        self.writes = WriteStats()
        self.registry.register(_WriteCollector(self.writes))

    def watch(self, manager: RunManager) -> None:
        """Read the active-run and stream gauges from the manager at scrape time.

        The stream gauge is the manager's own reader count, not a second counter kept beside
        it, so the two can never disagree (nor leak when a reader fails).
        """
        self.active_runs.set_function(lambda: manager.active_runs)
        self.streams.set_function(lambda: manager.readers)

    def watch_broker(self, node: BrokerNode) -> None:
        """Export what the broker's replicators sent, and whether the broker answers."""
        self.registry.register(_BrokerCollector(node))

    def run_finished(self, result: RunResult) -> None:
        """Account for one finished run."""
        metrics: dict[str, Any] = result.metrics
        self.runs.labels(result.outcome).inc()
        self.tokens.inc(metrics.get("tokens") or 0)
        if metrics.get("ttft_ms") is not None:
            self.ttft.observe(metrics["ttft_ms"] / 1000)
        self.duration.observe((metrics.get("duration_ms") or 0) / 1000)
        if result.outcome in ("error", "timeout"):
            self.errors.labels(result.error_code or result.outcome).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _BrokerCollector:
    """Exports the replication counters at scrape time (`bench/bench_broker.py`: per token)."""

    def __init__(self, node: BrokerNode) -> None:
        self.node = node

    def collect(self) -> Any:
        stats = self.node.stats
        for name, help_text, value in (
            ("commands", "Redis commands the replicators sent.", stats.commands),
            ("events", "Events the replicators wrote to run streams.", stats.events),
            ("round_trips", "Replication round trips to Redis.", stats.round_trips),
        ):
            yield CounterMetricFamily(f"agentcast_broker_{name}", help_text, value=value)
        yield GaugeMetricFamily(
            "agentcast_broker_up", "1 while the broker answers.", value=0 if self.node.down else 1
        )


class _WriteCollector:
    """Exports `WriteStats` at scrape time (nothing is observed per write)."""

    def __init__(self, stats: WriteStats) -> None:
        self.stats = stats

    def collect(self) -> Any:
        yield CounterMetricFamily(
            "agentcast_stream_writes", "Writes to SSE streams.", value=self.stats.writes
        )
        yield CounterMetricFamily(
            "agentcast_stream_events",
            "Events those writes carried (÷ writes: events per write).",
            value=self.stats.events,
        )
        yield CounterMetricFamily(
            "agentcast_stream_direct",
            "SSE streams whose body went straight to the connection, past the ASGI send chain.",
            value=self.stats.direct,
        )
