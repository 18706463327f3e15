"""The payload of a run request: one rule for `stream_agent`/`invoke_agent` and `POST /invoke`.

`RunPayload` is the rule: the fields a request carries, their types and defaults, and what makes
one invalid (a missing or blank prompt, a boolean that is not `true` or `false`, an id that is
not a string). The server's request model is this class plus `stream`
(`agentcast.server.InvokeRequest`), so its OpenAPI schema and its 422 messages come from here;
the library reports the same failures as `InvalidInput`, in its own words (`parse_payload`).
An id's characters are checked by the one id rule (`agentcast.ids.check_id`) when the run
starts, which the server answers with a 400 like every other bad id.

It lives in the runtime, below both the agents layer (the payload entry points) and the server
(which never imports the agents layer).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator

from agentcast.errors import InvalidInput
from agentcast.ids import ID_ALPHABET, ID_PATTERN, check_id

__all__ = ["PROMPT_MAX_CHARS", "RunPayload", "check_prompt", "parse_payload"]

PROMPT_MAX_CHARS = 200_000
"""The longest prompt a payload may carry."""

# A character that is not whitespace to `str.strip()` (every `str.isspace()` character,
# spelled out so that the schema's regex means the same in every engine).
_NOT_BLANK = (
    r"[^\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
)


def check_prompt(prompt: Any) -> str:
    """Return `prompt` if it is a non-blank string (the rule for every way a run starts).

    Raises:
        InvalidInput: it is not a string, or it is blank.
    """
    if not isinstance(prompt, str):
        raise InvalidInput(f"the prompt must be a string, got {type(prompt).__name__}")
    if not prompt.strip():
        raise InvalidInput("the prompt is empty")
    return prompt


class RunPayload(BaseModel):
    """The fields of a run request; unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(
        description="The user's message (not blank).",
        min_length=1,
        max_length=PROMPT_MAX_CHARS,
        pattern=_NOT_BLANK,
    )
    # The id rule is applied by `check_id` when the run starts (for the server, a 400 like
    # every other bad id, not a 422): the pattern is only documented here.
    session_id: str | None = Field(
        default=None,
        description=f"Conversation id (new if absent): 1-128 of {ID_ALPHABET}.",
        json_schema_extra={"pattern": ID_PATTERN},
    )
    actor_id: str | None = Field(
        default=None,
        description=f"Who asks (ignored with API keys): 1-128 of {ID_ALPHABET}.",
        json_schema_extra={"pattern": ID_PATTERN},
    )
    stream_tokens: StrictBool = Field(
        default=True, description="false leaves out llm_token events."
    )
    custom_data: Any = Field(default=None, description="Opaque data attached to the run.")

    @field_validator("prompt", mode="before")
    @classmethod
    def _not_blank(cls, value: Any) -> Any:
        # Strings only: any other type gets pydantic's own message (a type error).
        if isinstance(value, str):
            try:
                check_prompt(value)
            except InvalidInput as exc:
                raise ValueError(exc.message) from None
        return value


def parse_payload(payload: Any) -> RunPayload:
    """Validate a payload (a mapping such as a request's JSON body) against `RunPayload`.

    Raises:
        InvalidInput: the payload breaks the rule; the message names the first problem.
    """
    if not isinstance(payload, Mapping):
        raise InvalidInput(f"the payload must be a mapping, got {type(payload).__name__}")
    try:
        return RunPayload.model_validate(payload)
    except ValidationError as exc:
        raise InvalidInput(_problem(exc, payload)) from None


def _problem(exc: ValidationError, payload: Mapping[str, Any]) -> str:
    """The library's wording of the first error pydantic found."""
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else ""
    kind = error["type"]
    value = payload.get(field)
    if field == "prompt":
        if kind == "missing":
            return "the payload has no 'prompt'"
        if kind == "string_type":
            return f"the prompt must be a string, got {type(value).__name__}"
        if kind == "string_too_long":
            return f"the prompt is longer than {PROMPT_MAX_CHARS} characters"
        return "the prompt is empty"
    if field in ("session_id", "actor_id"):
        try:
            check_id(value, field)  # the id rule's own message
        except InvalidInput as bad_id:
            return bad_id.message
    if field == "stream_tokens":
        return "'stream_tokens' must be true or false"
    return f"{field or 'payload'}: {error['msg']}"
