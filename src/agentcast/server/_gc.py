"""The garbage-collector tuning a streaming server applies once at start-up.

A streaming server allocates per token (LangChain's stream alone ~16 tracked objects); with
CPython's default first threshold (700) a young collection runs every ~40 tokens, and each
older collection walks everything start-up created (the app, the agent, imported modules).
Freezing start-up's objects takes them out of every later collection, and a higher first
threshold makes young collections rare. Not too high: a young collection walks every object
the threshold let accumulate, so its pause grows with it, about 0.7 µs per object on the
2-core VMs measured (50,000: 30–45 ms, most of the 50 ms latency budget in one pause;
20,000: 12–18 ms, with the same total collection time per level). The
benchmark gives its plain sse-starlette anchor exactly this function, so the comparison is of
agentcast's own work, not of GC settings.
"""

from __future__ import annotations

import gc

__all__ = ["GC_FIRST_THRESHOLD", "tune_gc"]

GC_FIRST_THRESHOLD = 20_000
"""The first-generation threshold set at start-up (never lowered if already higher)."""


def tune_gc() -> None:
    """Collect once, freeze what survives, and raise the first-generation threshold."""
    gc.collect()
    gc.freeze()
    first, second, third = gc.get_threshold()
    gc.set_threshold(max(first, GC_FIRST_THRESHOLD), second, third)
