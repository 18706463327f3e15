"""The body of `POST /invoke` (and of a WebSocket `start` message), as a pydantic model."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentcast.ids import ID_ALPHABET
from agentcast.runtime import TokenBuffer

__all__ = ["InvokeRequest", "StreamOptions"]

_ID_PATTERN = "^[A-Za-z0-9_.:@-]{1,128}$"


# A character that is not whitespace to `str.strip()` (every `str.isspace()` character,
# spelled out so that the schema's regex means the same in every engine).
_NOT_BLANK = (
    r"[^\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
)


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


class InvokeRequest(BaseModel):
    """The body of `POST /invoke` (and of a WebSocket `start` message)."""

    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(
        description="The user's message (not blank).",
        min_length=1,
        max_length=200_000,
        pattern=_NOT_BLANK,
    )
    # The id rule is applied by `check_id` (a 400 like every other bad id), not by pydantic
    # (a 422): the pattern is only documented here.
    session_id: str | None = Field(
        default=None,
        description=f"Conversation id (new if absent): 1-128 of {ID_ALPHABET}.",
        json_schema_extra={"pattern": _ID_PATTERN},
    )
    actor_id: str | None = Field(
        default=None,
        description=f"Who asks (ignored with API keys): 1-128 of {ID_ALPHABET}.",
        json_schema_extra={"pattern": _ID_PATTERN},
    )
    stream: bool = Field(default=False, description="true: SSE events; false: one JSON result.")
    stream_tokens: bool = Field(default=True, description="false leaves out llm_token events.")
    stream_options: StreamOptions | None = Field(
        default=None,
        description="Token buffering: {buffer_size, max_delay}, e.g. 10 tokens or 0.02 s.",
    )
    custom_data: Any = Field(default=None, description="Opaque data attached to the run.")

    @field_validator("prompt", mode="before")
    @classmethod
    def _not_blank(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("the prompt is empty")
        return value
