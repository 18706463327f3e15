"""The cluster benchmark keeps working: brokered workers, a private Redis, the replica path and
`agentcast serve --workers 2` (tiny sizes; no timing assertions)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

CLUSTER = Path(__file__).resolve().parents[1] / "bench" / "bench_cluster.py"


def _load_cluster_bench():
    module = sys.modules.get("bench_cluster")
    if module is None:
        spec = importlib.util.spec_from_file_location("bench_cluster", CLUSTER)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_cluster"] = module
        spec.loader.exec_module(module)
    return module


def test_cluster_bench_plans_the_baseline_then_every_broker_level():
    bench = _load_cluster_bench()
    assert bench.plan([3, 5], [1, 2], True, True, True) == [
        ("inproc", 1, 3),
        ("broker", 1, 3),
        ("broker", 2, 3),
        ("broker-cross", 2, 3),
        ("serve-workers", 2, 3),
        ("inproc", 1, 5),
        ("broker", 1, 5),
        ("broker", 2, 5),
        ("broker-cross", 2, 5),
        ("serve-workers", 2, 5),
    ]
    assert bench.plan([3], [1], True, False, True) == [("broker", 1, 3)]


def test_cluster_summary_gives_medians_and_the_scaling_from_one_worker_to_n(capsys):
    bench = _load_cluster_bench()

    def level(workers, cpu, p99):
        lv = bench.ClusterLevel("broker", workers, 100, tokens=10, expected_tokens=10)
        lv.cpu_us_per_token, lv.p99_ms = cpu, p99
        return lv

    runs = [
        [level(1, 300.0, 5.0), level(2, 400.0, 9.0)],
        [level(1, 270.0, 7.0), level(2, 300.0, 8.0)],
    ]
    from _cluster_report import print_summary, scaling

    assert scaling(runs[0], 2, 100) == 0.75 and scaling(runs[1], 2, 100) == 0.9
    assert scaling(runs[0], 3, 100) != scaling(runs[0], 3, 100)  # no such level: NaN
    print_summary(runs)
    printed = capsys.readouterr().out
    assert "Medians (min-max) over 2 runs" in printed
    assert "6.0 (5.0-7.0)" in printed and "285.00 (270.00-300.00)" in printed  # 1 worker
    assert "1 worker ÷ 2 workers: 0.82 (0.75-0.90)" in printed
    assert "≈ 1.65 (1.50-1.80) × one worker's throughput" in printed


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_cluster_bench_streams_through_the_broker_and_reports(tmp_path, capsys):
    bench = _load_cluster_bench()
    out = tmp_path / "cluster.json"
    argv = ["--streams", "4", "--workers", "1,2", "--tokens", "5", "--rate", "50"]
    argv += ["--ramp", "0.05", "--cross", "--workers-mode", "--json", str(out)]
    assert bench.main(argv) == 0
    printed = capsys.readouterr().out
    assert "redis/tok" in printed and "× in-process per token" in printed
    (levels,) = json.loads(out.read_text())["runs"]
    assert [(lv["mode"], lv["workers"]) for lv in levels] == [
        ("inproc", 1),
        ("broker", 1),
        ("broker", 2),
        ("broker-cross", 2),
        ("serve-workers", 2),
    ]
    for level in levels:
        assert level["errors"] == 0 and level["dropped"] == 0, level["error_samples"]
        assert level["tokens"] == level["expected_tokens"] == 4 * 5
        assert level["cpu_us_per_token"] > 0 and level["p50_ms"] >= 0
        if level["mode"] == "inproc":  # no broker: no Redis at all
            assert level["redis_commands_per_token"] != level["redis_commands_per_token"]
        else:  # every token went through Redis: at least one command per batch of them
            assert level["redis_commands_per_token"] > 0
            assert level["redis_cpu_us_per_token"] >= 0
        if level["mode"] in ("broker", "broker-cross"):
            assert level["replicator_commands_per_token"] > 0
