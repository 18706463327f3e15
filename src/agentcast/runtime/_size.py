"""About how many bytes a finished run's retained events take: what retention caps by."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from agentcast.events import LLMToken

if TYPE_CHECKING:
    from agentcast.runtime._handle import RunHandle

__all__ = ["size_of"]

_encoder = msgspec.json.Encoder(enc_hook=repr)
_TOKEN_BYTES = 200
"""About what a token's JSON takes besides its text (its envelope and call fields)."""


def size_of(run: RunHandle) -> int:
    """Return about how many bytes a finished run's retained events take, as JSON.

    Tokens (most of a run's events) are counted as their text plus a fixed envelope, the
    others encoded: encoding the whole log cost about 1 µs per token of server CPU.
    """
    size, others = 0, []
    for event in run.log.snapshot():
        if event.__class__ is LLMToken:
            size += _TOKEN_BYTES + len(event.token)  # type: ignore[attr-defined]
        else:
            others.append(event)
    return size + len(_encoder.encode(others))
