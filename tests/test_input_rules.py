"""One rule per input, the same answer on every entry point: ids, resume cursors, cancels.

Ids (`agentcast.ids`): a bad session id is a 400 `invalid_input` (a `ws_error` on the
WebSocket) and nothing runs or is saved. Resume cursors (`parse_last_event_id`): `?after=`,
`Last-Event-ID` and the WebSocket's `after` share one parser and one resume check. Readers are
counted by one context manager, so nothing that ends a reader leaks it or the streams gauge.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from agentcast import Agent, stream_agent
from agentcast.errors import InvalidInput
from agentcast.events import from_json
from agentcast.models import OfflineChatModel
from agentcast.models.demo_tools import demo_tools
from agentcast.server import create_app
from agentcast.sessions import MemoryStore
from tests.test_server import Gate, Reader, Served, client, gated_app, parse_sse

pytestmark = pytest.mark.anyio

BAD_IDS = ["漢", "team/alice", "a\x00b", "a b", "x" * 129, "-\n"]


def demo(**config):
    store = MemoryStore()
    agent = Agent(OfflineChatModel(token_delay=0), demo_tools(), store=store)
    return create_app(agent, **config), store


def streams_gauge(text: str) -> float:
    return float(re.search(r"^agentcast_active_streams (\S+)$", text, re.M).group(1))


# -- ids ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
async def test_a_bad_session_id_is_the_same_400_everywhere_and_changes_nothing(bad):
    app, store = demo()
    async with client(app) as c:
        answers = [
            await c.post("/invoke", json={"prompt": "hi", "session_id": bad}),
            await c.post("/invoke", json={"prompt": "hi", "session_id": bad, "stream": True}),
        ]
        if not bad.endswith("\n"):  # Starlette's route regex ends in `$`: it drops a final \n
            answers.append(await c.get(f"/sessions/{quote(bad, safe='')}"))
            answers.append(await c.delete(f"/sessions/{quote(bad, safe='')}"))
        for answer in answers:
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"]["code"] == "invalid_input"
            assert "session_id must be" in answer.json()["error"]["message"]
        health = (await c.get("/healthz")).json()
        metrics = (await c.get("/metrics")).text
    with TestClient(app) as tc, tc.websocket_connect("/ws") as ws:
        ws.send_json({"type": "start", "prompt": "hi", "session_id": bad})
        frame = ws.receive_json()
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}
    assert frame["type"] == "ws_error" and frame["code"] == "invalid_input"
    assert health["active_runs"] == 0 and streams_gauge(metrics) == 0
    assert app.state.agentcast.manager.get("anything") is None
    assert await store.list_sessions() == []


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
async def test_the_library_refuses_the_same_ids_before_running(bad):
    agent = Agent(OfflineChatModel(token_delay=0), store=MemoryStore())
    with pytest.raises(InvalidInput, match="session_id must be"):
        agent.start("hi", session_id=bad)
    with pytest.raises(InvalidInput, match="session_id must be"):
        await agent.ainvoke("hi", session_id=bad)
    with pytest.raises(InvalidInput, match="session_id must be"):
        async for _ in stream_agent({"prompt": "hi", "session_id": bad}, agent):
            pass
    assert await agent.store.list_sessions() == []


async def test_ids_with_a_slash_are_refused_at_creation_not_created_then_unreachable():
    app, store = demo()
    agent = Agent(OfflineChatModel(token_delay=0), store=store)
    with pytest.raises(InvalidInput):
        await agent.ainvoke("hi", session_id="team/alice")
    async with client(app) as c:
        created = await c.post("/invoke", json={"prompt": "hi", "session_id": "team/alice"})
        read = await c.get("/sessions/team/alice")
        deleted = await c.delete("/sessions/team%2Falice")
        listed = (await c.get("/sessions")).json()["sessions"]
    assert [r.status_code for r in (created, read, deleted)] == [400, 400, 400]
    assert listed == []


async def test_a_non_latin1_session_id_on_a_real_server_is_a_400_and_runs_nothing():
    app, store = demo()
    async with Served(app) as served, httpx.AsyncClient(base_url=served.url) as c:
        body = {"prompt": "What is 25 * 4?", "session_id": "漢", "stream": True}
        r = await c.post("/invoke", json=body)
        metrics = (await c.get("/metrics")).text
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_input"
    assert streams_gauge(metrics) == 0
    assert await store.list_sessions() == []


# -- the run payload -------------------------------------------------------------------------------

# Bodies the one payload rule refuses: each is an `InvalidInput` for `stream_agent` and
# `invoke_agent`, and a 422 `invalid_input` for `POST /invoke`, before anything runs.
BAD_PAYLOADS = [
    {},
    {"prompt": " \t"},
    {"prompt": 42},
    {"prompt": "x" * 200_001},
    {"prompt": "hi", "session_id": 3},
    {"prompt": "hi", "actor_id": ["a"]},
    {"prompt": "hi", "stream_tokens": "yes"},  # the server took "yes" for true before
    {"prompt": "hi", "stream_tokens": 1},
]


@pytest.mark.parametrize("payload", BAD_PAYLOADS, ids=lambda p: repr(p)[:40])
async def test_a_payload_is_refused_alike_by_the_library_and_the_server(payload):
    app, store = demo()
    async with client(app) as c:
        answer = await c.post("/invoke", json=payload)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_input"
    agent = Agent(OfflineChatModel(token_delay=0), store=store)
    with pytest.raises(InvalidInput):
        async for _ in stream_agent(payload, agent):
            pass
    assert await store.list_sessions() == []


def test_the_server_body_is_the_library_payload_rule_plus_stream():
    from agentcast.runtime._payload import RunPayload
    from agentcast.server import InvokeRequest

    assert issubclass(InvokeRequest, RunPayload)
    # The payload's fields are the body's, as declared there; the server only adds its own.
    assert {"stream"} <= set(InvokeRequest.model_fields) - set(RunPayload.model_fields)
    body = InvokeRequest.model_json_schema()["properties"]
    for name, schema in RunPayload.model_json_schema()["properties"].items():
        assert body[name] == schema, name


# -- reader accounting ----------------------------------------------------------------------------


async def test_a_response_that_fails_to_build_counts_no_reader(monkeypatch):
    import agentcast.server._stream as server_stream

    app, _ = demo()
    async with client(app) as c:
        run_id = (await c.post("/invoke", json={"prompt": "hi"})).json()["run_id"]

    def broken(*args, **kwargs):
        raise UnicodeEncodeError("latin-1", "漢", 0, 1, "ordinal not in range(256)")

    monkeypatch.setattr(server_stream, "EventStreamResponse", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        assert (await c.get(f"/runs/{run_id}/stream")).status_code == 500
        metrics = (await c.get("/metrics")).text
    assert app.state.agentcast.manager.get(run_id).readers == 0
    assert streams_gauge(metrics) == 0


async def test_readers_that_leave_or_fail_to_send_are_uncounted_on_a_real_server():
    gate = Gate(at=1)
    app = gated_app(gate, disconnect="continue")
    manager = app.state.agentcast.manager
    async with Served(app) as served, httpx.AsyncClient(base_url=served.url) as c:
        async with c.stream("POST", "/invoke", json={"prompt": "go", "stream": True}) as r:
            run_id = r.headers["x-run-id"]
            await Reader(r).until(lambda e: e.type == "llm_token")
            async with c.stream("GET", f"/runs/{run_id}/stream") as joined:
                await Reader(joined).until(lambda e: e.type == "llm_token")
                assert manager.get(run_id).readers == 2
        managed = manager.get(run_id)
        await managed.idle.wait()  # both SSE readers left
        assert managed.readers == 0
        # a WebSocket reader whose socket is gone: its next send fails
        import websockets

        async with websockets.connect(served.url.replace("http", "ws") + "/ws") as ws:
            await ws.send(json.dumps({"type": "resume", "run_id": run_id}))
            while json.loads(await ws.recv()).get("type") != "llm_token":
                pass
            assert managed.readers == 1
        await managed.idle.wait()
        gate.release.set()
        await managed.run.wait()
        metrics = (await c.get("/metrics")).text
    assert managed.readers == 0 and streams_gauge(metrics) == 0


# -- resume cursors and cancels -------------------------------------------------------------------

BAD_CURSORS = ["--5", "²", "9" * 5000, "1.0", "+1", "-2", "0x1", "1e3", "5 5", "-"]


def finished_run(tc: TestClient) -> tuple[str, int]:
    r = tc.post("/invoke", json={"prompt": "What is 25 * 4?"})
    run_id = r.json()["run_id"]
    return run_id, tc.get(f"/runs/{run_id}").json()["last_seq"]


@pytest.mark.parametrize("cursor", BAD_CURSORS, ids=lambda c: repr(c[:12]))
def test_a_bad_resume_cursor_is_the_same_400_on_every_entry_point(cursor):
    app, _ = demo()
    with TestClient(app) as tc:
        run_id, _ = finished_run(tc)
        answers = [
            tc.get(f"/runs/{run_id}/stream", params={"after": cursor}),
            tc.get(f"/runs/{run_id}/stream", headers={"Last-Event-ID": cursor.encode("latin-1")}),
        ]
        with tc.websocket_connect("/ws") as ws:
            ws.send_json({"type": "resume", "run_id": run_id, "after": cursor})
            frame = ws.receive_json()
            ws.send_json({"type": "ping"})
            assert ws.receive_json() == {"type": "pong"}  # the socket is still there
    for answer in answers:
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_input"
    assert frame == {"type": "ws_error", **answers[0].json()["error"]}


@pytest.mark.parametrize("after", [True, 1.5, [1], {"seq": 1}, -2, 10**30], ids=repr)
def test_a_websocket_cursor_that_is_not_an_integer_seq_is_a_ws_error(after):
    app, _ = demo()
    with TestClient(app) as tc, tc.websocket_connect("/ws") as ws:
        run_id, _ = finished_run(tc)
        ws.send_json({"type": "resume", "run_id": run_id, "after": after})
        assert ws.receive_json()["code"] == "invalid_input"
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}


def test_resuming_past_the_end_is_the_same_answer_on_http_and_websocket():
    app, _ = demo()
    with TestClient(app) as tc:
        run_id, last = finished_run(tc)
        http = tc.get(f"/runs/{run_id}/stream", params={"after": last + 1})
        with tc.websocket_connect("/ws") as ws:
            ws.send_json({"type": "resume", "run_id": run_id, "after": last + 1})
            frame = ws.receive_json()
    assert http.status_code == 400
    assert frame == {"type": "ws_error", **http.json()["error"]}


def test_cancelling_a_finished_run_is_the_same_answer_on_http_and_websocket():
    app, _ = demo()
    with TestClient(app) as tc:
        run_id, _ = finished_run(tc)
        http = tc.post(f"/runs/{run_id}/cancel")
        with tc.websocket_connect("/ws") as ws:
            ws.send_json({"type": "cancel", "run_id": run_id})
            frame = ws.receive_json()
    assert http.json() == {"run_id": run_id, "status": "finished"}
    assert frame == {"type": "cancel_status", **http.json()}


def test_a_100k_deep_json_array_on_the_websocket_is_a_ws_error_and_the_socket_stays():
    app, _ = demo()
    with TestClient(app) as tc, tc.websocket_connect("/ws") as ws:
        ws.send_text("[" * 100_000 + "]" * 100_000)
        assert ws.receive_json()["code"] == "invalid_input"
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}


# -- fuzz: the resume cursor ----------------------------------------------------------------------

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

cursor_text = st.one_of(
    st.text(max_size=24),
    st.from_regex(r"\A[ \t]*[-+]{0,3}[0-9]{1,25}[ \t]*\Z"),  # signs, spaces, big numbers
    st.text(alphabet=st.characters(categories=("Nd", "No")), min_size=1, max_size=6),  # ², ١
    st.integers(min_value=4000, max_value=6000).map(lambda n: "9" * n),  # past int()'s limit
    st.integers(min_value=-3, max_value=60).map(str),
)


def resumed_from(value: object) -> int:
    """The cursor an accepted value stands for (absent or blank: the start)."""
    text = "" if value is None else str(value).strip(" \t")
    return -1 if text == "" else int(text)


def check_http_answer(r: httpx.Response, value: str, last: int) -> None:
    assert r.status_code in (200, 400), (value, r.status_code, r.text)
    if r.status_code == 400:
        assert r.json()["error"]["code"] == "invalid_input"
        return
    after = resumed_from(value)
    events, _ = parse_sse(r.text)
    assert [e.seq for e in events] == list(range(after + 1, last + 1))


def test_fuzz_http_resume_cursors_are_a_tail_or_a_400_never_a_500():
    app, _ = demo()
    with TestClient(app, raise_server_exceptions=False) as tc:
        run_id, last = finished_run(tc)

        @FUZZ
        @given(value=cursor_text)
        def query(value):
            r = tc.get(f"/runs/{run_id}/stream", params={"after": value})
            check_http_answer(r, value, last)
            if value.strip(" \t") in {str(n) for n in range(-1, last + 1)}:
                assert r.status_code == 200

        @FUZZ
        @given(value=cursor_text.filter(lambda v: all(" " <= c <= "~" or c >= "\xa0" for c in v)))
        def header(value):
            try:
                raw = value.encode("latin-1")  # what a header can carry
            except UnicodeEncodeError:
                return
            r = tc.get(f"/runs/{run_id}/stream", headers={"Last-Event-ID": raw})
            check_http_answer(r, value, last)

        query()
        header()


def test_fuzz_websocket_resume_cursors_are_a_tail_or_a_ws_error_and_the_socket_stays():
    app, _ = demo()
    with TestClient(app) as tc, tc.websocket_connect("/ws") as ws:
        run_id, last = finished_run(tc)
        json_values = st.one_of(
            st.none(),
            st.booleans(),
            st.integers(min_value=-(10**30), max_value=10**30),
            st.integers(min_value=-2, max_value=60),
            st.floats(allow_nan=False),
            cursor_text,
            st.lists(st.integers(), max_size=3),
        )

        @FUZZ
        @given(value=json_values)
        def resume(value):
            ws.send_json({"type": "resume", "run_id": run_id, "after": value})
            ws.send_json({"type": "ping"})
            frames, pong = [], False
            while True:  # a refusal comes before the pong; events may come on either side
                frame = json.loads(ws.receive_text())
                if frame.get("type") == "pong":
                    pong = True
                else:
                    frames.append(frame)
                if pong and frames and frames[0]["type"] == "ws_error":
                    break
                if pong and frames and frames[-1]["type"] == "agent_end":
                    break
                if pong and not frames and not (_accepted(value) and resumed_from(value) < last):
                    break  # an empty tail (resumed at the end), or a refusal that never came
            if frames and frames[0]["type"] == "ws_error":
                assert frames == [frames[0]] and frames[0]["code"] == "invalid_input", frames
                assert not _accepted(value) or resumed_from(value) > last
            else:
                assert _accepted(value), value
                seqs = [from_json(json.dumps(f)).seq for f in frames]
                assert seqs == list(range(resumed_from(value) + 1, last + 1))

        resume()


def _accepted(value: object) -> bool:
    """What the parser documents: an integer seq >= -1 (a JSON int or a plain decimal string)."""
    if value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return False
    if isinstance(value, int):
        return -1 <= value < 10**18
    text = value.strip(" \t")
    return text == "" or re.fullmatch(r"-1|[0-9]{1,18}", text) is not None
