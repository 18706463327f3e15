"""The one error shape of the HTTP API: `{"error": {"code": ..., "message": ...}}`.

Every non-2xx answer uses it, whoever produces it: agentcast's own errors, request validation,
Starlette's routing (404, 405), FastAPI's body parsing (invalid UTF-8, JSON nested too deep)
and the request limits. The same models are declared in the OpenAPI schema, per route.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from agentcast.errors import (
    AgentcastError,
    BrokerUnavailable,
    SessionBusy,
    StoreUnavailable,
    UserError,
)
from agentcast.runtime import ResumeGap

__all__ = ["ErrorBody", "error_response", "error_responses", "install_error_handlers"]

# The code of a framework error, by status (agentcast's own errors carry their own code).
_CODES = {
    400: "invalid_input",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "session_busy",
    410: "resume_gap",
    413: "body_too_large",
    422: "invalid_input",
    503: "store_unavailable",
}
_DESCRIPTIONS = {
    400: "Bad input (invalid JSON, a bad cursor, the server is shutting down).",
    401: "Authentication is on and no valid bearer key was sent.",
    404: "No such run or session (or it belongs to another actor), or no session store.",
    408: "The request body did not arrive in time.",
    409: "A run is already active on the session (policy `reject`).",
    410: "The events after the cursor are no longer retained.",
    413: "The request body is too large.",
    422: "The request does not match its schema.",
    503: "The session store cannot be reached or does not answer; retry later.",
}


class ErrorDetail(BaseModel):
    """What went wrong."""

    code: str = Field(description="Stable, machine-readable, e.g. `session_busy`.")
    message: str = Field(description="For people: what happened and how to fix it.")


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Return the OpenAPI `responses` declaring `statuses` with the error model."""
    return {
        status: {"model": ErrorBody, "description": _DESCRIPTIONS[status]} for status in statuses
    }


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """Return a JSON error response in the documented shape."""
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def status_of(exc: AgentcastError) -> int:
    """Return the HTTP status an agentcast error is answered with."""
    if isinstance(exc, SessionBusy):
        return 409
    if isinstance(exc, ResumeGap):
        return 410
    if isinstance(exc, (StoreUnavailable, BrokerUnavailable)):
        return 503
    if isinstance(exc, UserError):
        return 400
    return 500


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error, agentcast's or the framework's, in the documented shape."""

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}"
            for e in exc.errors()
        ]
        return error_response(422, "invalid_input", "; ".join(problems) or "invalid request")

    @app.exception_handler(AgentcastError)
    async def agentcast_error(request: Request, exc: AgentcastError) -> JSONResponse:
        status = status_of(exc)
        if isinstance(exc, StoreUnavailable):
            health = getattr(getattr(request.app.state, "agentcast", None), "health", None)
            if health is not None:
                health.saw_failure()
            return error_response(status, exc.code, exc.message, {"Retry-After": "1"})
        if isinstance(exc, BrokerUnavailable):
            return error_response(status, exc.code, exc.message, {"Retry-After": "1"})
        return error_response(status, exc.code, exc.message)

    # Starlette's class, not FastAPI's subclass: routing's 404/405 and FastAPI's body parsing
    # raise the base class, and would otherwise answer `{"detail": ...}`.
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.detail, dict):
            detail = exc.detail
        elif exc.status_code == 400 and exc.__cause__ is not None:
            # FastAPI could not decode the body: not UTF-8, or nested too deep to parse.
            detail = {
                "code": "invalid_json",
                "message": "the body is not valid JSON (it must be UTF-8, and not nested"
                f" too deeply): {type(exc.__cause__).__name__}",
            }
        else:
            code = _CODES.get(exc.status_code, "error")
            detail = {"code": code, "message": str(exc.detail)}
        return JSONResponse({"error": detail}, status_code=exc.status_code, headers=exc.headers)
