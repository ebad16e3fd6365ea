"""The exception tree. Every error the library raises is an ``AiLibError``:

.. code-block:: text

    AiLibError
    ├── ProtocolError                 a manifest is invalid (every problem, located)
    ├── ConfigurationError            an argument the library cannot use: unknown provider,
    │   │                             missing API key, malformed base_url, a message whose
    │   │                             content is not text or blocks, NaN in a body...
    │   ├── TokenizerDataError        a tokenizer's vocabulary is not installed, or fails
    │   │                             its hash check (it is never downloaded)
    │   └── ModelSelectionError       no model of a catalogue fits (capabilities, or no
    │                                 price, quality score or latency to choose by)
    ├── InvalidRequestError           the request is invalid (found here or by the provider)
    │   ├── RequestTooLargeError
    │   │   └── ContextLengthExceededError
    │   └── CapabilityNotDeclaredError  the manifest declares no such capability: no I/O
    ├── TransportError                the connection failed (connect, read, write)
    ├── TimeoutError                  a deadline the library set ran out
    │   ├── ConnectTimeoutError
    │   ├── ReadTimeoutError          no bytes for longer than the HTTP read timeout
    │   ├── WriteTimeoutError
    │   ├── DeadlineExceededError     the request's total deadline ran out (not retried)
    │   ├── FirstTokenTimeoutError    no first event within the time-to-first-token limit
    │   └── IdleTimeoutError          no event for longer than the idle limit mid-stream
    ├── CircuitOpenError              the provider's circuit is open: failed fast, no I/O
    ├── MiddlewareError               a middleware raised (``middleware`` names it)
    ├── CacheError                    a response cache's backend failed (``backend`` names it)
    ├── SharedStateError              the store of shared rate limits and circuits (Redis)
    │                                 cannot be reached, at open or during a request
    ├── MalformedResponseError        the server sent bytes that are not the protocol
    ├── StructuredOutputError         the reply does not match the response format asked for
    ├── StreamNotOpenError            a stream iterated outside its block (also a RuntimeError)
    └── RemoteError                   the provider answered with an error
        ├── RemoteInvalidRequestError     (also an InvalidRequestError)
        │   └── RemoteRequestTooLargeError    (also a RequestTooLargeError)
        │       └── RemoteContextLengthExceededError  (also a ContextLengthExceededError)
        ├── AuthenticationError
        ├── PermissionDeniedError
        ├── NotFoundError
        ├── RateLimitedError
        ├── QuotaExhaustedError       (billing/quota: not retryable)
        ├── OverloadedError
        ├── ServerError
        ├── RemoteTimeoutError        (the provider said 408/504/DEADLINE_EXCEEDED)
        │   └── BatchExpiredError     a batch's completion window ran out before the item ran
        ├── ContentFilterError
        ├── BatchCancelledError       the batch was cancelled before the item ran
        └── BatchFailedError          the provider refused or failed the whole batch

Where an error was found is one axis, what is wrong another. ``except RemoteError`` catches
only what a provider said; a problem found before any I/O is never a ``RemoteError``.
``except InvalidRequestError`` (or ``ContextLengthExceededError``) catches the problem
wherever it was found: the library's own refusal (a parameter outside the manifest's
range, a capability the model lacks, something the API family cannot express, a prompt
clearly longer than the model's context window) raises the class itself, with
``status_code=None``; the provider's refusal raises its ``Remote*`` subclass. Malformed
arguments (wrong type, unknown role, no JSON) are ``ConfigurationError``s, raised where
they are passed, naming the argument.

Each error carries ``provider``, ``model``, ``status_code``, ``request_id``, ``kind`` (the
AI-Protocol standard error name), ``retryable`` and ``retry_after``; errors raised after a
stream started also carry ``response``, the partial result received before the failure.
An error raised after retries or fallbacks carries ``attempts``: every attempt's error, in
the order they happened (the raised error is the last of them). An error is built complete
where it is raised; one the sans-IO core raised without knowing where it ran (a request
the encoder refuses, bytes the decoder cannot read) is built again by the layer that knows,
with ``with_context``, rather than changed.
Cancellation is never wrapped: the backend's cancellation exception propagates untouched.
No error message or repr ever contains an API key or an Authorization header: every error
masks the secrets of the open clients (see ``_secrets``) in its message, ``args``, ``body``
and ``str``, whatever text it was built from (a server that echoes the key, a transport
library's message quoting a header).
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any, ClassVar

from ._display import error_html, error_markdown
from ._secrets import mask_json, mask_text

if TYPE_CHECKING:
    from typing_extensions import Self

    from ._types import ChatResponse, RateLimitSnapshot

__all__ = [
    "AiLibError",
    "AuthenticationError",
    "BatchCancelledError",
    "BatchExpiredError",
    "BatchFailedError",
    "CacheError",
    "CapabilityNotDeclaredError",
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
    "MiddlewareError",
    "ModelSelectionError",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "ProtocolError",
    "QuotaExhaustedError",
    "RateLimitedError",
    "ReadTimeoutError",
    "RemoteContextLengthExceededError",
    "RemoteError",
    "RemoteInvalidRequestError",
    "RemoteRequestTooLargeError",
    "RemoteTimeoutError",
    "RequestTooLargeError",
    "ServerError",
    "StreamNotOpenError",
    "StructuredOutputError",
    "TimeoutError",
    "TokenizerDataError",
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


#: the fields that say where an error happened (``AiLibError.with_context`` fills them)
CONTEXT_FIELDS = ("provider", "model", "status_code", "request_id", "rate_limits", "response")


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
        message = mask_text(message)
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
        self.body = mask_json(body)
        self.rate_limits = rate_limits
        #: Every attempt's error when retries or fallbacks ran (this one last), else ().
        self.attempts: tuple[AiLibError, ...] = ()

    def with_context(self, **context: Any) -> Self:
        """A new error like this one, with ``context`` (any of ``CONTEXT_FIELDS``:
        ``provider``, ``model``, ``status_code``, ``request_id``, ``rate_limits``,
        ``response``) filling the fields this one left unset.

        This error is not changed; the new one has its class, message, code, body,
        retryability, ``__cause__`` and traceback. The layer that knows where an error of
        the sans-IO core happened raises this instead of it.

        >>> error = MalformedResponseError("bad frame").with_context(provider="openai")
        >>> str(error), error.retryable
        ('bad frame (openai)', False)
        """
        unknown = sorted(context.keys() - set(CONTEXT_FIELDS))
        if unknown:
            raise TypeError(f"with_context() takes no {', '.join(unknown)}")
        fields = {name: getattr(self, name) for name in CONTEXT_FIELDS}
        for name, value in context.items():
            if fields[name] is None:
                fields[name] = value
        error = self._rebuild(
            retryable=self.retryable,
            retry_after=self.retry_after,
            code=self.code,
            body=self.body,
            **fields,
        )
        error.__cause__ = self.__cause__  # chained as this one was
        return error.with_traceback(self.__traceback__)

    def _rebuild(self, **kwargs: Any) -> Self:
        """A new error of this class with this message and ``kwargs`` (``AiLibError``'s
        keyword arguments); a class whose constructor takes more overrides it."""
        return type(self)(self.message, **kwargs)

    @property
    def error_code(self) -> str:
        """The AI-Protocol standard error code of this error's kind (``E2001``...)."""
        return standard_error(self.kind)[0]

    @property
    def fallbackable(self) -> bool:
        """Whether trying another provider could succeed where this one failed."""
        return standard_error(self.kind)[1]

    @property
    def request_id(self) -> str | None:
        """The provider's request id (a response header: masked like any text from it)."""
        return self._request_id

    @request_id.setter
    def request_id(self, value: str | None) -> None:
        self._request_id = mask_text(value) if isinstance(value, str) else value

    def __str__(self) -> str:
        where = "/".join(p for p in (self.provider, self.model) if p)
        parts = [self.message]
        if self.status_code is not None:
            parts.append(f"status={self.status_code}")
        if where:
            parts.append(where)
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        text = parts[0] if len(parts) == 1 else f"{parts[0]} ({', '.join(parts[1:])})"
        return mask_text(text)  # request_id comes from a response header

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}({self.message!r}, kind={self.kind!r}, status_code={self.status_code!r})"

    def _repr_html_(self) -> str:
        """A card for notebooks (``display(error)``): the message, then kind, provider and
        model, status, request id, retryability and a hint; escaped, secrets masked."""
        return error_html(self)

    def _repr_markdown_(self) -> str:
        return error_markdown(self)


class ProtocolError(AiLibError):
    """A manifest failed to load. ``issues`` lists every problem as ``file:line:col: path: msg``."""

    kind = "protocol"

    def __init__(
        self,
        issues: list[str],
        *,
        source: str | None = None,
        head: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.issues = list(issues)
        self.source = source
        if head is None:
            head = (
                f"{len(self.issues)} problem(s) in manifest {source}"
                if source
                else "invalid manifest"
            )
        self.head = head
        super().__init__(head + ":\n" + "\n".join(self.issues), **kwargs)

    def _rebuild(self, **kwargs: Any) -> Self:
        return type(self)(self.issues, source=self.source, head=self.head, **kwargs)

    def __str__(self) -> str:
        return self.message


class ConfigurationError(AiLibError, ValueError):
    """The caller passed something the library cannot use (unknown provider, no API key...)."""

    kind = "configuration"


class ModelSelectionError(ConfigurationError):
    """No model fits a selection (``ailib_anyio.routing``): none has the capabilities
    asked for, or none has the data the selector chooses by (a price, a quality score, a
    latency measurement), which is never made up. The message says which."""

    kind = "configuration"


class TokenizerDataError(ConfigurationError):
    """A tokenizer's vocabulary file cannot be used: not found in any of the places looked
    at (the message lists them), or not the file it should be (its SHA-256 differs). The
    library never downloads one: install the ``tokens`` extra or point
    ``AI_LIB_TIKTOKEN_DIR`` at the files."""

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


class MiddlewareError(AiLibError):
    """A middleware raised an exception of its own (chained as ``__cause__``), or broke the
    seam's rules (``next`` called with something else than a ``Call``, a stream replaced).
    ``middleware`` names it. Errors ``next`` raised pass through middleware unchanged."""

    def __init__(self, message: str, *, middleware: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.middleware = middleware

    def _rebuild(self, **kwargs: Any) -> Self:
        return type(self)(self.message, middleware=self.middleware, **kwargs)


class CacheError(AiLibError):
    """A response cache's backend failed: it cannot be opened (an unreachable Redis, an
    SQLite file that cannot be created) or an operation on it failed. ``backend`` names
    it (``"RedisCache"``, ``"DiskCache"``...). Never retried: the cache is not the
    provider."""

    kind = "cache"

    def __init__(self, message: str, *, backend: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.backend = backend


class SharedStateError(AiLibError):
    """The store that shares rate limits and circuit state between processes (Redis, see
    ``ailib_anyio.shared``) cannot be reached or failed: at ``open_client`` (an unreachable
    server fails there, within about its ``timeout``) or, while the client runs, before a
    request (nothing was sent). Not retried: the store is not the provider. With
    ``fallback_to_local=True`` the local limiter and breaker are used instead."""

    kind = "shared_state"


class MalformedResponseError(AiLibError):
    """The server's bytes do not follow the protocol (bad JSON, bad framing, wrong shape)."""

    kind = "malformed_response"


class StructuredOutputError(AiLibError):
    """The reply does not match the structured output asked for (``response_format``): it is
    not JSON, or it breaks the JSON schema, or it cannot be structured into the attrs class.

    ``raw_text`` is the reply's text as the model wrote it (a forced tool call's arguments,
    where the provider answers that way), ``path`` where in it the problem is (``$`` for
    the whole reply, ``$.items[2].price`` inside it) and ``problem`` what it is; the
    ``response`` is attached. Not retryable by the library: asking again may help, which
    is the caller's choice.
    """

    kind = "structured_output"

    def __init__(
        self, message: str, *, raw_text: str, path: str, problem: str, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.raw_text = mask_text(raw_text)
        self.path = path
        self.problem = mask_text(problem)


class StreamNotOpenError(AiLibError, RuntimeError):
    """A stream was iterated outside its ``async with`` block (``with`` in the sync
    facade): before entering it, which sends the request and opens the HTTP response, or
    after leaving it, which closed the response. ``stream.response`` keeps what was
    received inside the block."""

    kind = "stream_not_open"


class RemoteError(AiLibError):
    """The provider answered with an error (an HTTP error status or an error event)."""

    kind = "server_error"


class InvalidRequestError(AiLibError):
    """The request is invalid. Raised as is (``status_code=None``) when the library finds
    it before any I/O; a provider's refusal is a ``RemoteInvalidRequestError``."""

    kind = "invalid_request"


class RequestTooLargeError(InvalidRequestError):
    """The request is too large for the provider or model."""

    kind = "request_too_large"


class ContextLengthExceededError(RequestTooLargeError):
    """The prompt does not fit the model's context window. Raised as is, before any I/O,
    when the prompt is clearly longer than the window the manifest gives for the model;
    as ``RemoteContextLengthExceededError`` when the provider says so."""


class RemoteInvalidRequestError(RemoteError, InvalidRequestError):
    """The provider rejected the request as invalid (400, ``INVALID_ARGUMENT``...)."""

    kind = "invalid_request"


class RemoteRequestTooLargeError(RemoteInvalidRequestError, RequestTooLargeError):
    """The provider rejected the request as too large (413...)."""

    kind = "request_too_large"


class RemoteContextLengthExceededError(RemoteRequestTooLargeError, ContextLengthExceededError):
    """The provider said the prompt does not fit the model's context window."""

    kind = "request_too_large"


class CapabilityNotDeclaredError(InvalidRequestError):
    """An operation needs a capability the provider's manifest does not declare (raised by
    ``ProviderManifest.require_capability``, before any I/O). ``capability`` names it.

    Its ``error_code`` is ``E1005``, the code the AI-Protocol compliance suite gives a
    capability rejection (cases adv-001..004, gen-007), although the spec's table also uses
    E1005 for ``request_too_large``; ``kind`` stays ``invalid_request``.
    """

    def __init__(self, message: str, *, capability: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.capability = capability

    def _rebuild(self, **kwargs: Any) -> Self:
        return type(self)(self.message, capability=self.capability, **kwargs)

    @property
    def error_code(self) -> str:
        return "E1005"


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


class BatchExpiredError(RemoteTimeoutError):
    """A request of a provider batch did not run before the batch's completion window
    ran out (the batch expired). Retryable: submitted again, it may run
    (``BatchJob.resubmit_failed``)."""


class BatchCancelledError(RemoteError):
    """A request of a provider batch did not run because the batch was cancelled."""

    kind = "cancelled"


class BatchFailedError(RemoteError):
    """The provider failed or refused a whole batch (its input did not validate, say):
    none of its requests ran. The message is the provider's reason where it gave one."""

    kind = "batch_failed"


_BY_KIND: dict[str, type[RemoteError]] = {
    cls.kind: cls
    for cls in (
        RemoteInvalidRequestError,
        RemoteRequestTooLargeError,
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


def error_class_for_kind(kind: str, *, context_length: bool = False) -> type[RemoteError]:
    """The ``RemoteError`` subclass for an AI-Protocol error kind (``RemoteError`` if
    unknown); ``RemoteContextLengthExceededError`` when the error says the prompt is too
    long for the context window (``context_length``)."""
    if context_length:
        return RemoteContextLengthExceededError
    return _BY_KIND.get(kind, RemoteError)
