"""Many workers, one stream (issue 11): real `agentcast serve` processes sharing one Postgres
store and one Redis broker, on loopback. The invariant checker runs on every stream."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from agentcast.testing import check_invariants
from tests.cluster import (
    Cluster,
    follow,
    free_port,
    invoke_stream,
    read_stream,
    sse_events,
    until_first_token,
)

pytestmark = pytest.mark.slow  # real `agentcast serve` processes

PROMPT = "what items are in the kitchen? tell me a long story about each"


def _redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url("redis://127.0.0.1:6379/13").ping())
    except Exception:  # noqa: BLE001 - any failure means no Redis here
        return False


requires_services = pytest.mark.skipif(not _redis_up(), reason="needs Redis on 127.0.0.1")


@pytest.fixture
def cluster(tmp_path):
    with Cluster(tmp_path) as cluster:
        yield cluster


def _same(a, b) -> None:
    assert [(e.seq, e.type, e) for e in a] == [(e.seq, e.type, e) for e in b]


@requires_services
def test_a_second_worker_streams_a_run_live_and_after_its_end(cluster):
    a, b = cluster.worker(), cluster.worker()
    on_b: list = []
    a_ended = threading.Event()
    b_started_mid_run = threading.Event()

    def read_on_b(run_id: str) -> None:
        # Started once A streamed a few tokens: B joins a run that executes on A.
        with (
            httpx.Client(timeout=30) as client,
            client.stream("GET", f"{b.url}/runs/{run_id}/stream") as response,
        ):
            assert response.status_code == 200
            from tests.cluster import sse_events

            for event in sse_events(response):
                if not on_b and not a_ended.is_set():
                    b_started_mid_run.set()
                on_b.append(event)

    with invoke_stream(a.url, PROMPT, session_id="s1") as (run_id, events):
        on_a = []
        reader = None
        for event in events:
            on_a.append(event)
            if reader is None and event.type == "llm_token":
                reader = threading.Thread(target=read_on_b, args=(run_id,))
                reader.start()
        a_ended.set()
    assert reader is not None
    reader.join(30)
    check_invariants(on_a)
    check_invariants(on_b)
    assert b_started_mid_run.is_set(), "B's stream should start before the run ended"
    _same(on_b, on_a)  # 0 lost, 0 duplicated, the same order
    # After the end, on B: a full replay, then resumes by `Last-Event-ID` and `?after=`, each
    # the same as on A (a replay's backlog joins adjacent tokens, on every worker alike).
    for options in ({}, {"headers": {"Last-Event-ID": str(on_a[len(on_a) // 2].seq)}}):
        on_a_again = read_stream(f"{a.url}/runs/{run_id}/stream", **options)
        replay = read_stream(f"{b.url}/runs/{run_id}/stream", **options)
        _same(replay, on_a_again)
        check_invariants(
            replay if not options else [*on_a[: len(on_a) // 2 + 1], *replay], contiguous=False
        )
    middle = on_a[-10].seq
    after = read_stream(f"{b.url}/runs/{run_id}/stream", after=str(middle))
    _same(after, on_a[-9:])


@requires_services
def test_run_status_on_any_worker_with_the_ownership_rule(cluster):
    keys = ("--api-key", "alice=K1", "--api-key", "bob=K2")
    a, b = cluster.worker(*keys), cluster.worker(*keys)
    alice, bob = {"Authorization": "Bearer K1"}, {"Authorization": "Bearer K2"}
    response = httpx.post(
        f"{a.url}/invoke", json={"prompt": "hi", "session_id": "s"}, headers=alice, timeout=30
    )
    assert response.status_code == 200
    run_id = response.json()["run_id"]
    status = httpx.get(f"{b.url}/runs/{run_id}", headers=alice, timeout=10)
    assert status.status_code == 200, status.text
    body = status.json()
    assert body["status"] == "finished" and body["outcome"] == "success"
    assert body["output"] == response.json()["output"]
    # Another owner's run is as unknown as a missing one, on every worker.
    foreign = httpx.get(f"{b.url}/runs/{run_id}", headers=bob, timeout=10)
    missing = httpx.get(f"{b.url}/runs/run_nope", headers=bob, timeout=10)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json()["error"]["code"] == missing.json()["error"]["code"] == "run_not_found"
    stream = httpx.get(f"{b.url}/runs/{run_id}/stream", headers=bob, timeout=10)
    assert stream.status_code == 404
    # A's replicator counted what it sent.
    metrics = httpx.get(f"{a.url}/metrics", timeout=10).text
    assert "agentcast_broker_up 1.0" in metrics
    assert "agentcast_broker_commands_total" in metrics
    # The session is in the shared store: B sees A's turn.
    session = httpx.get(f"{b.url}/sessions/s", headers=alice, timeout=10)
    assert session.status_code == 200
    assert [m["role"] for m in session.json()["messages"]][:1] == ["user"]


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentcast", "serve", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_unreachable_broker_at_start_is_one_line_and_exit_2():
    result = _serve("--store", "memory", "--broker", "redis://127.0.0.1:1/0")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("agentcast: "), result.stderr
    assert "broker" in lines[0]


def test_workers_without_a_broker_are_refused_with_the_reason():
    result = _serve("--store", "memory", "--workers", "2")
    assert result.returncode == 2
    assert "--broker" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1


@requires_services
def test_cancel_on_another_worker_stops_the_run_within_100_ms(cluster):
    a, b = cluster.worker(), cluster.worker()
    with invoke_stream(a.url, PROMPT) as (run_id, events):
        seen = until_first_token(events)
        with follow(b.url, run_id, seen[-1].seq) as on_b:
            began, wall = time.perf_counter(), time.time()
            answer = httpx.post(f"{b.url}/runs/{run_id}/cancel", timeout=10)
            assert answer.status_code == 202 and answer.json()["status"] == "cancelling"
            tail = []
            for event in on_b:
                tail.append(event)
                if event.type == "agent_end":
                    break
            latency = time.perf_counter() - began
        rest = list(events)
    assert tail[-1].outcome == "cancelled"
    check_invariants([*seen, *tail])
    _same([*seen, *tail][-len(rest) :] if rest else [], rest)
    # Stopped on A: its first closer (the LLM call cut short) is stamped by A's clock, the
    # same host's as the test's.
    closer = next(e for e in tail if getattr(e, "finish_reason", None) == "cancelled")
    stopped = closer.ts / 1000 - wall
    print(
        f"cancel on B -> closer on A {stopped * 1000:.1f} ms,"
        f" -> agent_end(cancelled) read on B {latency * 1000:.1f} ms"
    )
    assert stopped < 0.1


def _ws_events(socket, until_end: bool = True, count: int | None = None) -> list:
    from agentcast.events.codec import from_dict

    events = []
    while True:
        frame = json.loads(socket.recv(timeout=30))
        if frame.get("type") in ("run_started", "pong", "heartbeat", "cancel_status"):
            continue
        assert frame.get("type") != "ws_error", frame
        events.append(from_dict(frame))
        if (count is not None and len(events) >= count) or events[-1].type == "agent_end":
            return events


@requires_services
def test_websocket_resume_on_another_worker(cluster):
    from websockets.sync.client import connect

    a, b = cluster.worker(), cluster.worker()
    with connect(a.url.replace("http", "ws") + "/ws") as ws_a:
        ws_a.send(json.dumps({"type": "start", "prompt": PROMPT}))
        started = json.loads(ws_a.recv(timeout=30))
        assert started["type"] == "run_started"
        run_id = started["run_id"]
        head = _ws_events(ws_a, count=8)
    # The connection to A is cut; the client resumes on B.
    with connect(b.url.replace("http", "ws") + "/ws") as ws_b:
        ws_b.send(json.dumps({"type": "resume", "run_id": run_id, "after": head[-1].seq}))
        tail = _ws_events(ws_b)
    check_invariants([*head, *tail])
    with connect(a.url.replace("http", "ws") + "/ws") as ws_full:
        ws_full.send(json.dumps({"type": "resume", "run_id": run_id, "after": -1}))
        full = _ws_events(ws_full)
    _same([*head, *tail], full)  # 0 lost, 0 duplicated across the move


@requires_services
def test_two_workers_behind_one_port_share_every_run(cluster):
    import redis

    server = cluster.worker("--workers", "2")
    client = redis.Redis.from_url("redis://127.0.0.1:6379/13")
    # Both processes hold a liveness lease: two workers answer on the one port.
    deadline = time.monotonic() + 30
    while len(list(client.scan_iter(f"{cluster.tag}:worker:*"))) < 2:
        assert time.monotonic() < deadline, "the second worker did not start"
        time.sleep(0.05)  # a bounded wait on a cross-process condition
    client.close()
    for index in range(4):
        # Each request is a new connection: whichever worker gets it serves the run.
        with invoke_stream(server.url, PROMPT, session_id=f"s{index}") as (run_id, events):
            live = list(events)
        check_invariants(live)
        status = httpx.get(f"{server.url}/runs/{run_id}", timeout=10).json()
        assert status["status"] == "finished"
        replay = read_stream(f"{server.url}/runs/{run_id}/stream", headers={"Last-Event-ID": "0"})
        assert replay[-1].type == "agent_end" and replay[0].seq == 1


@requires_services
def test_a_killed_worker_s_run_is_ended_by_another_within_the_lease(cluster):
    a = cluster.worker("--lease", "1")
    b = cluster.worker("--lease", "1")
    tail: list = []
    ended_at: list[float] = []

    def read_on_b(run_id: str, after: int) -> None:
        with follow(b.url, run_id, after) as events:
            tail.extend(events)
            ended_at.append(time.perf_counter())

    head: list = []
    with invoke_stream(a.url, PROMPT, session_id="lost") as (run_id, events):
        for event in events:
            head.append(event)
            if event.type == "llm_token" and len(head) > 12:
                break
        reader = threading.Thread(target=read_on_b, args=(run_id, head[-1].seq))
        reader.start()
        killed = time.perf_counter()
        a.kill()
    reader.join(30)
    assert ended_at, "B's reader got no end"
    whole = [*head, *tail]
    check_invariants(whole)  # closers for what was open, then the terminal events
    error = next(e for e in tail if e.type == "error")
    assert error.code == "worker_lost"
    assert tail[-1].type == "agent_end" and tail[-1].outcome == "error"
    took = ended_at[0] - killed
    print(f"kill -9 -> agent_end(error) on B: {took:.2f} s (lease 1 s)")
    assert took < 3.0
    status = httpx.get(f"{b.url}/runs/{run_id}", timeout=10).json()
    assert status["status"] == "finished" and status["outcome"] == "error"
    # The lost turn is absent from the history (the worker holding it is gone).
    assert httpx.get(f"{b.url}/sessions/lost", timeout=10).status_code == 404


@requires_services
@pytest.mark.parametrize("policy", ["reject", "enqueue", "interrupt"])
def test_the_session_policy_holds_across_workers(cluster, policy):
    a = cluster.worker("--session-policy", policy)
    b = cluster.worker("--session-policy", policy)
    with invoke_stream(a.url, PROMPT, session_id="shared") as (first_id, events):
        head = until_first_token(events)
        # The second request on the same session reaches the other worker.
        second = httpx.post(
            f"{b.url}/invoke", json={"prompt": "hi", "session_id": "shared"}, timeout=60
        )
        first = [*head, *events]
    check_invariants(first)
    if policy == "reject":
        assert second.status_code == 409, second.text
        assert second.json()["error"]["code"] == "session_busy"
        assert first[-1].outcome == "success"
        return
    assert second.status_code == 200, second.text
    assert second.json()["outcome"] == "success"
    assert first[-1].outcome == ("success" if policy == "enqueue" else "cancelled")
    # The second turn started after the first was saved: both turns, in order, whole.
    messages = httpx.get(f"{b.url}/sessions/shared", timeout=10).json()["messages"]
    users = [m["content"] for m in messages if m["role"] == "user"]
    assert users == [PROMPT, "hi"]
    started = read_stream(f"{b.url}/runs/{second.json()['run_id']}/stream")[0]
    assert started.ts >= first[-1].ts


@requires_services
def test_deleting_a_session_another_worker_is_running_is_409(cluster):
    a = cluster.worker()
    b = cluster.worker()
    with invoke_stream(a.url, PROMPT, session_id="running") as (_, events):
        until_first_token(events)
        busy = httpx.delete(f"{b.url}/sessions/running", timeout=30)
        rest = list(events)
    assert busy.status_code == 409, busy.text
    assert busy.json()["error"]["code"] == "session_busy"
    assert rest[-1].type == "agent_end" and rest[-1].outcome == "success"
    assert httpx.get(f"{b.url}/sessions/running", timeout=10).status_code == 200
    assert httpx.delete(f"{b.url}/sessions/running", timeout=10).status_code == 204
    assert httpx.get(f"{a.url}/sessions/running", timeout=10).status_code == 404


@requires_services
def test_a_dead_worker_s_session_lock_expires_with_its_lease(cluster):
    a = cluster.worker("--lease", "1")
    b = cluster.worker("--lease", "1")
    with invoke_stream(a.url, PROMPT, session_id="held") as (_, events):
        next(e for e in events if e.type == "llm_token")
        busy = httpx.post(f"{b.url}/invoke", json={"prompt": "hi", "session_id": "held"})
        assert busy.status_code == 409  # A holds the session
        a.kill()
    deadline = time.monotonic() + 5
    while True:  # a bounded wait on a cross-process condition: the lease runs out
        again = httpx.post(
            f"{b.url}/invoke", json={"prompt": "hi", "session_id": "held"}, timeout=30
        )
        if again.status_code != 409 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert again.status_code == 200, again.text
    assert again.json()["outcome"] == "success"


def _wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # a bounded wait on a cross-process condition
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.02)


@requires_services
def test_the_disconnect_policy_counts_readers_on_every_worker(cluster):
    a = cluster.worker("--on-disconnect", "cancel")
    b = cluster.worker("--on-disconnect", "cancel")

    def status(run_id: str) -> dict:
        return httpx.get(f"{a.url}/runs/{run_id}", timeout=10).json()

    held: list = []

    def start_on_a() -> tuple[str, httpx.Client, httpx.Response]:
        client = httpx.Client(timeout=30)
        request = client.build_request(
            "POST", f"{a.url}/invoke", json={"prompt": PROMPT, "stream": True}
        )
        response = client.send(request, stream=True)
        events = sse_events(response)  # kept: a dropped generator closes the connection
        next(e for e in events if e.type == "llm_token")
        held.append(events)
        return response.headers["x-run-id"], client, response

    # The reader moved from A to B: A's reader leaving does not cancel the run.
    run_id, client_a, response_a = start_on_a()
    with (
        httpx.Client(timeout=30) as client_b,
        client_b.stream("GET", f"{b.url}/runs/{run_id}/stream") as response_b,
    ):
        on_b = sse_events(response_b)
        next(on_b)
        _wait_for(lambda: status(run_id)["remote_readers"] == 1)
        response_a.close()
        client_a.close()
        _wait_for(lambda: status(run_id)["readers"] == 0)
        rest = list(on_b)
    assert rest[-1].type == "agent_end" and rest[-1].outcome == "success"
    # Nobody reads it anywhere: it is cancelled.
    run_id, client_a, response_a = start_on_a()
    with (
        httpx.Client(timeout=30) as client_b,
        client_b.stream("GET", f"{b.url}/runs/{run_id}/stream") as response_b,
    ):
        on_b = sse_events(response_b)
        next(on_b)
        _wait_for(lambda: status(run_id)["remote_readers"] == 1)
        response_a.close()
        client_a.close()
    _wait_for(lambda: status(run_id)["status"] == "finished")
    assert status(run_id)["outcome"] == "cancelled"


def _own_redis(port: int) -> subprocess.Popen:
    """A private redis-server (no persistence), so that a test may kill its broker."""
    import redis

    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    _wait_for(lambda: _answers(client))
    client.close()
    return process


def _answers(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001 - not up yet
        return False


@requires_services
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_a_broker_lost_mid_run_ends_it_with_a_typed_error_and_503_until_back(cluster):
    port = free_port()
    redis_server = _own_redis(port)
    try:
        a = cluster.worker("--lease", "1", broker=f"redis://127.0.0.1:{port}/0")
        with invoke_stream(a.url, PROMPT) as (_, events):
            head = until_first_token(events)
            redis_server.kill()
            redis_server.wait()
            rest = list(events)  # the reader on the executing worker gets the typed end
        whole = [*head, *rest]
        check_invariants(whole)
        error = next(e for e in rest if e.type == "error")
        assert error.code == "broker_unavailable" and error.retryable
        assert whole[-1].type == "agent_end" and whole[-1].outcome == "error"
        refused = httpx.post(f"{a.url}/invoke", json={"prompt": "hi"}, timeout=30)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "broker_unavailable"
        assert refused.headers["retry-after"] == "1"
        redis_server = _own_redis(port)  # back: the worker serves again within its lease
        _wait_for(
            lambda: (
                httpx.post(f"{a.url}/invoke", json={"prompt": "hi"}, timeout=30).status_code == 200
            )
        )
    finally:
        redis_server.kill()
        redis_server.wait()


@requires_services
def test_a_worker_shut_down_mid_run_writes_its_own_end_to_the_stream(cluster):
    a, b = cluster.worker(), cluster.worker()
    with invoke_stream(a.url, PROMPT) as (run_id, events):
        head = until_first_token(events)
        with follow(b.url, run_id, head[-1].seq) as on_b:
            a.stop()  # SIGINT: a graceful shutdown ends every run first
            tail = list(on_b)
    check_invariants([*head, *tail])
    assert tail[-1].outcome == "cancelled"  # its own end, not a sweeper's worker_lost
    assert not any(e.type == "error" for e in tail)


def _ui_text(lines: list[str]) -> str:
    chunks = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    return "".join(c.get("delta", "") for c in chunks if c["type"] == "text-delta")


@requires_services
def test_the_vercel_resume_finds_the_chat_s_run_on_another_worker(cluster):
    a, b = cluster.worker(), cluster.worker()
    body = {
        "id": "chat1",
        "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": PROMPT}]}],
    }
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", f"{a.url}/api/chat", json=body) as response,
    ):
        lines = response.iter_lines()
        on_a = [next(lines) for _ in range(6)]
        resumed = httpx.get(f"{b.url}/api/chat/chat1/stream", timeout=30)
        on_a.extend(lines)
    assert resumed.status_code == 200, resumed.text
    on_b = resumed.text.splitlines()
    assert on_b[-2:] == ["data: [DONE]", ""] or on_b[-1] == "data: [DONE]"
    assert _ui_text(on_b) == _ui_text(on_a) != ""
    # Once the run ended, there is nothing to resume, on any worker.
    assert httpx.get(f"{b.url}/api/chat/chat1/stream", timeout=30).status_code == 204


@requires_services
def test_a_reader_that_saw_the_end_starts_the_next_turn_at_once_on_any_worker(cluster):
    a = cluster.worker("--session-policy", "reject")
    b = cluster.worker("--session-policy", "reject")
    for turn in range(3):
        with invoke_stream(a.url, "hi", session_id="next") as (_, events):
            assert list(events)[-1].type == "agent_end"
        # At once, on the other worker: the session is free once its agent_end was logged.
        again = httpx.post(f"{b.url}/invoke", json={"prompt": "hi", "session_id": "next"})
        assert again.status_code == 200, (turn, again.text)
    messages = httpx.get(f"{a.url}/sessions/next", timeout=10).json()["messages"]
    assert sum(m["role"] == "user" for m in messages) == 6


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.add(int(stat.parent.name))
    return found


@requires_services
def test_a_dead_worker_behind_the_one_port_is_replaced(cluster):
    server = cluster.worker("--workers", "2", "--lease", "1")
    _wait_for(lambda: len(_children(server.process.pid)) == 2)
    before = _children(server.process.pid)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    _wait_for(
        lambda: (
            len(_children(server.process.pid)) == 2 and victim not in _children(server.process.pid)
        )
    )
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/13")
    _wait_for(lambda: len(list(client.scan_iter(f"{cluster.tag}:worker:*"))) == 2)
    client.close()
    for _ in range(3):  # whichever process takes each connection serves it
        with invoke_stream(server.url, "hi") as (_, events):
            check_invariants(list(events))
