"""ailib_anyio: a protocol-driven LLM client runtime for asyncio and trio.

Every provider's behaviour lives in a YAML manifest (AI-Protocol format); this package
executes manifests with generic operators. Start with :func:`open_client`::

    async with open_client("openai/gpt-4o") as client:
        reply = await client.chat().user("2+2?").execute()
"""

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

import attrs as _attrs

from ._client import ChatBuilder as ChatBuilder
from ._client import ChatStream as ChatStream
from ._client import Client as Client
from ._client import open_client as open_client
from ._config import ClientConfig as ClientConfig
from ._credentials import CredentialResolution as CredentialResolution
from ._credentials import resolve_credential as resolve_credential
from ._errors import AiLibError as AiLibError
from ._errors import AuthenticationError as AuthenticationError
from ._errors import CapabilityNotDeclaredError as CapabilityNotDeclaredError
from ._errors import CircuitOpenError as CircuitOpenError
from ._errors import ConfigurationError as ConfigurationError
from ._errors import ConnectTimeoutError as ConnectTimeoutError
from ._errors import ContentFilterError as ContentFilterError
from ._errors import ContextLengthExceededError as ContextLengthExceededError
from ._errors import DeadlineExceededError as DeadlineExceededError
from ._errors import FirstTokenTimeoutError as FirstTokenTimeoutError
from ._errors import IdleTimeoutError as IdleTimeoutError
from ._errors import InvalidRequestError as InvalidRequestError
from ._errors import MalformedResponseError as MalformedResponseError
from ._errors import MiddlewareError as MiddlewareError
from ._errors import NotFoundError as NotFoundError
from ._errors import OverloadedError as OverloadedError
from ._errors import PermissionDeniedError as PermissionDeniedError
from ._errors import ProtocolError as ProtocolError
from ._errors import QuotaExhaustedError as QuotaExhaustedError
from ._errors import RateLimitedError as RateLimitedError
from ._errors import ReadTimeoutError as ReadTimeoutError
from ._errors import RemoteContextLengthExceededError as RemoteContextLengthExceededError
from ._errors import RemoteError as RemoteError
from ._errors import RemoteInvalidRequestError as RemoteInvalidRequestError
from ._errors import RemoteRequestTooLargeError as RemoteRequestTooLargeError
from ._errors import RemoteTimeoutError as RemoteTimeoutError
from ._errors import RequestTooLargeError as RequestTooLargeError
from ._errors import ServerError as ServerError
from ._errors import TimeoutError as TimeoutError
from ._errors import TransportError as TransportError
from ._errors import WriteTimeoutError as WriteTimeoutError
from ._middleware import Call as Call
from ._middleware import Middleware as Middleware
from ._protocol._loader import load_manifest as load_manifest
from ._protocol._models import ProviderManifest as ProviderManifest
from ._protocol._registry import ProtocolRegistry as ProtocolRegistry
from ._resilience import Deadlines as Deadlines
from ._resilience import HedgeConfig as HedgeConfig
from ._types import ChatRequest as ChatRequest
from ._types import ChatResponse as ChatResponse
from ._types import ContentBlock as ContentBlock
from ._types import ContentDelta as ContentDelta
from ._types import Finished as Finished
from ._types import FinishReason as FinishReason
from ._types import Message as Message
from ._types import MessageRole as MessageRole
from ._types import RateLimitSnapshot as RateLimitSnapshot
from ._types import ReasoningDelta as ReasoningDelta
from ._types import RefusalDelta as RefusalDelta
from ._types import StreamingEvent as StreamingEvent
from ._types import ToolCall as ToolCall
from ._types import ToolCallCompleted as ToolCallCompleted
from ._types import ToolCallDelta as ToolCallDelta
from ._types import ToolCallStarted as ToolCallStarted
from ._types import ToolDefinition as ToolDefinition
from ._types import Usage as Usage
from ._version import __version__ as __version__

if _TYPE_CHECKING:
    from ._batch import BatchCollector as BatchCollector
    from ._batch import BatchExecutor as BatchExecutor
    from ._batch import BatchResult as BatchResult
    from ._builder import ClientBuilder as ClientBuilder
    from ._cancel import CancelHandle as CancelHandle
    from ._cancel import CancellableStream as CancellableStream
    from ._cancel import CancelReason as CancelReason
    from ._cancel import CancelToken as CancelToken
    from ._cancel import create_cancel_pair as create_cancel_pair
    from ._core._breaker import CircuitBreakerConfig as CircuitBreakerConfig
    from ._core._breaker import CircuitSnapshot as CircuitSnapshot
    from ._core._breaker import CircuitState as CircuitState
    from ._core._bucket import RateLimiterConfig as RateLimiterConfig
    from ._core._retry import RetryConfig as RetryConfig
    from ._core._retry import RetryDecision as RetryDecision
    from ._core._retry import RetryPolicy as RetryPolicy
    from ._core._texttools import TextToolParse as TextToolParse
    from ._core._texttools import parse_text_tool_calls as parse_text_tool_calls
    from ._core._texttools import text_tool_prompt as text_tool_prompt
    from ._embeddings import EmbeddingClient as EmbeddingClient
    from ._embeddings import EmbeddingResponse as EmbeddingResponse
    from ._preflight import PreflightChecker as PreflightChecker
    from ._preflight import PreflightIssue as PreflightIssue
    from ._ratelimiter import RateLimiterStats as RateLimiterStats
    from ._signals import SignalsSnapshot as SignalsSnapshot

#: names loaded on first use (they are not needed to open a client): import stays fast
_LAZY = {
    "PreflightIssue": "._preflight",
    "PreflightChecker": "._preflight",
    "CancelHandle": "._cancel",
    "CancellableStream": "._cancel",
    "CancelReason": "._cancel",
    "CancelToken": "._cancel",
    "create_cancel_pair": "._cancel",
    "CircuitBreakerConfig": "._core._breaker",
    "CircuitSnapshot": "._core._breaker",
    "CircuitState": "._core._breaker",
    "RateLimiterConfig": "._core._bucket",
    "RateLimiterStats": "._ratelimiter",
    "SignalsSnapshot": "._signals",
    "ClientBuilder": "._builder",
    "BatchCollector": "._batch",
    "BatchExecutor": "._batch",
    "BatchResult": "._batch",
    "RetryConfig": "._core._retry",
    "RetryDecision": "._core._retry",
    "RetryPolicy": "._core._retry",
    "TextToolParse": "._core._texttools",
    "parse_text_tool_calls": "._core._texttools",
    "text_tool_prompt": "._core._texttools",
    "EmbeddingClient": "._embeddings",
    "EmbeddingResponse": "._embeddings",
}

__all__ = [
    "AiLibError",
    "AuthenticationError",
    "BatchCollector",
    "BatchExecutor",
    "BatchResult",
    "Call",
    "CancelHandle",
    "CancelReason",
    "CancelToken",
    "CancellableStream",
    "CapabilityNotDeclaredError",
    "ChatBuilder",
    "ChatRequest",
    "ChatResponse",
    "ChatStream",
    "CircuitBreakerConfig",
    "CircuitOpenError",
    "CircuitSnapshot",
    "CircuitState",
    "Client",
    "ClientBuilder",
    "ClientConfig",
    "ConfigurationError",
    "ConnectTimeoutError",
    "ContentBlock",
    "ContentDelta",
    "ContentFilterError",
    "ContextLengthExceededError",
    "CredentialResolution",
    "DeadlineExceededError",
    "Deadlines",
    "EmbeddingClient",
    "EmbeddingResponse",
    "FinishReason",
    "Finished",
    "FirstTokenTimeoutError",
    "HedgeConfig",
    "IdleTimeoutError",
    "InvalidRequestError",
    "MalformedResponseError",
    "Message",
    "MessageRole",
    "Middleware",
    "MiddlewareError",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "PreflightChecker",
    "PreflightIssue",
    "ProtocolError",
    "ProtocolRegistry",
    "ProviderManifest",
    "QuotaExhaustedError",
    "RateLimitSnapshot",
    "RateLimitedError",
    "RateLimiterConfig",
    "RateLimiterStats",
    "ReadTimeoutError",
    "ReasoningDelta",
    "RefusalDelta",
    "RemoteContextLengthExceededError",
    "RemoteError",
    "RemoteInvalidRequestError",
    "RemoteRequestTooLargeError",
    "RemoteTimeoutError",
    "RequestTooLargeError",
    "RetryConfig",
    "RetryDecision",
    "RetryPolicy",
    "ServerError",
    "SignalsSnapshot",
    "StreamingEvent",
    "TextToolParse",
    "TimeoutError",
    "ToolCall",
    "ToolCallCompleted",
    "ToolCallDelta",
    "ToolCallStarted",
    "ToolDefinition",
    "TransportError",
    "Usage",
    "WriteTimeoutError",
    "create_cancel_pair",
    "load_manifest",
    "open_client",
    "parse_text_tool_calls",
    "resolve_credential",
    "text_tool_prompt",
]


def _publish(obj: _Any) -> None:
    """Tracebacks and reprs say ailib_anyio.RateLimitedError, not ailib_anyio._errors....
    attrs classes get their string annotations resolved first, in their own module."""
    if getattr(obj, "__module__", "").startswith("ailib_anyio._"):
        if _attrs.has(obj):
            _attrs.resolve_types(obj)
        try:
            obj.__module__ = __name__
        except (AttributeError, TypeError):
            pass


for _name in __all__:
    if _name not in _LAZY:
        _publish(globals()[_name])
del _name


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(module, __name__), name)
    _publish(value)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
