"""The canonical JSON form of events: the only authority on the wire shape.

An encoded event is an envelope with the payload under `data`:

    {"v": 1, "type": "llm_token", "run_id": "...", "seq": 7, "ts": 1732170000000,
     "session_id": "...", "data": {"call_id": "...", "token": "Hel", "kind": "text", "depth": 0}}

The payload is nested rather than flattened because two payloads have a field called `type`
(`agent_step.type`, `error.type`) that would collide with the event's own `type`.
`from_dict(to_dict(e)) == e` for every event; unknown payload fields are ignored, so a consumer
keeps working when a later protocol version adds optional fields.

The flat form is the event's own fields in one object, the envelope's first, without `v` or
`type`: `{"run_id": "...", "seq": 7, "ts": ..., "session_id": "...", "call_id": "...",
"token": "Hel", ...}`. It is what an SSE message's `data:` line carries (seed 002's clients
read `data.type === "ai"` on `agent_step` and `data.output` on `agent_end`), its `event:` line
naming the type; none of the payload field names is an envelope name (`wire_schema()`), so
nothing collides. `from_flat_json(e.type, to_flat_json(e)) == e` for every event.
"""

from __future__ import annotations

from typing import Any

import msgspec

from agentcast.errors import InvalidInput
from agentcast.events._types import (
    ENVELOPE_FIELDS,
    EVENT_TYPES,
    PROTOCOL_VERSION,
    BaseEvent,
    payload_dict,
)

__all__ = [
    "from_dict",
    "from_flat_json",
    "from_json",
    "json_safe",
    "to_dict",
    "to_flat_json",
    "to_json",
    "wire_schema",
]

_encoder = msgspec.json.Encoder()


def to_dict(event: BaseEvent) -> dict[str, Any]:
    """Return the canonical, JSON-safe dict of an event."""
    envelope: dict[str, Any] = {"v": PROTOCOL_VERSION, "type": event.type}
    for name in ENVELOPE_FIELDS:
        envelope[name] = getattr(event, name)
    envelope["data"] = payload_dict(event)
    return envelope


def to_json(event: BaseEvent) -> bytes:
    """Return the canonical JSON of an event, as UTF-8 bytes: the bytes of `to_dict`'s JSON.

    Encoded straight from the struct, without building `to_dict`'s dicts (this runs per
    token per reader). The struct encodes flat with the envelope's fields first, in
    `ENVELOPE_FIELDS` order, `{"run_id":R,"seq":S,"ts":T,"session_id":X,<payload>}`; the
    envelope's length is known from its own values, so the payload is cut out and nested
    under `data` as is.
    """
    flat = _encode(event)
    run_id, seq, ts, session_id = event.run_id, event.seq, event.ts, event.session_id
    cut = (
        _ENVELOPE_KEYS_LEN
        + len(_encode(run_id))
        + len(str(seq))
        + len(str(ts))
        + (4 if session_id is None else len(_encode(session_id)))
    )
    payload = flat[cut + 1 : -1]  # after the comma that ends the envelope, before the "}"
    return b'{"v":%d,"type":"%s",%s,"data":{%s}}' % (
        PROTOCOL_VERSION,
        event.type.encode(),
        flat[1:cut],
        payload,
    )


_encode = _encoder.encode
# `{` + `"run_id":` + `,"seq":` + `,"ts":` + `,"session_id":`
_ENVELOPE_KEYS_LEN = 1 + len('"run_id":,"seq":,"ts":,"session_id":')


def to_flat_json(event: BaseEvent) -> bytes:
    """Return the flat JSON of an event (see the module's docstring), as UTF-8 bytes.

    `{"run_id":R,"seq":S,"ts":T,"session_id":X,<payload>}`: the struct as msgspec encodes it,
    one call and no copy, which is also the cheapest form to write per token.
    """
    return _encode(event)


def from_flat_json(event_type: str, raw: bytes | str) -> BaseEvent:
    """Decode an event of type `event_type` from its flat JSON (an SSE message's `data:`).

    Raises:
        InvalidInput: the type is unknown, the text is not JSON, or its fields are invalid.
    """
    decoder = _FLAT_DECODERS.get(event_type)
    if decoder is None:
        raise InvalidInput(f"unknown event type {event_type!r}")
    try:
        event: BaseEvent = decoder.decode(raw)
    except msgspec.ValidationError as exc:  # a DecodeError too: caught first
        raise InvalidInput(f"invalid {event_type} event: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"an event must be JSON: {exc}") from None
    return event


_FLAT_DECODERS: dict[str, msgspec.json.Decoder[BaseEvent]] = {
    name: msgspec.json.Decoder(cls) for name, cls in EVENT_TYPES.items()
}


def from_dict(obj: dict[str, Any]) -> BaseEvent:
    """Build an event from its canonical dict.

    Raises:
        InvalidInput: the dict is not an event of a known type, or its fields are invalid.
    """
    if not isinstance(obj, dict):
        raise InvalidInput(f"an event must be a JSON object, got {type(obj).__name__}")
    kind = obj.get("type")
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InvalidInput(f"unknown event type {kind!r}")
    data = obj.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidInput("an event's 'data' must be a JSON object")
    fields = dict(data)
    for name in ENVELOPE_FIELDS:
        if name in obj:
            fields[name] = obj[name]
    try:
        return msgspec.convert(fields, type=cls)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"invalid {cls.type} event: {exc}") from None


def from_json(raw: bytes | str) -> BaseEvent:
    """Decode an event from its canonical JSON.

    Raises:
        InvalidInput: the text is not JSON or not an event.
    """
    try:
        obj = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"an event must be JSON: {exc}") from None
    return from_dict(obj)


_PLAIN = frozenset({str, int, float, bool})


def json_safe(value: Any) -> Any:
    """Return `value` as JSON-safe builtins; anything unknown becomes its `str()`.

    Tool inputs and outputs are arbitrary Python objects; events must only carry data every
    transport can encode, so this is applied once where such values enter an event.
    """
    if value is None or value.__class__ in _PLAIN:
        return value
    if isinstance(value, str):
        # A str subclass (LangChain's `.text` accessor) is not encodable by msgspec as it is.
        return str.__str__(value)
    try:
        return msgspec.to_builtins(value, enc_hook=_fallback, str_keys=True)
    except (TypeError, ValueError, RecursionError, msgspec.EncodeError):
        return _text(value)
    except Exception:  # noqa: BLE001 - a hostile __str__/model_dump must not break a run
        return f"<unserializable {type(value).__name__}>"


def _fallback(value: Any) -> Any:
    for attr in ("model_dump", "dict"):
        method = getattr(value, attr, None)
        if callable(method):
            try:
                return method()
            except Exception:  # noqa: BLE001 - any failure falls back to str()
                break
    return _text(value)


def _text(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # noqa: BLE001
        return f"<unserializable {type(value).__name__}>"


def wire_schema() -> dict[str, list[str]]:
    """Return every event type with the wire names of its payload fields, in order.

    A test snapshots this so a wire name can never change by accident.
    """
    schema: dict[str, list[str]] = {}
    for name, cls in EVENT_TYPES.items():
        info = msgspec.inspect.type_info(cls)
        assert isinstance(info, msgspec.inspect.StructType)
        schema[name] = [f.encode_name for f in info.fields if f.name not in ENVELOPE_FIELDS]
    return schema
