"""``ClientConfig``: every setting of a client, in one frozen attrs class.

The list of settings is written here and nowhere else: ``open_client(model, **settings)``,
``ClientBuilder`` (an ``attrs.evolve`` per method), ``ailib_anyio.sync.open_client`` and a
``"provider/model"`` fallback (the parent's config, narrowed by :meth:`ClientConfig.for_fallback`)
all build one. Each setting is checked once, by its attrs validator, when the config is
made; a bad value is a ``ConfigurationError`` naming the setting: ``"<setting> must be ...,
got <value!r>"``. What depends on the environment or the manifest (``AI_LIB_MAX_INFLIGHT``,
``AI_HTTP_TIMEOUT_SECS``, ``<PROVIDER>_BASE_URL``, the API key's credential chain) is read
when a client is made from the config (``default_max_inflight`` reads the first), not when
the config is made.
"""

from __future__ import annotations

import inspect
import math
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from .._core._checks import flag
from .._core._errors import ConfigurationError
from .._core._wire import DEFAULT_MAX_RESPONSE_BYTES, check_headers
from .._protocol._validate import check_base_url
from .._resilience._run import Deadlines, HedgeConfig
from ._middleware import Middleware, MiddlewareChain, ResponseCache

if TYPE_CHECKING:
    from typing import Concatenate, ParamSpec

    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from .._core._breaker import CircuitBreakerConfig
    from .._core._bucket import RateLimiterConfig
    from .._core._retry import RetryConfig
    from .._resilience._shared import SharedState
    from .._transport._http import HttpClient, TimeoutSetting
    from .._transport._pool import ConnectionPool
    from ._client import Client

    _P = ParamSpec("_P")

__all__ = ["ClientConfig", "config_from", "default_max_inflight", "takes_settings"]

_R = TypeVar("_R")

_Path = str | os.PathLike[str]

#: what a ``"provider/model"`` fallback takes from the client it serves; the rest (its key,
#: base_url, headers...) are its own provider's defaults.
FALLBACK_INHERITS = (
    "protocol_path",
    "timeout",
    "http_client",
    "pool",
    "retry",
    "max_retries",
    "circuit_breaker",
    "max_response_bytes",
    "shared_state",
)


# ------------------------------------------------------------------ validators


def _positive_int(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None and attribute.default is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{attribute.name} must be a positive integer, got {value!r}")


def _non_negative_int(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"{attribute.name} must be an integer >= 0, got {value!r}")


def _instance_of(load: Callable[[], type]) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    """``None`` or an instance of the class ``load()`` returns (loaded only when a value
    is given: importing the package stays fast)."""

    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None:
            cls = load()
            if not isinstance(value, cls):
                raise ConfigurationError(
                    f"{attribute.name} must be a {cls.__name__}, got {value!r}"
                )

    return check


def _retry_config() -> type:
    from .._core._retry import RetryConfig

    return RetryConfig


def _breaker_config() -> type:
    from .._core._breaker import CircuitBreakerConfig

    return CircuitBreakerConfig


def _bucket_config() -> type:
    from .._core._bucket import RateLimiterConfig

    return RateLimiterConfig


def _connection_pool() -> type:
    from .._transport._pool import ConnectionPool

    return ConnectionPool


def _shared_state(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        from .._resilience._shared import SharedState  # loaded only when one is given

        if not isinstance(value, SharedState):
            raise ConfigurationError(
                f"shared_state must be a SharedState (ailib_anyio.shared.RedisState), got {value!r}"
            )


def _api_key(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    # The value is never shown: only its type.
    if value is not None and not isinstance(value, str):
        raise ConfigurationError(f"api_key must be a string, got {type(value).__name__}")


def _base_url(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        check_base_url(value)


def _timeout(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        # Not a number: a Timeout of the HTTP library, whose module the transport loads
        # (the package does not import it before a client is made).
        from .._transport._http import is_timeout

        if is_timeout(value):
            return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (value > 0 and math.isfinite(value))
    ):
        raise ConfigurationError(f"timeout must be seconds or an httpx.Timeout, got {value!r}")


def _http_client(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    # Duck-typed, so that a compatible async client (e.g. httpx2's) can be lent too; a
    # blocking httpx.Client has no aclose().
    if value is not None and not (
        callable(getattr(value, "send", None)) and callable(getattr(value, "aclose", None))
    ):
        raise ConfigurationError(
            f"http_client must be an httpx.AsyncClient (or httpx2's), got {value!r}"
        )


def _protocol_path(_: Any, attribute: attrs.Attribute[Any], value: tuple[Any, ...]) -> None:
    for item in value:
        if not isinstance(item, (str, os.PathLike)):
            raise ConfigurationError(
                "protocol_path must be a directory (str or os.PathLike) or a sequence of"
                f" them, got {item!r}"
            )


def _fallbacks(_: Any, attribute: attrs.Attribute[Any], value: tuple[Any, ...]) -> None:
    # ``_client`` imports this module, so ``Client`` is not imported back (that would be an
    # import cycle): it is looked up where it lives. A Client can only exist once its module
    # has been imported, so while it is not, no value can be one.
    client = getattr(sys.modules.get(f"{__package__}._client"), "Client", None)
    kinds: tuple[type, ...] = (str,) if client is None else (str, client)
    for spec in value:
        if not isinstance(spec, kinds):
            raise ConfigurationError(
                f"fallbacks must be 'provider/model' strings or Client objects, got {spec!r}"
            )


# ------------------------------------------------------------------ converters


def _as_paths(value: _Path | Sequence[_Path] | None) -> tuple[_Path, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, os.PathLike)):
        return (value,)
    if not isinstance(value, Sequence):
        raise ConfigurationError(
            "protocol_path must be a directory (str or os.PathLike) or a sequence of them,"
            f" got {value!r}"
        )
    return tuple(value)


def _as_headers(value: Mapping[str, str] | None) -> Mapping[str, str]:
    return check_headers(value) if value is not None else {}


def _as_middleware(value: Iterable[object] | None) -> tuple[object, ...]:
    if value is None:
        return ()
    if not isinstance(value, Iterable) or isinstance(value, (str, bytes)):
        return (value,)  # one middleware; a wrong type is refused by the validator
    return tuple(value)


def _middleware(_: Any, attribute: attrs.Attribute[Any], value: tuple[object, ...]) -> None:
    MiddlewareChain(value)  # refuses what is neither a Middleware nor a callable


def _plugins(_: Any, attribute: attrs.Attribute[Any], value: tuple[object, ...]) -> None:
    for plugin in value:
        if not isinstance(plugin, Middleware):
            raise ConfigurationError(
                "plugins must be Plugin objects (ailib_anyio.plugins: Plugin, PluginRegistry,"
                f" HookManager), got {plugin!r}"
            )


def _provider_of(method: str, kind: str) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    """``None`` or an OpenTelemetry provider, duck-typed by its ``get_tracer`` /
    ``get_meter`` method (opentelemetry is not imported to check it)."""

    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and not callable(getattr(value, method, None)):
            raise ConfigurationError(
                f"{attribute.name} must be an OpenTelemetry {kind} (with {method}()), got {value!r}"
            )

    return check


def _metrics(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """None or a collector with ``middleware_for(client)`` (``MetricsCollector``; duck-typed:
    the client layer does not import the services)."""
    if value is not None and not callable(getattr(value, "middleware_for", None)):
        raise ConfigurationError(
            f"metrics must be a MetricsCollector (ailib_anyio.telemetry), got {value!r}"
        )


def _optional_flag(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, bool):
        raise ConfigurationError(f"{attribute.name} must be True, False or None, got {value!r}")


def _cache(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, ResponseCache):
        raise ConfigurationError(
            f"cache must be a CacheManager (from ailib_anyio.cache), got {value!r}"
        )


def _as_fallbacks(value: str | Client | Iterable[str | Client]) -> tuple[str | Client, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        return (value,)  # one target; a wrong type is refused by the validator
    return tuple(value)


# ------------------------------------------------------------------ the class


@attrs.frozen(kw_only=True)
class ClientConfig:
    """Every setting of a client, checked once when made; change one with
    ``attrs.evolve(config, max_inflight=8)``. ``open_client(model, **settings)`` is
    ``Client(model, ClientConfig(**settings))``. The settings:

    - ``api_key`` defaults to the manifest's credential chain (e.g. ``OPENAI_API_KEY``);
      ``base_url`` overrides the manifest's (OpenAI-compatible servers); ``headers`` are
      added to every request (a name that is not an HTTP token or a value with a control
      character raises ``ConfigurationError``; values of names with ``auth``, ``key``,
      ``token``, ``secret``... are masked like the key); ``protocol_path`` adds manifest
      directories searched first; ``http_client`` lends an HTTP client the caller owns;
      ``pool`` lends a ``ConnectionPool`` (open already) whose connections the clients of
      each provider share (not with ``http_client``).
    - ``base_url`` comes from, first to last: ``base_url=``, the environment variable
      ``<PROVIDER>_BASE_URL`` (the provider as written, then the manifest's id, upper-cased
      with every character but A-Z and 0-9 as ``_``: ``OPENAI_BASE_URL``,
      ``OPENAI_COMPATIBLE_BASE_URL``), the manifest.
    - ``timeout``: the HTTP timeout in seconds (or an ``httpx.Timeout``). Without it, a lent
      ``http_client`` keeps its own timeout, a ``pool`` its ``PoolConfig``'s; otherwise
      ``AI_HTTP_TIMEOUT_SECS`` (seconds) is the default, else 600 s to read (10 s to
      connect).
    - ``max_inflight``: at most this many HTTP requests open at once, fallbacks and hedges
      included (default: ``AI_LIB_MAX_INFLIGHT``, else unbounded).
    - ``retry`` (a ``RetryConfig``) replaces the manifest's ``retry_policy``, which is the
      default; ``max_retries`` overrides just the count (0: never retry).
    - ``fallbacks``: targets tried in order on a retryable or fallbackable error, as
      ``"provider/model"`` (the key from that provider's credential chain, e.g.
      ``ANTHROPIC_API_KEY``, looked up when this client opens; this client's timeout,
      retry and breaker settings) or, with settings of their own, unopened clients:
      ``fallbacks=[open_client("anthropic/...", api_key=..., base_url=...)]``. This client
      opens and closes them.
    - ``hedge``: a ``HedgeConfig`` racing the next fallback when the current target is slow.
    - ``rate_limit``: a ``RateLimiterConfig`` (FIFO token bucket adapting to rate-limit
      headers and 429s); ``circuit_breaker``: a ``CircuitBreakerConfig``.
    - ``deadlines``: ``Deadlines(total=, first_token=, idle=)``, each raising its own error.
    - ``parameter_defaults``: send the manifest's ``parameters.<name>.default`` for the
      temperature, max_tokens and top_p a request leaves out (off: the provider's own
      defaults apply, and a model that rejects a parameter is not sent it).
    - ``host_supplied_key``: ``api_key`` is the only credential source, no environment
      variable is read (a host or sandbox that hands credentials over).
    - ``max_response_bytes``: the largest decoded body of a non-streamed response (default
      32 MiB); a larger one, or one that inflates past it, is ``MalformedResponseError``.
    - ``middleware``: ``Middleware`` objects or ``async def mw(call, next)`` functions
      around each call and attempt, outermost first; ``plugins``: ``ailib_anyio.plugins``
      objects (a plugin is a call-level middleware), inside the ``middleware``.
    - OpenTelemetry (see ``ailib_anyio.telemetry``): when ``opentelemetry-api`` is
      installed, every call is traced and measured with the GenAI semantic conventions,
      through the global providers or ``tracer_provider`` / ``meter_provider``;
      ``telemetry=False`` turns it off; ``capture_content=True`` records the messages
      on the spans (default: ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``, else
      off). ``metrics``: a ``MetricsCollector`` (``ailib_anyio.telemetry``) this client
      fills, per provider and model.
    - ``cache``: a ``CacheManager`` (``ailib_anyio.cache``) answering repeated requests and
      streams without any HTTP request, and making concurrent identical ones share one
      upstream call; opened with the client unless already open.
    - ``shared_state``: a ``RedisState`` (``ailib_anyio.shared``) holding the
      ``rate_limit`` buckets and the ``circuit_breaker`` state, so that every process
      using the same Redis, provider, API key and model shares one limit and one circuit;
      opened with the client unless already open (an unreachable Redis is a
      ``SharedStateError`` there, unless ``RedisState(fallback_to_local=True)``).

    Example::

        config = ClientConfig(max_retries=2, max_inflight=16)
        async with Client("openai/gpt-4o", config) as client:
            reply = await client.chat().user("2+2?").execute()
    """

    api_key: str | None = attrs.field(default=None, repr=False, validator=_api_key)
    base_url: str | None = attrs.field(default=None, validator=_base_url)
    timeout: float | TimeoutSetting | None = attrs.field(default=None, validator=_timeout)
    max_inflight: int | None = attrs.field(default=None, validator=_positive_int)
    protocol_path: tuple[_Path, ...] = attrs.field(
        default=(), converter=_as_paths, validator=_protocol_path
    )
    http_client: HttpClient | None = attrs.field(default=None, validator=_http_client)
    pool: ConnectionPool | None = attrs.field(
        default=None, validator=_instance_of(_connection_pool)
    )
    headers: Mapping[str, str] = attrs.field(default=None, converter=_as_headers)
    max_retries: int | None = attrs.field(default=None, validator=_non_negative_int)
    retry: RetryConfig | None = attrs.field(default=None, validator=_instance_of(_retry_config))
    fallbacks: tuple[str | Client, ...] = attrs.field(
        default=(), converter=_as_fallbacks, validator=_fallbacks
    )
    hedge: HedgeConfig | None = attrs.field(
        default=None, validator=_instance_of(lambda: HedgeConfig)
    )
    rate_limit: RateLimiterConfig | None = attrs.field(
        default=None, validator=_instance_of(_bucket_config)
    )
    circuit_breaker: CircuitBreakerConfig | None = attrs.field(
        default=None, validator=_instance_of(_breaker_config)
    )
    deadlines: Deadlines | None = attrs.field(
        default=None, validator=_instance_of(lambda: Deadlines)
    )
    parameter_defaults: bool = attrs.field(default=False, validator=flag)
    host_supplied_key: bool = attrs.field(default=False, validator=flag)
    max_response_bytes: int = attrs.field(
        default=DEFAULT_MAX_RESPONSE_BYTES, validator=_positive_int
    )
    middleware: tuple[object, ...] = attrs.field(
        default=(), converter=_as_middleware, validator=_middleware
    )
    plugins: tuple[object, ...] = attrs.field(
        default=(), converter=_as_middleware, validator=_plugins
    )
    telemetry: bool = attrs.field(default=True, validator=flag)
    tracer_provider: TracerProvider | None = attrs.field(
        default=None, validator=_provider_of("get_tracer", "TracerProvider")
    )
    meter_provider: MeterProvider | None = attrs.field(
        default=None, validator=_provider_of("get_meter", "MeterProvider")
    )
    capture_content: bool | None = attrs.field(default=None, validator=_optional_flag)
    metrics: Any = attrs.field(default=None, validator=_metrics)
    cache: ResponseCache | None = attrs.field(default=None, validator=_cache)
    shared_state: SharedState | None = attrs.field(default=None, validator=_shared_state)

    def __attrs_post_init__(self) -> None:
        if self.pool is not None and self.http_client is not None:
            raise ConfigurationError(
                "pool and http_client cannot be given together: a client takes its"
                " connections from one of them"
            )
        if self.host_supplied_key and any(isinstance(spec, str) for spec in self.fallbacks):
            raise ConfigurationError(
                "host_supplied_key=True: a 'provider/model' fallback would take its key from"
                " the environment; pass a Client(..., api_key=..., host_supplied_key=True)"
            )

    def for_fallback(self) -> ClientConfig:
        """The config of a ``"provider/model"`` fallback: this one's timeout, lent HTTP
        client or ``ConnectionPool``, retry, breaker, body limit, shared state and manifest
        directories; its own provider's key, base_url and headers."""
        return ClientConfig(**{name: getattr(self, name) for name in FALLBACK_INHERITS})


# Published here rather than by the package's _publish, which resolves string annotations
# first: these name classes loaded only when used (RetryConfig...) and Client (a cycle).
ClientConfig.__module__ = "ailib_anyio"

_SETTINGS = frozenset(field.name for field in attrs.fields(ClientConfig))


def config_from(config: ClientConfig | None, settings: Mapping[str, Any]) -> ClientConfig:
    """``config`` (default: all defaults) with ``settings`` applied; a name that is not a
    setting is a ``ConfigurationError`` listing the valid ones."""
    unknown = sorted(set(settings) - _SETTINGS)
    if unknown:
        raise ConfigurationError(
            f"{unknown[0]!r} is not a client setting; the settings are:"
            f" {', '.join(field.name for field in attrs.fields(ClientConfig))}"
        )
    if config is None:
        return ClientConfig(**settings)
    if not isinstance(config, ClientConfig):
        # only the type: a key passed here by mistake must not be shown
        raise ConfigurationError(f"config must be a ClientConfig, got {type(config).__name__}")
    return attrs.evolve(config, **settings) if settings else config


def default_max_inflight() -> float:
    """The ``max_inflight`` of a client made without one: ``AI_LIB_MAX_INFLIGHT``, else
    unbounded; read when the client is made."""
    raw = os.environ.get("AI_LIB_MAX_INFLIGHT")
    if not raw:
        return math.inf
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(
            f"AI_LIB_MAX_INFLIGHT must be a positive integer, got {raw!r}"
        ) from None
    if value < 1:
        raise ConfigurationError(f"AI_LIB_MAX_INFLIGHT must be a positive integer, got {raw!r}")
    return value


def takes_settings(
    settings_of: Callable[_P, Any],
) -> Callable[[Callable[..., _R]], Callable[Concatenate[str, _P], _R]]:
    """Give ``func(model, **settings)`` the keyword signature of ``settings_of``
    (``ClientConfig``): for type checkers through the annotation, for ``help()`` and
    editors through ``__signature__``. The list of settings stays written once; ``func``
    itself is returned."""

    def apply(func: Callable[..., _R]) -> Callable[Concatenate[str, _P], _R]:
        own = inspect.signature(func)
        func.__signature__ = own.replace(  # type: ignore[attr-defined]
            parameters=[
                own.parameters["model"],
                *inspect.signature(settings_of).parameters.values(),
            ]
        )
        return func

    return apply
