"""ailib_anyio: a protocol-driven LLM client runtime for asyncio and trio.

Every provider's behaviour lives in a YAML manifest (AI-Protocol format); this package
executes manifests with generic operators. Start with :func:`open_client`::

    async with open_client("openai/gpt-4o") as client:
        reply = await client.chat().user("2+2?").execute()
"""

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from ._client._chat import ChatBuilder as ChatBuilder
from ._client._client import Client as Client
from ._client._client import open_client as open_client
from ._client._config import ClientConfig as ClientConfig
from ._client._middleware import Call as Call
from ._client._middleware import Middleware as Middleware
from ._client._middleware import add_default_middleware as _add_default_middleware
from ._client._provide import provide as _provide
from ._client._stream import ChatStream as ChatStream
from ._core._errors import AiLibError as AiLibError
from ._core._errors import AuthenticationError as AuthenticationError
from ._core._errors import CacheError as CacheError
from ._core._errors import CapabilityNotDeclaredError as CapabilityNotDeclaredError
from ._core._errors import CircuitOpenError as CircuitOpenError
from ._core._errors import ConfigurationError as ConfigurationError
from ._core._errors import ConnectTimeoutError as ConnectTimeoutError
from ._core._errors import ContentFilterError as ContentFilterError
from ._core._errors import ContextLengthExceededError as ContextLengthExceededError
from ._core._errors import DeadlineExceededError as DeadlineExceededError
from ._core._errors import FirstTokenTimeoutError as FirstTokenTimeoutError
from ._core._errors import IdleTimeoutError as IdleTimeoutError
from ._core._errors import InvalidRequestError as InvalidRequestError
from ._core._errors import MalformedResponseError as MalformedResponseError
from ._core._errors import MiddlewareError as MiddlewareError
from ._core._errors import NotFoundError as NotFoundError
from ._core._errors import OverloadedError as OverloadedError
from ._core._errors import PermissionDeniedError as PermissionDeniedError
from ._core._errors import ProtocolError as ProtocolError
from ._core._errors import QuotaExhaustedError as QuotaExhaustedError
from ._core._errors import RateLimitedError as RateLimitedError
from ._core._errors import ReadTimeoutError as ReadTimeoutError
from ._core._errors import RemoteContextLengthExceededError as RemoteContextLengthExceededError
from ._core._errors import RemoteError as RemoteError
from ._core._errors import RemoteInvalidRequestError as RemoteInvalidRequestError
from ._core._errors import RemoteRequestTooLargeError as RemoteRequestTooLargeError
from ._core._errors import RemoteTimeoutError as RemoteTimeoutError
from ._core._errors import RequestTooLargeError as RequestTooLargeError
from ._core._errors import ServerError as ServerError
from ._core._errors import SharedStateError as SharedStateError
from ._core._errors import StreamNotOpenError as StreamNotOpenError
from ._core._errors import StructuredOutputError as StructuredOutputError
from ._core._errors import TimeoutError as TimeoutError
from ._core._errors import TokenizerDataError as TokenizerDataError
from ._core._errors import TransportError as TransportError
from ._core._errors import WriteTimeoutError as WriteTimeoutError
from ._core._publish import publish as _publish
from ._core._types import ChatRequest as ChatRequest
from ._core._types import ChatResponse as ChatResponse
from ._core._types import ContentBlock as ContentBlock
from ._core._types import ContentDelta as ContentDelta
from ._core._types import Finished as Finished
from ._core._types import FinishReason as FinishReason
from ._core._types import Message as Message
from ._core._types import MessageRole as MessageRole
from ._core._types import RateLimitSnapshot as RateLimitSnapshot
from ._core._types import ReasoningDelta as ReasoningDelta
from ._core._types import RefusalDelta as RefusalDelta
from ._core._types import StreamingEvent as StreamingEvent
from ._core._types import ToolCall as ToolCall
from ._core._types import ToolCallCompleted as ToolCallCompleted
from ._core._types import ToolCallDelta as ToolCallDelta
from ._core._types import ToolCallStarted as ToolCallStarted
from ._core._types import ToolDefinition as ToolDefinition
from ._core._types import Usage as Usage
from ._resilience._run import Deadlines as Deadlines
from ._resilience._run import HedgeConfig as HedgeConfig
from ._services._telemetry._install import telemetry_middleware as _telemetry_middleware
from ._version import __version__ as __version__

# Every client traces and measures its calls when opentelemetry-api is installed, as
# natively instrumented libraries do (the services layer registers; the client never
# imports it). Nothing is imported from opentelemetry here.
_add_default_middleware(_telemetry_middleware)


async def _count_tokens(client: Client, request: _Any, **options: _Any) -> _Any:
    from ._services._tokens import count_tokens  # loaded with the first count

    return await count_tokens(client, request, **options)


def _health(client: Client) -> _Any:
    from ._services._health import health_of  # loaded with the first report

    return health_of(client)


_provide("count_tokens", _count_tokens)
_provide("health", _health)

if _TYPE_CHECKING:
    from ._client._batch import BatchCollector as BatchCollector
    from ._client._batch import BatchExecutor as BatchExecutor
    from ._client._batch import BatchResult as BatchResult
    from ._client._builder import ClientBuilder as ClientBuilder
    from ._client._cancel import CancelHandle as CancelHandle
    from ._client._cancel import CancellableStream as CancellableStream
    from ._client._cancel import CancelReason as CancelReason
    from ._client._cancel import CancelToken as CancelToken
    from ._client._cancel import create_cancel_pair as create_cancel_pair
    from ._client._preflight import PreflightChecker as PreflightChecker
    from ._client._preflight import PreflightIssue as PreflightIssue
    from ._client._replay import ReplayStream as ReplayStream
    from ._client._replay import StreamWatcher as StreamWatcher
    from ._core._breaker import CircuitBreakerConfig as CircuitBreakerConfig
    from ._core._breaker import CircuitSnapshot as CircuitSnapshot
    from ._core._breaker import CircuitState as CircuitState
    from ._core._bucket import RateLimiterConfig as RateLimiterConfig
    from ._core._cost import CostEstimate as CostEstimate
    from ._core._cost import ModelPricing as ModelPricing
    from ._core._retry import RetryConfig as RetryConfig
    from ._core._retry import RetryDecision as RetryDecision
    from ._core._retry import RetryPolicy as RetryPolicy
    from ._core._texttools import TextToolParse as TextToolParse
    from ._core._texttools import parse_text_tool_calls as parse_text_tool_calls
    from ._core._texttools import text_tool_prompt as text_tool_prompt
    from ._protocol._credentials import CredentialResolution as CredentialResolution
    from ._protocol._credentials import resolve_credential as resolve_credential
    from ._protocol._loader import load_manifest as load_manifest
    from ._protocol._models import ProviderManifest as ProviderManifest
    from ._protocol._registry import ProtocolRegistry as ProtocolRegistry
    from ._resilience._ratelimiter import RateLimiterStats as RateLimiterStats
    from ._resilience._signals import SignalsSnapshot as SignalsSnapshot
    from ._services._embeddings import EmbeddingClient as EmbeddingClient
    from ._services._embeddings import EmbeddingResponse as EmbeddingResponse
    from ._services._pricing import estimate_cost as estimate_cost
    from ._services._pricing import get_model_pricing as get_model_pricing
    from ._services._tokens import TokenCount as TokenCount
    from ._services._tokens import TokenCounter as TokenCounter
    from ._services._tokens import count_tokens as count_tokens
    from ._transport._pool import ConnectionPool as ConnectionPool
    from ._transport._pool import OriginStats as OriginStats
    from ._transport._pool import PoolConfig as PoolConfig
    from ._transport._pool import PoolStats as PoolStats

#: Names loaded on first use: import stays fast. Most are not needed to open a client;
#: the manifest machinery (models, loader, registry, credentials) is, and the first client
#: made loads it (with the transport and httpx).
_LAZY = {
    "ReplayStream": "._client._replay",
    "StreamWatcher": "._client._replay",
    "CredentialResolution": "._protocol._credentials",
    "resolve_credential": "._protocol._credentials",
    "load_manifest": "._protocol._loader",
    "ProviderManifest": "._protocol._models",
    "ProtocolRegistry": "._protocol._registry",
    "PreflightIssue": "._client._preflight",
    "PreflightChecker": "._client._preflight",
    "CancelHandle": "._client._cancel",
    "CancellableStream": "._client._cancel",
    "CancelReason": "._client._cancel",
    "CancelToken": "._client._cancel",
    "create_cancel_pair": "._client._cancel",
    "CircuitBreakerConfig": "._core._breaker",
    "CircuitSnapshot": "._core._breaker",
    "CircuitState": "._core._breaker",
    "RateLimiterConfig": "._core._bucket",
    "RateLimiterStats": "._resilience._ratelimiter",
    "SignalsSnapshot": "._resilience._signals",
    "ClientBuilder": "._client._builder",
    "BatchCollector": "._client._batch",
    "BatchExecutor": "._client._batch",
    "BatchResult": "._client._batch",
    "RetryConfig": "._core._retry",
    "RetryDecision": "._core._retry",
    "RetryPolicy": "._core._retry",
    "TextToolParse": "._core._texttools",
    "parse_text_tool_calls": "._core._texttools",
    "text_tool_prompt": "._core._texttools",
    "EmbeddingClient": "._services._embeddings",
    "EmbeddingResponse": "._services._embeddings",
    "CostEstimate": "._core._cost",
    "ModelPricing": "._core._cost",
    "estimate_cost": "._services._pricing",
    "get_model_pricing": "._services._pricing",
    "TokenCount": "._services._tokens",
    "TokenCounter": "._services._tokens",
    "count_tokens": "._services._tokens",
    "ConnectionPool": "._transport._pool",
    "OriginStats": "._transport._pool",
    "PoolConfig": "._transport._pool",
    "PoolStats": "._transport._pool",
}

__all__ = [
    "AiLibError",
    "AuthenticationError",
    "BatchCollector",
    "BatchExecutor",
    "BatchResult",
    "CacheError",
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
    "ConnectionPool",
    "ContentBlock",
    "ContentDelta",
    "ContentFilterError",
    "ContextLengthExceededError",
    "CostEstimate",
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
    "ModelPricing",
    "NotFoundError",
    "OriginStats",
    "OverloadedError",
    "PermissionDeniedError",
    "PoolConfig",
    "PoolStats",
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
    "ReplayStream",
    "RequestTooLargeError",
    "RetryConfig",
    "RetryDecision",
    "RetryPolicy",
    "ServerError",
    "SharedStateError",
    "SignalsSnapshot",
    "StreamNotOpenError",
    "StreamWatcher",
    "StreamingEvent",
    "StructuredOutputError",
    "TextToolParse",
    "TimeoutError",
    "TokenCount",
    "TokenCounter",
    "TokenizerDataError",
    "ToolCall",
    "ToolCallCompleted",
    "ToolCallDelta",
    "ToolCallStarted",
    "ToolDefinition",
    "TransportError",
    "Usage",
    "WriteTimeoutError",
    "count_tokens",
    "create_cancel_pair",
    "estimate_cost",
    "get_model_pricing",
    "load_manifest",
    "open_client",
    "parse_text_tool_calls",
    "resolve_credential",
    "text_tool_prompt",
]


_publish(__name__, globals(), [name for name in __all__ if name not in _LAZY])


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(module, __name__), name)
    _publish(__name__, {name: value}, [name])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
