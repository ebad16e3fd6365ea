"""The exception tree. Every error the library raises is an ``AiLibError``::

    AiLibError
    ├── ProtocolError                 a manifest is invalid (every problem, located)
    ├── ConfigurationError            bad arguments: unknown provider, missing API key, ...
    ├── TransportError                the connection failed (connect, read, write)
    ├── TimeoutError                  a deadline the library set ran out
    │   ├── ConnectTimeoutError
    │   ├── ReadTimeoutError          no bytes for longer than the HTTP read timeout
    │   ├── WriteTimeoutError
    │   ├── DeadlineExceededError     the request's total deadline ran out (not retried)
    │   ├── FirstTokenTimeoutError    no first event within the time-to-first-token limit
    │   └── IdleTimeoutError          no event for longer than the idle limit mid-stream
    ├── CircuitOpenError              the provider's circuit is open: failed fast, no I/O
    ├── MalformedResponseError        the server sent bytes that are not the protocol
    └── RemoteError                   the provider answered with an error
        ├── InvalidRequestError
        │   └── RequestTooLargeError
        │       └── ContextLengthExceededError
        ├── AuthenticationError
        ├── PermissionDeniedError
        ├── NotFoundError
        ├── RateLimitedError
        ├── QuotaExhaustedError       (billing/quota: not retryable)
        ├── OverloadedError
        ├── ServerError
        ├── RemoteTimeoutError        (the provider said 408/504/DEADLINE_EXCEEDED)
        └── ContentFilterError

Each error carries ``provider``, ``model``, ``status_code``, ``request_id``, ``kind`` (the
AI-Protocol standard error name), ``retryable`` and ``retry_after``; errors raised after a
stream started also carry ``response``, the partial result received before the failure.
An error raised after retries or fallbacks carries ``attempts``: every attempt's error, in
the order they happened (the raised error is the last of them).
Cancellation is never wrapped: the backend's cancellation exception propagates untouched.
No error message or repr ever contains an API key or an Authorization header.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ._types import ChatResponse, RateLimitSnapshot

__all__ = [
    "AiLibError",
    "AuthenticationError",
    "CircuitOpenError",
    "ConfigurationError",
    "ConnectTimeoutError",
    "ContentFilterError",
    "ContextLengthExceededError",
    "DeadlineExceededError",
    "FirstTokenTimeoutError",
    "IdleTimeoutError",
    "InvalidRequestError",
    "MalformedResponseError",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "ProtocolError",
    "QuotaExhaustedError",
    "RateLimitedError",
    "ReadTimeoutError",
    "RemoteError",
    "RemoteTimeoutError",
    "RequestTooLargeError",
    "ServerError",
    "TimeoutError",
    "TransportError",
    "WriteTimeoutError",
    "error_class_for_kind",
]

#: kinds whose failures are worth retrying (AI-Protocol standard error names).
RETRYABLE_KINDS = frozenset({"rate_limited", "overloaded", "server_error", "timeout"})

#: AI-Protocol standard errors: kind -> (code, fallbackable). A fallbackable error may succeed
#: with another provider (a bad key there, capacity elsewhere); a non-fallbackable one would
#: fail the same way anywhere (an invalid request, a prompt that is too long).
STANDARD_ERRORS: dict[str, tuple[str, bool]] = {
    "invalid_request": ("E1001", False),
    "authentication": ("E1002", True),
    "permission_denied": ("E1003", False),
    "not_found": ("E1004", False),
    "request_too_large": ("E1005", False),
    "rate_limited": ("E2001", True),
    "quota_exhausted": ("E2002", True),
    "server_error": ("E3001", True),
    "overloaded": ("E3002", True),
    "timeout": ("E3003", True),
    "conflict": ("E4001", False),
    "cancelled": ("E4002", False),
    "unknown": ("E9999", False),
}


def standard_error(kind: str) -> tuple[str, bool]:
    """(AI-Protocol error code, fallbackable) of a kind; unknown kinds are E9999."""
    return STANDARD_ERRORS.get(kind, STANDARD_ERRORS["unknown"])


class AiLibError(Exception):
    """Base class of every error raised by ailib_anyio."""

    kind: ClassVar[str] = "unknown"
    default_retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        code: str | None = None,
        response: ChatResponse | None = None,
        body: Any = None,
        rate_limits: RateLimitSnapshot | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.model = model
        self.status_code = status_code
        self.request_id = request_id
        self.retryable = self.default_retryable if retryable is None else retryable
        self.retry_after = retry_after
        self.code = code
        self.response = response
        self.body = body
        self.rate_limits = rate_limits
        #: Every attempt's error when retries or fallbacks ran (this one last), else ().
        self.attempts: tuple[AiLibError, ...] = ()

    @property
    def error_code(self) -> str:
        """The AI-Protocol standard error code of this error's kind (``E2001``...)."""
        return standard_error(self.kind)[0]

    @property
    def fallbackable(self) -> bool:
        """Whether trying another provider could succeed where this one failed."""
        return standard_error(self.kind)[1]

    def __str__(self) -> str:
        where = "/".join(p for p in (self.provider, self.model) if p)
        parts = [self.message]
        if self.status_code is not None:
            parts.append(f"status={self.status_code}")
        if where:
            parts.append(where)
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return parts[0] if len(parts) == 1 else f"{parts[0]} ({', '.join(parts[1:])})"

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}({self.message!r}, kind={self.kind!r}, status_code={self.status_code!r})"


class ProtocolError(AiLibError):
    """A manifest failed to load. ``issues`` lists every problem as ``file:line:col: path: msg``."""

    kind = "protocol"

    def __init__(
        self, issues: list[str], *, source: str | None = None, head: str | None = None
    ) -> None:
        self.issues = list(issues)
        self.source = source
        if head is None:
            head = (
                f"{len(self.issues)} problem(s) in manifest {source}"
                if source
                else "invalid manifest"
            )
        super().__init__(head + ":\n" + "\n".join(self.issues))

    def __str__(self) -> str:
        return self.message


class ConfigurationError(AiLibError, ValueError):
    """The caller passed something the library cannot use (unknown provider, no API key...)."""

    kind = "configuration"


class TransportError(AiLibError):
    """The HTTP connection failed: could not connect, or it broke while reading or writing."""

    kind = "transport"
    default_retryable = True

    @property
    def fallbackable(self) -> bool:
        return True  # another provider is another network path


class TimeoutError(AiLibError, builtins.TimeoutError):
    """A deadline set by the library (or its configuration) ran out."""

    kind = "timeout"
    default_retryable = True


class ConnectTimeoutError(TimeoutError):
    """Connecting to the provider took longer than the connect timeout."""


class ReadTimeoutError(TimeoutError):
    """The provider sent nothing for longer than the read (idle) timeout."""


class WriteTimeoutError(TimeoutError):
    """Sending the request took longer than the write timeout."""


class DeadlineExceededError(TimeoutError):
    """The request's total deadline ran out (attempts, backoff and waits included).

    Not retryable: the time budget is spent."""

    default_retryable = False


class FirstTokenTimeoutError(TimeoutError):
    """No first event arrived within the time-to-first-token limit."""


class IdleTimeoutError(TimeoutError):
    """A stream went quiet for longer than the idle limit between events."""


class CircuitOpenError(AiLibError):
    """The circuit breaker of this provider endpoint is open: the request failed fast,
    without any I/O. ``retry_after`` is the time left in the cooldown (0 when half-open
    probes are already in flight). Another provider may still work (``fallbackable``)."""

    kind = "circuit_open"

    @property
    def fallbackable(self) -> bool:
        return True


class MalformedResponseError(AiLibError):
    """The server's bytes do not follow the protocol (bad JSON, bad framing, wrong shape)."""

    kind = "malformed_response"


class RemoteError(AiLibError):
    """The provider answered with an error (an HTTP error status or an error event)."""

    kind = "server_error"


class InvalidRequestError(RemoteError):
    kind = "invalid_request"


class RequestTooLargeError(InvalidRequestError):
    kind = "request_too_large"


class ContextLengthExceededError(RequestTooLargeError):
    """The prompt does not fit the model's context window."""


class AuthenticationError(RemoteError):
    kind = "authentication"


class PermissionDeniedError(RemoteError):
    kind = "permission_denied"


class NotFoundError(RemoteError):
    kind = "not_found"


class RateLimitedError(RemoteError):
    kind = "rate_limited"
    default_retryable = True


class QuotaExhaustedError(RemoteError):
    """The account is out of quota or credit; waiting will not help."""

    kind = "quota_exhausted"


class OverloadedError(RemoteError):
    kind = "overloaded"
    default_retryable = True


class ServerError(RemoteError):
    kind = "server_error"
    default_retryable = True


class RemoteTimeoutError(RemoteError):
    """The provider itself reported a timeout (408, 504, DEADLINE_EXCEEDED)."""

    kind = "timeout"
    default_retryable = True


class ContentFilterError(RemoteError):
    kind = "content_filter"


_BY_KIND: dict[str, type[RemoteError]] = {
    cls.kind: cls
    for cls in (
        InvalidRequestError,
        RequestTooLargeError,
        AuthenticationError,
        PermissionDeniedError,
        NotFoundError,
        RateLimitedError,
        QuotaExhaustedError,
        OverloadedError,
        ServerError,
        RemoteTimeoutError,
        ContentFilterError,
    )
}

#: the AI-Protocol standard error names this library knows.
STANDARD_KINDS = frozenset(_BY_KIND)


def error_class_for_kind(kind: str) -> type[RemoteError]:
    """The ``RemoteError`` subclass for an AI-Protocol error kind (``ServerError`` if unknown)."""
    return _BY_KIND.get(kind, RemoteError)
