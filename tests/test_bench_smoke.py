"""The token benchmark keeps working (tiny sizes; no timing assertions)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_tokens.py"


def _load_bench():
    module = sys.modules.get("bench_tokens")
    if module is None:
        spec = importlib.util.spec_from_file_location("bench_tokens", BENCH)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_tokens"] = module
        spec.loader.exec_module(module)
    return module


def test_every_contestant_runs_every_workload_in_both_hop_modes():
    bench = _load_bench()
    tables = bench.run_bench(
        tokens=50, final_tokens=20, arg_chunks=5, repeat=1, hop="both", collect=False
    )
    assert [(t.workload, t.hop) for t in tables] == [
        ("A", False),
        ("B", False),
        ("A", True),
        ("B", True),
    ]
    assert [t.tokens for t in tables] == [50, 3 * 5 + 20, 50, 3 * 5 + 20]
    for table in tables:
        assert [row.contestant for row in table.rows] == list(bench.CONTESTANTS)
        for row in table.rows:
            assert len(row.samples) == 1
            assert row.us_per_token > 0


def test_cli_prints_the_tables_and_writes_json(tmp_path, capsys):
    bench = _load_bench()
    out = tmp_path / "out.json"
    argv = ["--tokens", "30", "--final-tokens", "10", "--arg-chunks", "3", "--repeat", "1"]
    code = bench.main(
        [*argv, "--hop", "on", "--workload", "B", "--layout", "sequential", "--json", str(out)]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "Workload B" in printed and "Overall:" in printed
    data = json.loads(out.read_text())
    assert [t["workload"] for t in data["tables"]] == ["B"]
    for table in data["tables"]:
        assert [r["contestant"] for r in table["rows"]] == list(bench.CONTESTANTS)


SOURCES = BENCH.with_name("bench_sources.py")


def _load_sources():
    _load_bench()  # bench_sources imports bench_tokens: share the one module
    module = sys.modules.get("bench_sources")
    if module is None:
        spec = importlib.util.spec_from_file_location("bench_sources", SOURCES)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_sources"] = module
        spec.loader.exec_module(module)
    return module


def test_every_source_contestant_runs_every_workload_in_both_hop_modes():
    sources = _load_sources()
    tables = sources.run_bench(
        tokens=50, final_tokens=20, arg_chunks=5, repeat=1, hop="both", collect=False
    )
    assert [(t.suite, t.workload, t.hop) for t in tables] == [
        (suite, workload, hop)
        for hop in (False, True)
        for workload in ("A", "B")
        for suite in ("graph", "runnable")
    ]
    for table in tables:
        assert table.tokens == (50 if table.workload == "A" else 3 * 5 + 20)
        assert [row.contestant for row in table.rows] == list(sources.SUITES[table.suite])
        assert table.native == sources.NATIVE[table.suite]
        assert table.agentcast_added_us is not None
        for row in table.rows:
            assert len(row.samples) == 1
            assert row.us_per_token > 0
            assert (row.added_us is None) == (row.contestant == table.native)


def test_sources_cli_prints_the_tables_and_writes_json(tmp_path, capsys):
    sources = _load_sources()
    out = tmp_path / "sources.json"
    argv = ["--tokens", "30", "--final-tokens", "10", "--arg-chunks", "3", "--repeat", "1"]
    code = sources.main([*argv, "--hop", "on", "--workload", "B", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "LangGraph source" in printed and "Runnable source" in printed
    assert "Overall" in printed
    data = json.loads(out.read_text())
    assert [(t["suite"], t["workload"]) for t in data["tables"]] == [
        ("graph", "B"),
        ("runnable", "B"),
    ]
    for table in data["tables"]:
        assert [r["contestant"] for r in table["rows"]] == list(sources.SUITES[table["suite"]])


def test_sources_only_selects_contestants_and_suites():
    sources = _load_sources()
    tables = sources.run_bench(
        tokens=20,
        repeat=1,
        hop="off",
        workload="A",
        only=("graph-messages", "graph-agentcast"),
        collect=False,
    )
    assert [t.suite for t in tables] == ["graph"]
    assert [r.contestant for r in tables[0].rows] == [
        sources.GRAPH_NATIVE,
        sources.GRAPH_AGENTCAST,
    ]
    assert tables[0].ratio is None and tables[0].passed is None  # no astream_events to compare


SERVER = BENCH.with_name("bench_server.py")


def _load_server_bench():
    module = sys.modules.get("bench_server")
    if module is None:
        spec = importlib.util.spec_from_file_location("bench_server", SERVER)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_server"] = module
        spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_server_bench_streams_from_every_server_and_reports(tmp_path, capsys):
    server = _load_server_bench()
    out = tmp_path / "server.json"
    argv = ["--streams", "2,3", "--tokens", "5", "--rate", "50", "--ramp", "0.05"]
    assert server.main([*argv, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Per level" in printed and "agentcast own ÷ floor" in printed
    data = json.loads(out.read_text())
    levels = data["levels"]
    kinds = ("agentcast", "drain", "floor", "plain", "plain-gc", "relay")
    assert sorted((lv["server"], lv["streams"]) for lv in levels) == [
        (kind, count) for kind in kinds for count in (2, 3)
    ]
    for level in levels:
        assert level["errors"] == 0 and level["dropped"] == 0, level["error_samples"]
        assert level["tokens"] == level["expected_tokens"] == level["streams"] * 5
        assert level["server_cpu_us_per_token"] > 0
        if level["server"] != "drain":  # the drain server delivers no token: no latency
            assert level["p50_ms"] >= 0
    [result] = data["verdicts"]
    assert set(result["cpu_ratios"]) == set(result["own_floor_ratios"]) == {"2", "3"}
    assert set(result["own_us"]) == {"agentcast", "plain", "plain-gc"}


def test_server_bench_own_cost_is_cpu_minus_the_model_drained_alone():
    server = _load_server_bench()

    def level(kind, cpu):
        return server.Level(
            kind, 100, 10, 20.0, tokens=1000, expected_tokens=1000, server_cpu_us_per_token=cpu
        )

    levels = [
        level("drain", 30.0),
        level("floor", 10.0),
        level("plain-gc", 90.0),
        level("agentcast", 45.0),
    ]
    result = server.verdict(levels)
    assert result.own_us == {"plain-gc": {100: 60.0}, "agentcast": {100: 15.0}}
    assert result.own_floor_ratios == {100: 1.5}
    assert result.own_plain_gc_ratios == {100: 0.25}
    assert result.own_passed is True
    levels[-1] = level("agentcast", 46.0)  # own 16 > 1.5 x the floor's 10
    assert server.verdict(levels).own_passed is False


def test_server_bench_verdict_bounds_the_capacity_ratio():
    server = _load_server_bench()

    def level(kind, streams, p99):
        return server.Level(
            kind, streams, 10, 20.0, tokens=streams * 10, expected_tokens=streams * 10, p99_ms=p99
        )

    levels = [
        level("plain", 10, 5.0),
        level("plain", 100, 80.0),
        level("plain-gc", 10, 5.0),
        level("plain-gc", 100, 20.0),
        level("plain-gc", 1000, 90.0),
        level("agentcast", 10, 2.0),
        level("agentcast", 100, 3.0),
        level("agentcast", 1000, 20.0),
        level("relay", 100, 4.0),
        level("relay", 1000, 70.0),
    ]
    result = server.verdict(levels)
    assert (result.agentcast.held, result.agentcast.failed) == (1000, None)
    assert (result.plain.held, result.plain.failed) == (10, 100)
    assert result.ratio_low == 10.0 and result.ratio_high is None
    assert result.streams_passed is None  # plain holds 10..99: the ratio is 10..100+
    assert result.target_streams_passed is True
    assert (result.plain_gc.held, result.plain_gc.failed) == (100, 1000)
    assert result.tuned_ratio_low == 1.0 and result.tuned_streams_passed is None
    # relay holds 100..999 and plain-gc 100..999: no server streaming this model gets 10x past
    assert (result.relay.held, result.relay.failed) == (100, 1000)
    assert result.bound_ratio_low == 0.1 and result.bound_ratio_high == 10.0
    levels[-1] = level("agentcast", 1000, 60.0)
    result = server.verdict(levels)
    assert result.ratio_high == 100.0 and result.target_streams_passed is False


def test_server_bench_counts_the_live_objects_of_a_stream_by_type(tmp_path, capsys):
    server = _load_server_bench()
    out = tmp_path / "server.json"
    # Streams of 2 s, so that the count halfway through finds them all still open.
    argv = ["--streams", "3", "--tokens", "40", "--rate", "20", "--ramp", "0.05"]
    argv += ["--only", "agentcast", "--count-objects", "--json", str(out)]
    assert server.main(argv) == 0
    assert "Live tracked objects per stream" in capsys.readouterr().out
    [level] = json.loads(out.read_text())["levels"]
    kinds = level["tracked_types_per_stream"]
    # An open stream is at least one suspended coroutine (the run's, the response's).
    assert kinds.get("builtins.coroutine", 0) >= 1, kinds
    assert list(kinds.values()) == sorted(kinds.values(), reverse=True)


def test_server_bench_profile_files_the_loop_work_by_the_frames_below_its_dispatch(tmp_path):
    # Under uvicorn every sample's stack starts in uvicorn's runner: the loop's own work (a
    # task step, a timer) is the loop's, and only frames below the dispatch name who ran.
    _load_server_bench()
    import _report

    runner = (
        "<module> (bench_server.py:376);serve (_servers.py:336);asyncio_run"
        " (uvicorn/_compat.py:30);BaseEventLoop.run_forever (asyncio/base_events.py:607);"
        "BaseEventLoop._run_once (asyncio/base_events.py:1922)"
    )
    profile = tmp_path / "agentcast-100.txt"
    profile.write_text(
        f"{runner};Handle._run (asyncio/events.py:80) 3\n"
        f"{runner};TimerHandle.__lt__ (asyncio/events.py:121) 1\n"
        f"{runner};Handle._run (asyncio/events.py:80);RequestResponseCycle.run_asgi"
        " (uvicorn/protocols/http/h11_impl.py:407) 2\n"
        f"{runner};Handle._run (asyncio/events.py:80);RunManager._execute"
        " (agentcast/runtime/manager.py:272) 4\n"
    )
    assert _report.summarize_profile(profile) == {
        "asyncio loop": 0.4,
        "uvicorn/starlette/fastapi/anyio": 0.2,
        "agentcast runtime + native source": 0.4,
    }
