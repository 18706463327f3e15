"""Fuzzing: the HTTP API against its own OpenAPI schema, WebSocket control messages, SSE framing.

All of it bounded and deterministic: a fixed number of examples, derandomized generation.
"""

from __future__ import annotations

import httpx
import httpx_sse
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)
from starlette.testclient import TestClient

from agentcast import Agent
from agentcast.encoders.sse import PING, decode_event, encode_comment, encode_event
from agentcast.events import EVENT_TYPES, Custom, LLMToken
from agentcast.models import OfflineChatModel
from agentcast.models.demo_tools import demo_tools
from agentcast.server import create_app
from agentcast.sessions import MemoryStore

# One app for the whole module: the schema is loaded from it at import. A memory store keeps the
# fuzzer's sessions away from any file; `enqueue` and the others are exercised elsewhere.
APP = create_app(
    Agent(OfflineChatModel(token_delay=0), demo_tools(), store=MemoryStore()), tune_gc=False
)
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP)
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
BOUNDED = settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@SCHEMA.parametrize()
@BOUNDED
def test_the_api_conforms_to_its_openapi_schema(case):
    case.call_and_validate(checks=CHECKS)


# -- WebSocket control messages -------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
control_messages = st.one_of(
    json_values,  # anything at all
    st.fixed_dictionaries(
        {"type": st.sampled_from(["start", "resume", "cancel", "ping", "dance", ""])},
        optional={
            "prompt": st.one_of(st.text(max_size=30), json_values),
            "session_id": st.one_of(st.none(), st.text(max_size=10), json_values),
            "run_id": st.one_of(st.none(), st.text(max_size=10), json_values),
            "after": st.one_of(st.integers(-3, 5), st.text(max_size=5), json_values),
            "stream_tokens": json_values,
            "custom_data": json_values,
        },
    ),
)


@given(messages=st.lists(control_messages, min_size=1, max_size=4))
@BOUNDED
def test_websocket_control_messages_never_break_the_connection(messages):
    import json

    with TestClient(APP) as client, client.websocket_connect("/ws") as ws:
        for message in messages:
            ws.send_text(json.dumps(message))
            ws.send_json({"type": "ping"})
            while True:  # every frame up to the pong is well formed
                frame = ws.receive_json()
                assert isinstance(frame, dict) and isinstance(frame.get("type"), str), frame
                if frame["type"] == "ws_error":
                    assert isinstance(frame["code"], str) and isinstance(frame["message"], str)
                    assert frame["code"] != "internal_error"
                if frame["type"] == "pong":
                    break


# -- SSE framing ----------------------------------------------------------------------------

# Pieces that trip SSE parsers (line ends of every kind, field names, a lone colon), mixed with
# any character at all; joined into multi-line texts.
texts = st.lists(
    st.sampled_from(["a", "é", "😀", "\n", "\r", "\r\n", "\n\n", " ", ":", "data: x", "\u2028"])
    # Lone surrogates are left out: they are not text, and no JSON encoder can write them.
    | st.characters(exclude_categories=["Cs"]),
    min_size=1,
    max_size=12,
).map("".join)
events_strategy = st.lists(
    st.one_of(
        texts.map(lambda t: ("token", t)),
        st.tuples(st.just("custom"), texts, st.dictionaries(texts, texts, max_size=2)),
        texts.map(lambda t: ("comment", t)),
    ),
    min_size=1,
    max_size=12,
)


def build(items):
    events, wire = [], []
    for seq, item in enumerate(items):
        if item[0] == "comment":
            wire.append(encode_comment(item[1]) if seq % 2 else PING)
            continue
        envelope = {"run_id": "r", "seq": len(events), "ts": 1, "session_id": "s"}
        if item[0] == "token":
            event = LLMToken(token=item[1], call_id="c1", **envelope)
        else:
            event = Custom(name=item[1], data=item[2], **envelope)
        events.append(event)
        wire.append(encode_event(event))
    return events, b"".join(wire)


@given(items=events_strategy, cuts=st.lists(st.integers(min_value=0), max_size=20))
@BOUNDED
def test_sse_framing_decodes_to_the_same_events_under_any_chunk_split(items, cuts):
    events, wire = build(items)
    points = sorted({cut % (len(wire) + 1) for cut in cuts})
    chunks = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    response = httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=iter(chunks)
    )
    # httpx-sse (what agentcast's client reads with) dispatches a blank "message" after a
    # comment; the client skips those as it does any type it does not know.
    decoded = [
        sse for sse in httpx_sse.EventSource(response).iter_sse() if sse.event in EVENT_TYPES
    ]
    assert [decode_event(sse.event, sse.data) for sse in decoded] == events
    assert [(int(sse.id), sse.event) for sse in decoded] == [(e.seq, e.type) for e in events]
