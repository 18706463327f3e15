"""The body of `POST /invoke` (and of a WebSocket `start` message).

The run fields, their schema and their 422 messages are the run payload's (`RunPayload`, the
one rule the library's `stream_agent`/`invoke_agent` apply too); `stream` and `stream_options`
(how the server delivers the events) are the server's own.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from agentcast.runtime import TokenBuffer
from agentcast.runtime._payload import RunPayload

__all__ = ["InvokeRequest", "StreamOptions"]


class StreamOptions(BaseModel):
    """Edge token buffering for one stream (`agentcast.TokenBuffer`): fewer, larger tokens."""

    model_config = ConfigDict(extra="forbid")  # a misspelt option is an error, not a no-op

    buffer_size: int = Field(
        default=1, ge=1, le=10_000, description="Tokens per llm_token event at most (1: as made)."
    )
    max_delay: float | None = Field(
        default=None,
        gt=0,
        le=60,
        description="Seconds a buffered token may wait before it is sent (none: no time bound).",
    )

    def buffer(self) -> TokenBuffer | None:
        """The stream's buffer, or None when these options buffer nothing."""
        if self.buffer_size == 1:
            return None
        return TokenBuffer(buffer_size=self.buffer_size, max_delay=self.max_delay)


class InvokeRequest(RunPayload):
    """The body of `POST /invoke` (and of a WebSocket `start` message)."""

    stream: StrictBool = Field(
        default=False, description="true: SSE events; false: one JSON result."
    )
    stream_options: StreamOptions | None = Field(
        default=None,
        description="Token buffering: {buffer_size, max_delay}, e.g. 10 tokens or 0.02 s.",
    )
