"""What `bench_cluster.py` prints: one table per run, then medians over the runs and the
per-token CPU scaling from one worker to N."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from _report import spread

_KEYS = ("p99_ms", "cpu_us_per_token", "redis_commands_per_token", "redis_cpu_us_per_token")


def print_table(levels: Sequence[Any]) -> None:
    """One line per level, then broker ÷ in-process CPU per token at each stream count."""
    print(
        f"{'mode':<13}{'wk':>3}{'streams':>8}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}"
        f"{'µs/tok':>8}{'cpu':>6}{'wait':>6}{'mach':>6}{'redis µs':>9}{'redis/tok':>10}"
        f"{'repl/tok':>9}{'err':>5}{'drop':>5}{'ok':>4}"
    )
    for lv in levels:
        print(
            f"{lv.mode:<13}{lv.workers:>3}{lv.streams:>8}{lv.p50_ms:>8.1f}{lv.p99_ms:>8.1f}"
            f"{lv.max_ms:>8.1f}{lv.cpu_us_per_token:>8.1f}{lv.cpu_share:>6.2f}"
            f"{lv.worker_wait_share:>6.2f}{lv.machine_wait_share:>6.2f}"
            f"{lv.redis_cpu_us_per_token:>9.1f}{lv.redis_commands_per_token:>10.3f}"
            f"{lv.replicator_commands_per_token:>9.3f}"
            f"{lv.errors:>5}{lv.dropped:>5}{'yes' if lv.passed else 'NO':>4}"
        )
        for why in lv.error_samples:
            print(f"    {why}")
    for count in sorted({lv.streams for lv in levels}):
        base = _find(levels, "inproc", 1, count)
        if base is None or not base.cpu_us_per_token > 0:
            continue
        for lv in levels:
            if lv.streams == count and lv.mode != "inproc":
                print(
                    f"x{count}: {lv.mode} with {lv.workers} worker(s) costs"
                    f" {lv.cpu_us_per_token / base.cpu_us_per_token:.2f} × in-process per token,"
                    f" p99 {lv.p99_ms - base.p99_ms:+.1f} ms"
                )


def _find(levels: Sequence[Any], mode: str, workers: int, streams: int) -> Any:
    return next(
        (lv for lv in levels if (lv.mode, lv.workers, lv.streams) == (mode, workers, streams)),
        None,
    )


def scaling(levels: Sequence[Any], workers: int, streams: int) -> float:
    """One brokered worker's CPU per token ÷ `workers` brokered workers' (summed) at the same
    load: N workers given N cores of their own deliver about this × N × one worker's tokens/s,
    since a worker at its limit is bound by its CPU per token (NaN when a level is missing)."""
    one = _find(levels, "broker", 1, streams)
    many = _find(levels, "broker", workers, streams)
    if one is None or many is None or not many.cpu_us_per_token > 0:
        return float("nan")
    return float(one.cpu_us_per_token / many.cpu_us_per_token)


def print_summary(runs: Sequence[Sequence[Any]]) -> None:
    """Medians (range) over the runs of each level's p99, CPU and Redis figures, then the
    scaling of the per-token CPU from one brokered worker to N."""
    print(f"\nMedians (min-max) over {len(runs)} runs:")
    print(f"{'mode':<13}{'wk':>3}{'streams':>8}  p99 ms / µs/token / redis cmds/tok / redis µs/tok")
    shapes = [(lv.mode, lv.workers, lv.streams) for lv in runs[0]]
    for mode, workers, streams in shapes:
        found = [lv for run in runs if (lv := _find(run, mode, workers, streams)) is not None]
        cells = [
            spread([getattr(lv, key) for lv in found], ".1f" if "ms" in key else ".2f")
            for key in _KEYS
        ]
        held = sum(lv.passed for lv in found)
        print(f"{mode:<13}{workers:>3}{streams:>8}  {' / '.join(cells)}  held {held}/{len(found)}")
    for mode, workers, streams in shapes:
        if mode == "broker" and workers > 1:
            ratios = [scaling(run, workers, streams) for run in runs]
            delivered = spread([r * workers for r in ratios], ".2f")
            print(
                f"x{streams}: per-token CPU, 1 worker ÷ {workers} workers: {spread(ratios, '.2f')}"
                f" -> {workers} workers on {workers} free cores ≈ {delivered}"
                " × one worker's throughput"
            )
