"""The body of `POST /invoke` (and of a WebSocket `start` message), as a pydantic model."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentcast.ids import ID_ALPHABET

__all__ = ["InvokeRequest"]

_ID_PATTERN = "^[A-Za-z0-9_.:@-]{1,128}$"


# A character that is not whitespace to `str.strip()` (every `str.isspace()` character,
# spelled out so that the schema's regex means the same in every engine).
_NOT_BLANK = (
    r"[^\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
)


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
    custom_data: Any = Field(default=None, description="Opaque data attached to the run.")

    @field_validator("prompt", mode="before")
    @classmethod
    def _not_blank(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("the prompt is empty")
        return value
