"""Event protocol v1: the permanent wire schema, the canonical codec, immutability, json_safe."""

from __future__ import annotations

import dataclasses
import datetime
import json
import uuid

import msgspec
import pydantic
import pytest

from agentcast.errors import InvalidInput
from agentcast.events import (
    ENVELOPE_FIELDS,
    EVENT_TYPES,
    PROTOCOL_VERSION,
    AgentEnd,
    AgentStart,
    AgentStep,
    BaseEvent,
    Custom,
    Error,
    LLMEnd,
    LLMStart,
    LLMToken,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolEnd,
    ToolStart,
    from_dict,
    from_json,
    json_safe,
    to_dict,
    to_json,
    wire_schema,
)

# -- the permanent wire names ----------------------------------------------------------------------

WIRE_SCHEMA_V1 = {
    "agent_start": ["input", "actor_id", "custom_data"],
    "llm_start": ["call_id", "parent_id", "depth", "model", "name", "tags", "node"],
    "llm_token": ["call_id", "token", "kind", "depth"],
    "tool_call_start": ["call_id", "tool_call_id", "name", "index", "executor"],
    "tool_call_delta": ["tool_call_id", "delta"],
    "tool_call_end": ["tool_call_id", "name", "args", "error", "raw", "executor"],
    "llm_end": ["call_id", "finish_reason", "usage", "ttft_ms", "duration_ms", "role"],
    "tool_start": ["tool_call_id", "name", "input", "call_id", "parent_id", "depth", "executor"],
    "tool_end": ["tool_call_id", "name", "status", "output", "error", "duration_ms", "executor"],
    "custom": ["name", "data", "tool_call_id"],
    "agent_step": ["step", "node", "type", "content"],
    "agent_end": ["outcome", "output", "steps", "metrics"],
    "error": ["error", "type", "code", "retryable", "partial"],
}


def test_wire_schema_snapshot():
    """Renaming, removing or reordering a wire field must be a deliberate, visible change."""
    assert wire_schema() == WIRE_SCHEMA_V1
    assert list(wire_schema()) == list(WIRE_SCHEMA_V1), "event type order changed"


def test_envelope_and_protocol_version_snapshot():
    assert ENVELOPE_FIELDS == ("run_id", "seq", "ts", "session_id")
    assert PROTOCOL_VERSION == 1


def test_event_types_map_wire_names_to_classes():
    assert {name: cls.__name__ for name, cls in EVENT_TYPES.items()} == {
        "agent_start": "AgentStart",
        "llm_start": "LLMStart",
        "llm_token": "LLMToken",
        "tool_call_start": "ToolCallStart",
        "tool_call_delta": "ToolCallDelta",
        "tool_call_end": "ToolCallEnd",
        "llm_end": "LLMEnd",
        "tool_start": "ToolStart",
        "tool_end": "ToolEnd",
        "custom": "Custom",
        "agent_step": "AgentStep",
        "agent_end": "AgentEnd",
        "error": "Error",
    }


# -- one fully populated instance of every event type ----------------------------------------------

NASTY = 'héllo 🐈‍⬛ 世界\nline two\r\ndata: not a frame\n\nid: 7\n"quoted" \\ back\ttab \u2028'
NESTED = {
    "list": [1, 2.5, "três", None, True, {"deep": ["🚀", {"deeper": NASTY}]}],
    "empty": {},
    "unicode 🔑": "värde",
}
ENVELOPE = {"run_id": "run-Ω-1", "seq": 42, "ts": 1_732_170_000_123, "session_id": "sess 🐙"}

SAMPLES: dict[str, BaseEvent] = {
    "agent_start": AgentStart(
        **ENVELOPE, input=NASTY, actor_id="actor-ü", custom_data={"nested": NESTED, "n": [1, 2]}
    ),
    "llm_start": LLMStart(
        **ENVELOPE,
        call_id="llm-1",
        parent_id="tool-9",
        depth=2,
        model="gpt-ö-mini",
        name="ChatOffline",
        tags=("seq:step:1", "🏷️", "data: tag"),
        node="agent\nnode",
    ),
    "llm_token": LLMToken(**ENVELOPE, call_id="llm-1", token=NASTY, kind="reasoning", depth=3),
    "tool_call_start": ToolCallStart(
        **ENVELOPE,
        call_id="llm-1",
        tool_call_id="call_ä",
        name="multiply",
        index=4,
        executor="provider",
    ),
    "tool_call_delta": ToolCallDelta(**ENVELOPE, tool_call_id="call_ä", delta='{"a": "🐈\\n'),
    "tool_call_end": ToolCallEnd(
        **ENVELOPE,
        tool_call_id="call_ä",
        name="multiply",
        args={"a": 25, "b": [4.5, {"c": NASTY}]},
        error="Expecting value: line 1",
        raw='{"a": 25, "b": [4.5, {"c": ...',
        executor="provider",
    ),
    "llm_end": LLMEnd(
        **ENVELOPE,
        call_id="llm-1",
        finish_reason="tool_calls",
        usage={"input_tokens": 11, "output_tokens": 7, "total_tokens": 18, "source": "provider"},
        ttft_ms=12.5,
        duration_ms=98.25,
        role="internal",
    ),
    "tool_start": ToolStart(
        **ENVELOPE,
        tool_call_id="call_ä",
        name="get_items",
        input={"place": "under the bed 🛏️", "opts": NESTED},
        call_id="llm-1",
        parent_id="tool-0",
        depth=1,
        executor="provider",
    ),
    "tool_end": ToolEnd(
        **ENVELOPE,
        tool_call_id="call_ä",
        name="divide",
        status="error",
        output=[NASTY, {"x": None}],
        error="cannot divide by zero\ntraceback…",
        duration_ms=3.75,
        executor="provider",
    ),
    "custom": Custom(**ENVELOPE, name="progress 📈", data=NESTED, tool_call_id="call_ä"),
    "agent_step": AgentStep(
        **ENVELOPE, step=3, node="tools", message_type="tool", content={"result": NASTY}
    ),
    "agent_end": AgentEnd(
        **ENVELOPE,
        outcome="interrupted",
        output=NASTY,
        steps=5,
        metrics={"tokens": 10, "ttft_ms": 1.5, "usage": None, "per_call": [{"id": "llm-1"}]},
    ),
    "error": Error(
        **ENVELOPE,
        error="provider said 🙅\ndata: no",
        error_type="ProviderError",
        code="rate_limited",
        retryable=True,
        partial=True,
    ),
}


def test_samples_cover_every_event_type_with_non_default_values():
    assert set(SAMPLES) == set(EVENT_TYPES)
    for name, event in SAMPLES.items():
        assert type(event) is EVENT_TYPES[name]
        info = msgspec.inspect.type_info(type(event))
        for field in info.fields:
            if field.required:
                continue
            if field.default_factory is not msgspec.NODEFAULT:
                default = field.default_factory()
            else:
                default = field.default
            assert getattr(event, field.name) != default, f"{name}.{field.name} is its default"


@pytest.mark.parametrize("name", list(SAMPLES))
def test_dict_round_trip(name):
    event = SAMPLES[name]
    encoded = to_dict(event)
    assert from_dict(encoded) == event
    # The dict is plain JSON: the stdlib can write it and reading it back changes nothing.
    assert from_dict(json.loads(json.dumps(encoded))) == event


@pytest.mark.parametrize("name", list(SAMPLES))
def test_json_round_trip(name):
    event = SAMPLES[name]
    raw = to_json(event)
    assert isinstance(raw, bytes)
    assert from_json(raw) == event
    assert from_json(raw.decode()) == event
    # to_json writes exactly what to_dict holds.
    assert json.loads(raw) == json.loads(json.dumps(to_dict(event)))


@pytest.mark.parametrize("name", list(SAMPLES))
def test_encoded_shape_is_the_envelope_with_the_payload_under_data(name):
    event = SAMPLES[name]
    encoded = to_dict(event)
    assert list(encoded) == ["v", "type", "run_id", "seq", "ts", "session_id", "data"]
    assert encoded["v"] == 1
    assert encoded["type"] == name
    assert {k: encoded[k] for k in ENVELOPE_FIELDS} == ENVELOPE
    assert list(encoded["data"]) == WIRE_SCHEMA_V1[name]


def test_encoded_llm_token_literally():
    event = LLMToken(run_id="r", seq=7, ts=1000, session_id="s", call_id="c", token="Hel")
    assert to_dict(event) == {
        "v": 1,
        "type": "llm_token",
        "run_id": "r",
        "seq": 7,
        "ts": 1000,
        "session_id": "s",
        "data": {"call_id": "c", "token": "Hel", "kind": "text", "depth": 0},
    }
    assert json.loads(to_json(event)) == to_dict(event)


def test_tags_tuple_is_a_json_list_on_the_wire():
    wire = json.loads(to_json(SAMPLES["llm_start"]))
    assert wire["data"]["tags"] == ["seq:step:1", "🏷️", "data: tag"]


def test_to_dict_equals_the_parsed_wire_json():
    event = SAMPLES["llm_start"]
    assert to_dict(event) == json.loads(to_json(event))


def test_agent_step_and_error_carry_type_inside_data():
    step = to_dict(SAMPLES["agent_step"])
    assert step["type"] == "agent_step"
    assert step["data"]["type"] == "tool"
    assert "message_type" not in step["data"]

    error = to_dict(SAMPLES["error"])
    assert error["type"] == "error"
    assert error["data"]["type"] == "ProviderError"
    assert "error_type" not in error["data"]

    decoded = from_dict({"type": "agent_step", "data": {"step": 1, "type": "human"}})
    assert isinstance(decoded, AgentStep)
    assert decoded.message_type == "human"
    decoded_error = from_dict({"type": "error", "data": {"error": "boom", "type": "KeyError"}})
    assert isinstance(decoded_error, Error)
    assert decoded_error.error_type == "KeyError"


def test_envelope_defaults_when_missing():
    event = from_dict({"type": "custom", "data": {"name": "n"}})
    assert event == Custom(name="n")
    assert (event.run_id, event.seq, event.ts, event.session_id) == ("", -1, 0, None)


# -- forward compatibility and bad input -----------------------------------------------------------


def test_unknown_payload_and_envelope_fields_are_ignored():
    encoded = to_dict(SAMPLES["tool_end"])
    encoded["data"]["added_in_v2"] = {"anything": [1, 2]}
    encoded["data"]["zzz"] = None
    encoded["trace_id"] = "abc"
    assert from_dict(encoded) == SAMPLES["tool_end"]
    raw = json.dumps(encoded).encode()
    assert from_json(raw) == SAMPLES["tool_end"]


@pytest.mark.parametrize(
    ("obj", "needle"),
    [
        ({"type": "llm_tokens", "data": {}}, "unknown event type 'llm_tokens'"),
        ({"data": {"call_id": "c", "token": "x"}}, "unknown event type None"),
        ({"type": "AgentEnd", "data": {}}, "unknown event type 'AgentEnd'"),
    ],
)
def test_unknown_event_type_is_invalid_input(obj, needle):
    with pytest.raises(InvalidInput, match="unknown event type") as info:
        from_dict(obj)
    assert needle in str(info.value)


@pytest.mark.parametrize("obj", [None, [], ["agent_end"], "agent_end", 7, 1.5, True])
def test_non_dict_is_invalid_input(obj):
    with pytest.raises(InvalidInput, match="must be a JSON object") as info:
        from_dict(obj)
    assert type(obj).__name__ in str(info.value)


def test_non_object_data_is_invalid_input():
    with pytest.raises(InvalidInput, match="'data' must be a JSON object"):
        from_dict({"type": "agent_end", "data": "success"})
    with pytest.raises(InvalidInput, match="'data' must be a JSON object"):
        from_dict({"type": "agent_end", "data": [1]})


@pytest.mark.parametrize("data", [[], 0, "", False])
def test_falsy_non_object_data_is_invalid_input(data):
    with pytest.raises(InvalidInput, match="'data' must be a JSON object"):
        from_dict({"type": "agent_end", "data": data})


@pytest.mark.parametrize("raw", ['{"type": ["llm_token"], "data": {}}', '{"type": {}}'])
def test_unhashable_event_type_is_invalid_input(raw):
    with pytest.raises(InvalidInput, match="unknown event type"):
        from_json(raw)


@pytest.mark.parametrize(
    ("obj", "needle"),
    [
        ({"type": "llm_token", "data": {"call_id": "c", "token": 5}}, "invalid llm_token event"),
        ({"type": "llm_token", "data": {"call_id": "c"}}, "token"),
        ({"type": "llm_token", "data": {"call_id": "c", "token": "t", "kind": "x"}}, "kind"),
        ({"type": "llm_token", "seq": "7", "data": {"call_id": "c", "token": "t"}}, "seq"),
        ({"type": "custom", "session_id": 5, "data": {"name": "n"}}, "session_id"),
        (
            {"type": "tool_end", "data": {"tool_call_id": "t", "name": "n", "status": "ko"}},
            "status",
        ),
        (
            {"type": "tool_call_end", "data": {"tool_call_id": "t", "name": "n", "args": [1]}},
            "args",
        ),
        ({"type": "llm_start", "data": {"call_id": "c", "tags": "not-a-list"}}, "tags"),
        ({"type": "agent_step", "data": {"step": 1, "type": "robot"}}, "type"),
        ({"type": "agent_end", "data": {"outcome": "done"}}, "outcome"),
        ({"type": "error", "data": {"error": "e", "retryable": "yes"}}, "retryable"),
        ({"type": "agent_end", "data": {"metrics": []}}, "metrics"),
    ],
)
def test_bad_field_types_are_invalid_input(obj, needle):
    with pytest.raises(InvalidInput, match=f"invalid {obj['type']} event") as info:
        from_dict(obj)
    assert needle in str(info.value)
    assert info.value.code == "invalid_input"


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff\xfe", "not json", '{"type": "custom",}'])
def test_non_json_is_invalid_input(raw):
    with pytest.raises(InvalidInput, match="an event must be JSON"):
        from_json(raw)


@pytest.mark.parametrize("raw", ["[1, 2]", "null", '"agent_end"', "3"])
def test_json_that_is_not_an_object_is_invalid_input(raw):
    with pytest.raises(InvalidInput, match="must be a JSON object"):
        from_json(raw)


# -- immutability ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SAMPLES))
def test_events_are_immutable(name):
    event = SAMPLES[name]
    with pytest.raises(AttributeError):
        event.seq = 99  # type: ignore[misc]
    with pytest.raises(AttributeError):
        event.run_id = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        event.brand_new_attribute = 1  # type: ignore[attr-defined]
    assert event.seq == 42 and event.run_id == "run-Ω-1"


def test_type_is_a_class_constant_not_a_settable_field():
    assert LLMToken(call_id="c", token="t").type == "llm_token"
    with pytest.raises(TypeError):
        LLMToken(call_id="c", token="t", type="agent_end")  # type: ignore[call-arg]


def test_events_are_keyword_only():
    with pytest.raises(TypeError):
        LLMToken("c", "t")  # type: ignore[misc]


# -- json_safe -------------------------------------------------------------------------------------


class _Model(pydantic.BaseModel):
    name: str
    when: datetime.datetime
    tags: set[str]


class _Plain:
    def __str__(self) -> str:
        return "<plain object>"


class _DumpFails:
    def model_dump(self):
        raise RuntimeError("cannot dump")

    def __str__(self) -> str:
        return "dump-fails"


@dataclasses.dataclass
class _Point:
    x: int
    labels: frozenset[str]


def _assert_json(value):
    # Strict JSON the stdlib can write, and back.
    text = json.dumps(value, allow_nan=False)
    assert json.loads(text) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("text 🐈", "text 🐈"),
        (3, 3),
        (2.5, 2.5),
        (True, True),
        ({3}, [3]),
        (frozenset({"only"}), ["only"]),
        (datetime.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05"),
        (datetime.date(2024, 1, 2), "2024-01-02"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (_Plain(), "<plain object>"),
        (_DumpFails(), "dump-fails"),
        ({1: "int key", "k": [_Plain()]}, {"1": "int key", "k": ["<plain object>"]}),
        (_Point(1, frozenset({"a"})), {"x": 1, "labels": ["a"]}),
        (
            _Model(name="n", when=datetime.datetime(2024, 5, 6), tags={"t"}),
            {"name": "n", "when": "2024-05-06T00:00:00", "tags": ["t"]},
        ),
        ({"nested": {"set": {_Plain()}}}, {"nested": {"set": ["<plain object>"]}}),
    ],
)
def test_json_safe_values(value, expected):
    result = json_safe(value)
    assert result == expected
    _assert_json(result)


def test_json_safe_set_of_many_items_keeps_all():
    result = json_safe({"s": {1, 2, 3}})
    assert sorted(result["s"]) == [1, 2, 3]
    _assert_json(result)


def test_json_safe_unencodable_structure_falls_back_to_str():
    value = {(1, 2): "tuple key"}
    assert json_safe(value) == str(value)


def test_json_safe_output_can_go_into_an_event_and_round_trip():
    value = {"when": datetime.datetime(2024, 1, 1), "obj": _Plain(), "s": {"x"}}
    event = ToolEnd(tool_call_id="t", name="n", output=json_safe(value))
    assert from_json(to_json(event)) == event


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    __repr__ = __str__


def _cyclic():
    value: list = []
    value.append(value)
    return value


@pytest.mark.parametrize("make", [_cyclic, _Unprintable], ids=["cyclic-list", "str-raises"])
def test_json_safe_never_raises_on_hostile_values(make):
    result = json_safe(make())
    _assert_json(result)


@pytest.mark.parametrize("name", list(SAMPLES))
@pytest.mark.parametrize("session_id", [None, "s", 'q"\u2028é'])
@pytest.mark.parametrize("envelope", [("", -1, 0), ('r"\\é', 12345678901, 1732170000000)])
def test_to_json_writes_the_bytes_of_to_dict_encoded(name, session_id, envelope):
    # `to_json` encodes the struct directly; its bytes are exactly those of the canonical dict.
    run_id, seq, ts = envelope
    event = msgspec.structs.replace(
        SAMPLES[name], run_id=run_id, seq=seq, ts=ts, session_id=session_id
    )
    assert to_json(event) == msgspec.json.encode(to_dict(event))


def test_to_json_of_an_event_with_only_default_payload_fields():
    event = LLMToken(call_id="c", token="")
    assert to_json(event) == msgspec.json.encode(to_dict(event))


# -- the native SSE frame (seed 002's framing) ----------------------------------------------------

# The bytes on the wire, pinned. Changed deliberately after 0.1.0: `event:` first and `data:`
# second (the lines seed 002's clients read), `data:` the event's flat data object, `id:` last;
# 0.1.0 wrote `id:`, `event:`, then `data:` with the full envelope (payload under "data").
SSE_FRAMES_V1 = {
    "llm_token": (
        b'event: llm_token\ndata: {"run_id":"run_1","seq":7,"ts":1732170000000,"session_id":"s1",'
        b'"call_id":"c1","token":"Hel\\nlo","kind":"text","depth":0}\nid: 7\n\n'
    ),
    "agent_step": (
        b'event: agent_step\ndata: {"run_id":"run_1","seq":8,"ts":1732170000000,"session_id":null,'
        b'"step":2,"node":null,"type":"ai","content":"25 * 4 = 100"}\nid: 8\n\n'
    ),
    "agent_end": (
        b'event: agent_end\ndata: {"run_id":"run_1","seq":9,"ts":1732170000000,"session_id":"s1",'
        b'"outcome":"success","output":"25 * 4 = 100","steps":2,"metrics":{"tokens":3}}\nid: 9\n\n'
    ),
}


def test_sse_frame_snapshot():
    from agentcast.encoders.sse import encode_event

    at = {"run_id": "run_1", "ts": 1_732_170_000_000}
    frames = {
        "llm_token": LLMToken(**at, seq=7, session_id="s1", call_id="c1", token="Hel\nlo"),
        "agent_step": AgentStep(**at, seq=8, step=2, content="25 * 4 = 100"),
        "agent_end": AgentEnd(
            **at, seq=9, session_id="s1", output="25 * 4 = 100", steps=2, metrics={"tokens": 3}
        ),
    }
    assert {name: encode_event(event) for name, event in frames.items()} == SSE_FRAMES_V1


def test_no_payload_field_takes_an_envelope_name():
    # What lets the SSE data object hold the envelope fields and the payload side by side.
    for name, fields in wire_schema().items():
        assert not set(fields) & set(ENVELOPE_FIELDS), name


@pytest.mark.parametrize("name", list(SAMPLES))
def test_sse_frame_is_event_then_data_then_id_and_decodes_back(name):
    from agentcast.encoders.sse import decode_event, encode_event

    event = SAMPLES[name]
    frame = encode_event(event)
    assert frame.endswith(b"\n\n") and frame.count(b"\n") == 4  # three lines, NASTY text included
    event_line, data_line, id_line = frame[:-2].decode().split("\n")
    assert event_line == f"event: {name}"
    assert id_line == f"id: {event.seq}"
    assert data_line.startswith("data: ")
    data = json.loads(data_line[len("data: ") :])
    # The event's own data object: the envelope's fields, then the payload, as `to_dict` has them.
    assert list(data) == [*ENVELOPE_FIELDS, *WIRE_SCHEMA_V1[name]]
    assert data == {**ENVELOPE, **to_dict(event)["data"]}
    assert decode_event(name, data_line[len("data: ") :]) == event
    assert decode_event(name, data_line[len("data: ") :].encode()) == event


def test_seed_002_reads_data_type_and_content_off_an_agent_step_frame():
    from agentcast.encoders.sse import encode_event

    lines = encode_event(AgentStep(step=1, message_type="ai", content="hi")).decode().split("\n")
    data = json.loads(lines[1].removeprefix("data: "))
    assert lines[0].removeprefix("event: ") == "agent_step"
    assert (data["type"], data["content"]) == ("ai", "hi")


@pytest.mark.parametrize(
    ("event_type", "raw", "fragment"),
    [
        ("llm_tokens", '{"call_id":"c","token":"x"}', "unknown event type 'llm_tokens'"),
        ("llm_token", '{"call_id":"c","token":', "must be JSON"),
        ("llm_token", '{"call_id":"c","token":5}', "invalid llm_token event"),
        ("llm_token", '["c","x"]', "invalid llm_token event"),
        ("agent_end", '{"outcome":"finished"}', "invalid agent_end event"),
    ],
)
def test_decode_event_refuses_what_is_not_that_event(event_type, raw, fragment):
    from agentcast.encoders.sse import decode_event

    with pytest.raises(InvalidInput, match=fragment):
        decode_event(event_type, raw)


def test_decode_event_ignores_fields_a_later_version_adds():
    from agentcast.encoders.sse import decode_event

    event = decode_event("llm_token", '{"seq":3,"call_id":"c","token":"x","v":2,"future":[1]}')
    assert event == LLMToken(seq=3, call_id="c", token="x")


# -- `event.data`: seed 002's Python code on agentcast's events ------------------------------------


@pytest.mark.parametrize("name", [name for name in SAMPLES if name != "custom"])
def test_data_is_the_payload_dict_of_to_dict(name):
    event = SAMPLES[name]
    assert event.data == to_dict(event)["data"]
    assert list(event.data) == WIRE_SCHEMA_V1[name]


def test_data_is_built_on_access_and_never_stored():
    event = SAMPLES["llm_token"]
    assert "data" not in {field.name for field in msgspec.structs.fields(event)}
    first = event.data
    first["token"] = "changed"
    assert event.data["token"] == NASTY and event.token == NASTY
    assert event.data is not event.data


def test_seed_002s_event_data_lookups_work():
    token = LLMToken(call_id="c", token="Hel")
    end = AgentEnd(output="Hello", metrics={"tokens": 2, "tool_calls": 0})
    assert (token.type, token.data["token"]) == ("llm_token", "Hel")
    assert end.type == "agent_end"
    assert (end.data["metrics"]["tokens"], end.data["output"]) == (2, "Hello")


def test_a_custom_events_data_is_its_own_payload_field():
    # `custom` has a payload field named `data` (what emit() was given); it keeps that name.
    event = SAMPLES["custom"]
    assert event.data == NESTED  # the field, not the payload dict
    payload = {"name": "progress 📈", "data": NESTED, "tool_call_id": "call_ä"}
    assert to_dict(event)["data"] == payload
    assert Custom(name="n", data=[1, 2]).data == [1, 2]


def test_websocket_frames_are_compact_json_with_a_type_no_event_has():
    import json

    from agentcast.encoders import ws
    from agentcast.events import EVENT_TYPES, LLMToken, from_json

    token = LLMToken(call_id="c", token="hé", seq=3, run_id="r")
    assert from_json(ws.event_frame(token)) == token
    frames = [
        ws.HEARTBEAT_FRAME,
        ws.PONG_FRAME,
        ws.run_started_frame("r", None),
        ws.cancel_status_frame("r", "cancelling"),
        ws.error_frame("invalid_input", "é"),
    ]
    assert [json.loads(f)["type"] for f in frames] == [
        "heartbeat",
        "pong",
        "run_started",
        "cancel_status",
        "ws_error",
    ]
    assert not {json.loads(f)["type"] for f in frames} & set(EVENT_TYPES)
    assert all(", " not in f and ": " not in f for f in frames[:4])
    assert json.loads(ws.run_started_frame("r", None)) == {
        "type": "run_started",
        "run_id": "r",
        "session_id": None,
    }
