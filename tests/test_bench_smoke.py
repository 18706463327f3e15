"""The token benchmark keeps working (tiny sizes; no timing assertions)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

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
