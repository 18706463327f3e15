"""The protocol encoder base: hooks per event type, one start, exactly one close."""

from __future__ import annotations

from collections.abc import Iterable

from agentcast.encoders import ProtocolEncoder
from agentcast.events import AgentEnd, AgentStart, LLMStart, LLMToken


class _Names(ProtocolEncoder[str]):
    def before_stream(self) -> Iterable[str]:
        return ["begin"]

    def on_llm_token(self, event: LLMToken) -> Iterable[str]:
        return [event.token]

    def after_stream(self) -> Iterable[str]:
        return ["end"]


def test_hooks_are_called_in_order_between_start_and_close() -> None:
    events = [
        AgentStart(input="hi", seq=0),
        LLMStart(call_id="c", seq=1),
        LLMToken(call_id="c", token="He", seq=2),
        LLMToken(call_id="c", token="llo", seq=3),
        AgentEnd(outcome="success", seq=4),
    ]
    assert list(_Names().encode_all(events)) == ["begin", "He", "llo", "end"]


def test_close_runs_once_even_when_the_stream_was_cut_short() -> None:
    encoder = _Names()
    assert encoder.encode(LLMToken(call_id="c", token="x")) == ["begin", "x"]
    assert encoder.close() == ["end"]
    assert encoder.close() == []
    assert encoder.encode(LLMToken(call_id="c", token="late")) == []
    assert encoder.closed


def test_an_empty_stream_still_opens_and_closes() -> None:
    encoder = _Names()
    assert encoder.close() == ["begin", "end"]
