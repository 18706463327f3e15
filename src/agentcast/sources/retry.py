"""Which provider failures may be retried, and how long to wait.

A retry is only ever attempted before the first token of a model call: after output has
streamed, a retry would show the user duplicated text, so the run ends with
`error(partial=true)` instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentcast._backoff import backoff_delay
from agentcast.errors import AgentcastError, ProviderError

__all__ = ["RetryPolicy", "classify_provider_error"]

_RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
# Exception class names (any class in the MRO) that mean "try again": rate limits, overload,
# timeouts, and connections that broke (httpx, urllib3/botocore, builtins).
_RETRYABLE_NAMES = (
    "RateLimit",
    "Timeout",
    "APIConnection",
    "ConnectError",
    "ConnectionError",
    "InternalServer",
    "Overloaded",
    "ServiceUnavailable",
    "Throttling",
    "RemoteProtocolError",
    "ProtocolError",
    "IncompleteRead",
    "ReadError",
)
# Error codes/types providers put in the body or in an in-stream error event.
_RETRYABLE_CODES = (
    "throttl",
    "overloaded",
    "rate_limit",
    "ratelimit",
    "serviceunavailable",
    "internalserver",
    "api_error",
    "modelnotready",
    "modelstreamerror",
)


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of a model call that failed before its first token.

    Attributes:
        retries: how many times to retry (0 disables retries).
        base_delay: seconds before the first retry; doubled each time, with jitter.
        max_delay: the longest wait between retries.
    """

    retries: int = 2
    base_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        return backoff_delay(attempt, base=self.base_delay, cap=self.max_delay, jitter=True)


def classify_provider_error(exc: BaseException) -> AgentcastError:
    """Return the agentcast error for an exception raised by a model call.

    Reads what each SDK exposes: `status_code` (openai, anthropic, httpx), botocore's
    `response` dict (`ResponseMetadata.HTTPStatusCode`, `Error.Code`, also for errors that
    arrive inside a ConverseStream), Anthropic's in-stream error `body`, and class names.
    """
    if isinstance(exc, AgentcastError):
        return exc
    status, code = _status_and_code(exc)
    retryable = (
        (status is not None and status in _RETRYABLE_STATUS)
        or (code is not None and any(c in code.lower().replace(" ", "") for c in _RETRYABLE_CODES))
        or any(name in cls.__name__ for cls in type(exc).__mro__ for name in _RETRYABLE_NAMES)
    )
    message = str(exc) or type(exc).__name__
    return ProviderError(
        f"the model provider failed: {message}", retryable=retryable, status_code=status
    )


def _status_and_code(exc: BaseException) -> tuple[int | None, str | None]:
    status = getattr(exc, "status_code", None)
    code: str | None = None
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore ClientError / EventStreamError
        meta = response.get("ResponseMetadata") or {}
        status = meta.get("HTTPStatusCode", status)
        code = (response.get("Error") or {}).get("Code")
    elif response is not None and not isinstance(status, int):
        status = getattr(response, "status_code", None)
    body = getattr(exc, "body", None)
    if isinstance(body, dict):  # anthropic: {"type": "error", "error": {"type": "..."}}
        inner = body.get("error")
        kind = inner.get("type") if isinstance(inner, dict) else body.get("type")
        if isinstance(kind, str):
            code = code or kind
    # An in-stream error arrives on a 200 response: its status says nothing.
    if status == 200:
        status = None
    return (status if isinstance(status, int) else None), code
