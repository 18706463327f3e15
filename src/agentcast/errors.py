"""The one exception tree of agentcast.

```
AgentcastError                  root; `code` is a stable machine-readable string
├── UserError                   the caller's mistake: fix the call or the configuration
│   ├── InvalidInput            an empty prompt, a wrong type, a malformed payload
│   │   └── ResumeGap           a reader asked for events the bounded run log no longer holds
│   ├── ConfigError             an unknown model string, a bad store URL, a bad option
│   ├── MissingDependency       an optional provider package is not installed
│   └── MissingCredentials      a provider needs an API key that is not set
├── RunError                    a run failed while it was executing
│   ├── ProviderError           the model provider failed (`retryable` says if a retry may help)
│   ├── ToolNotFound            the model asked for a tool that does not exist
│   ├── MaxStepsExceeded        the agent looped more than `max_steps` times
│   └── WorkerLost              the server process executing the run died (another ended it)
├── SessionError                the session store failed or refused
│   ├── SessionBusy             a run is already active on the session (policy `reject`)
│   ├── SessionFenced           a newer run took the session's lock: a late turn is refused
│   └── StoreUnavailable        the store cannot be reached, or did not answer in time
├── BrokerUnavailable           the broker (Redis, with `--broker`) cannot be reached
└── ClientError                 the HTTP client: talking to an agentcast server failed
    ├── ServerUnreachable       no connection to the server's URL (refused, DNS, connect timeout)
    ├── ConnectionLost          a connection broke and the run's stream could not be resumed
    ├── StreamError             not an agentcast event stream (`agentcast.client`: it is also
    │                           an `httpx_sse.SSEError`, and this module imports no third party)
    ├── ServerError             the server answered 5xx
    ├── NotFound                404: no such run or session (also a UserError)
    └── Unauthorized            401 / 403: a missing or wrong API key (also a UserError)
```

The client maps the server's statuses onto the same tree: 400 / 413 / 422 and 410 (resume
point no longer retained) are `InvalidInput`, 409 is `SessionBusy`; the server's error body
`{"error": {"code", "message"}}` gives the error its `code` and message.

External cancellation (`asyncio.CancelledError`) is never wrapped: it always propagates.
A first-party stop (`Run.cancel()`) ends the run with `agent_end(outcome="cancelled")`.
"""

from __future__ import annotations

__all__ = [
    "AgentcastError",
    "BrokerUnavailable",
    "ClientError",
    "ConfigError",
    "ConnectionLost",
    "InvalidInput",
    "MaxStepsExceeded",
    "MissingCredentials",
    "MissingDependency",
    "NotFound",
    "ProviderError",
    "ResumeGap",
    "RunError",
    "ServerError",
    "ServerUnreachable",
    "SessionBusy",
    "SessionError",
    "SessionFenced",
    "StoreUnavailable",
    "ToolNotFound",
    "Unauthorized",
    "UserError",
    "WorkerLost",
]


class AgentcastError(Exception):
    """Root of every error agentcast raises on purpose."""

    code: str = "agentcast_error"
    retryable: bool = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class UserError(AgentcastError):
    """The caller's mistake; the message says how to fix it."""

    code = "user_error"


class InvalidInput(UserError):
    """The input of a call is malformed (empty prompt, wrong type, bad payload)."""

    code = "invalid_input"


class ResumeGap(InvalidInput):
    """The reader asked for events the bounded log no longer holds."""

    code = "resume_gap"


class ConfigError(UserError):
    """The configuration is wrong (unknown model string, bad store URL, bad option)."""

    code = "config_error"


class MissingDependency(ConfigError):
    """An optional package is needed and not installed; the message names the extra."""

    code = "missing_dependency"


class MissingCredentials(ConfigError):
    """A provider needs credentials that are not configured."""

    code = "missing_credentials"


class RunError(AgentcastError):
    """A run failed while executing."""

    code = "run_error"


class ProviderError(RunError):
    """The model provider failed.

    Attributes:
        retryable: whether the same request may succeed if sent again.
        status_code: the provider's HTTP status, when it sent one.
    """

    code = "provider_error"

    def __init__(
        self, message: str, *, retryable: bool = False, status_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status_code = status_code


class ToolNotFound(RunError):
    """The model asked for a tool the agent does not have."""

    code = "tool_not_found"


class MaxStepsExceeded(RunError):
    """The agent used all its `max_steps` model turns without a final answer."""

    code = "max_steps_exceeded"


class WorkerLost(RunError):
    """The server process executing the run stopped answering; another worker ended the run.

    The run's last turn is not in the session history: the worker that held it is gone.
    """

    code = "worker_lost"
    retryable = True


class BrokerUnavailable(AgentcastError):
    """The broker that shares runs between server processes cannot be reached.

    Transient by nature: the server answers 503 until the broker is back (`retryable`).
    """

    code = "broker_unavailable"
    retryable = True


class SessionError(AgentcastError):
    """The session store failed or refused an operation."""

    code = "session_error"


class SessionBusy(SessionError):
    """A run is already active on this session and the policy is `reject`."""

    code = "session_busy"


class SessionFenced(SessionError):
    """A newer run took the session's lock: the store refused this run's late turn.

    With a broker, a worker that stalled past its lease (a long GC pause, a partition) may
    lose the session's lock to another worker's run, which then saves its turn first. The
    store keeps the highest fencing token that saved on the session and refuses an older one,
    so the stalled turn is never written after a newer one.
    """

    code = "session_fenced"


class StoreUnavailable(SessionError):
    """The session store cannot be reached, or did not answer within its time limit.

    Transient by nature: the same call may succeed once the store is back (`retryable`).
    """

    code = "store_unavailable"
    retryable = True


class ClientError(AgentcastError):
    """Talking to an agentcast server failed.

    Attributes:
        status_code: the HTTP status the server answered with, when it answered.
        url: the URL of the request that failed.
    """

    code = "client_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.status_code = status_code
        self.url = url


class ServerUnreachable(ClientError):
    """No connection could be made to the server (refused, unknown host, connect timeout)."""

    code = "server_unreachable"


class ConnectionLost(ClientError):
    """A connection broke and the run's event stream could not be resumed.

    Raised when the reconnect attempts are used up, when the server no longer knows the run,
    or when the connection of `POST /invoke` broke before the server named the run.

    Attributes:
        run_id: the run whose stream was lost (None when the server never named it).
        last_seq: the last event seq delivered before the loss (-1: none).
    """

    code = "connection_lost"

    def __init__(
        self,
        message: str,
        *,
        run_id: str | None = None,
        last_seq: int = -1,
        url: str | None = None,
    ) -> None:
        super().__init__(message, url=url)
        self.run_id = run_id
        self.last_seq = last_seq


class ServerError(ClientError):
    """The server answered with a 5xx status."""

    code = "server_error"


class NotFound(ClientError, UserError):
    """404: the server has no such run or session, or it belongs to another API key."""

    code = "not_found"


class Unauthorized(ClientError, UserError):
    """401/403: the server requires an API key (`api_key=`) and got none or a wrong one."""

    code = "unauthorized"
