"""``ClientBuilder``: the fluent spelling of ``open_client``'s settings.

::

    async with (
        ClientBuilder()
        .model("openai/gpt-4o")
        .production_ready()
        .with_fallbacks(["anthropic/claude-sonnet-5-5"])
        .max_inflight(20)
        .open()
    ) as client:
        reply = await client.chat().user("2+2?").execute()

Each method sets one setting of a ``ClientConfig`` (``attrs.evolve``: a bad value is
refused at once, by the config's validator) and returns the builder; ``open()`` (or
``build()``) ends in the same async context manager ``open_client`` returns. Setting a
value twice keeps the last one; ``production_ready()`` only fills what was not set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from .._core._breaker import CircuitBreakerConfig
from .._core._bucket import RateLimiterConfig
from .._core._errors import ConfigurationError
from .._resilience._run import Deadlines, HedgeConfig
from ._config import ClientConfig

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from .._core._retry import RetryConfig
    from .._resilience._shared import SharedState
    from .._transport._http import HttpClient, TimeoutSetting
    from .._transport._pool import ConnectionPool
    from ._array import ModelArray
    from ._client import Client
    from ._middleware import ResponseCache

__all__ = ["PRODUCTION_DEFAULTS", "ClientBuilder"]

#: What ``production_ready()`` sets where the builder has no value yet. Retries need no
#: entry: the manifest's ``retry_policy`` is always the default.
PRODUCTION_DEFAULTS: Mapping[str, Any] = {
    # Opens after 5 consecutive provider-side failures, probes again after 30 s.
    "circuit_breaker": CircuitBreakerConfig(failure_threshold=5, cooldown_seconds=30.0),
    # Header-driven: the nominal rate is high; the provider's remaining/reset headers and
    # 429s are what slow it down. A wait beyond a minute fails fast instead.
    "rate_limit": RateLimiterConfig.from_rps(50, burst=50, max_wait=60.0),
    "max_inflight": 64,
    "deadlines": Deadlines(total=600.0, first_token=120.0, idle=120.0),
}


class ClientBuilder:
    """Builds a ``ClientConfig`` (and a model) step by step; see the module docstring.
    ``ClientBuilder(config)`` starts from an existing config."""

    def __init__(self, config: ClientConfig | None = None) -> None:
        if config is not None and not isinstance(config, ClientConfig):
            # only the type: a key passed here by mistake must not be shown
            raise ConfigurationError(f"config must be a ClientConfig, got {type(config).__name__}")
        self._model: str | ModelArray | None = None
        self._config = config if config is not None else ClientConfig()

    @property
    def config(self) -> ClientConfig:
        """The settings so far."""
        return self._config

    def __repr__(self) -> str:
        default = ClientConfig()
        changed = [
            field.name
            for field in attrs.fields(ClientConfig)
            if getattr(self._config, field.name) != getattr(default, field.name)
        ]
        return f"<ClientBuilder {self._model!r} {changed}>"

    def _set(self, name: str, value: Any) -> ClientBuilder:
        self._config = attrs.evolve(self._config, **{name: value})
        return self

    def model(self, model: str | ModelArray) -> ClientBuilder:
        """``"provider/model-id"``, or a ``ModelArray`` (``ailib_anyio.routing``)."""
        from ._targets import is_array

        if not (isinstance(model, str) and model) and not is_array(model):
            raise ConfigurationError(
                f"model must be a 'provider/model' string or a ModelArray, got {model!r}"
            )
        self._model = model
        return self

    def api_key(self, key: str) -> ClientBuilder:
        return self._set("api_key", key)

    def base_url(self, url: str) -> ClientBuilder:
        return self._set("base_url", url)

    def timeout(self, timeout: TimeoutSetting) -> ClientBuilder:
        """The HTTP timeout (seconds, or an ``httpx.Timeout`` / ``httpx2.Timeout``)."""
        return self._set("timeout", timeout)

    def headers(self, headers: Mapping[str, str]) -> ClientBuilder:
        return self._set("headers", headers)

    def protocol_path(
        self, path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
    ) -> ClientBuilder:
        return self._set("protocol_path", path)

    def http_client(self, client: HttpClient) -> ClientBuilder:
        return self._set("http_client", client)

    def max_inflight(self, limit: int) -> ClientBuilder:
        return self._set("max_inflight", limit)

    def max_retries(self, count: int) -> ClientBuilder:
        return self._set("max_retries", count)

    def max_response_bytes(self, limit: int) -> ClientBuilder:
        return self._set("max_response_bytes", limit)

    def parameter_defaults(self, enabled: bool = True) -> ClientBuilder:
        return self._set("parameter_defaults", enabled)

    def host_supplied_key(self, enabled: bool = True) -> ClientBuilder:
        return self._set("host_supplied_key", enabled)

    def with_retry(self, config: RetryConfig) -> ClientBuilder:
        return self._set("retry", config)

    def with_fallbacks(self, targets: Sequence[str | Client]) -> ClientBuilder:
        return self._set("fallbacks", targets)

    def with_middleware(self, middleware: Sequence[object]) -> ClientBuilder:
        """Middleware around each call and attempt, outermost first (see ``Middleware``)."""
        return self._set("middleware", middleware)

    def with_plugins(self, plugins: Sequence[object]) -> ClientBuilder:
        """Plugins (``ailib_anyio.plugins``), inside the middleware."""
        return self._set("plugins", plugins)

    def telemetry(self, enabled: bool = True) -> ClientBuilder:
        """OpenTelemetry tracing and metrics (on by default when it is installed)."""
        return self._set("telemetry", enabled)

    def tracer_provider(self, provider: TracerProvider) -> ClientBuilder:
        return self._set("tracer_provider", provider)

    def meter_provider(self, provider: MeterProvider) -> ClientBuilder:
        return self._set("meter_provider", provider)

    def capture_content(self, enabled: bool = True) -> ClientBuilder:
        """Record the messages on the spans (off by default: they may hold personal data)."""
        return self._set("capture_content", enabled)

    def with_metrics(self, collector: object) -> ClientBuilder:
        """A ``MetricsCollector`` (``ailib_anyio.telemetry``) the client fills."""
        return self._set("metrics", collector)

    def with_cache(self, cache: ResponseCache) -> ClientBuilder:
        """Answer repeated requests from ``cache`` (a ``CacheManager``)."""
        return self._set("cache", cache)

    def with_hedge(self, config: HedgeConfig | float) -> ClientBuilder:
        """Hedge after ``config.delay`` seconds (a number is the delay)."""
        if not isinstance(config, HedgeConfig):
            config = HedgeConfig(delay=config)
        return self._set("hedge", config)

    def with_rate_limit(self, config: RateLimiterConfig) -> ClientBuilder:
        return self._set("rate_limit", config)

    def with_circuit_breaker(self, config: CircuitBreakerConfig) -> ClientBuilder:
        return self._set("circuit_breaker", config)

    def with_shared_state(self, state: SharedState) -> ClientBuilder:
        """Share the rate limiter and circuit breaker with other processes through
        ``state`` (``ailib_anyio.shared.RedisState``)."""
        return self._set("shared_state", state)

    def with_pool(self, pool: ConnectionPool) -> ClientBuilder:
        """Take connections from ``pool`` (a ``ConnectionPool``, open when the client
        opens), shared with the other clients of the same provider."""
        return self._set("pool", pool)

    def with_deadlines(
        self,
        *,
        total: float | None = None,
        first_token: float | None = None,
        idle: float | None = None,
    ) -> ClientBuilder:
        return self._set("deadlines", Deadlines(total=total, first_token=first_token, idle=idle))

    def production_ready(self) -> ClientBuilder:
        """Fill every resilience setting not given yet with ``PRODUCTION_DEFAULTS``: a
        circuit breaker, a header-driven rate limiter, ``max_inflight=64`` (unless
        ``AI_LIB_MAX_INFLIGHT`` is set) and deadlines; retries follow the manifest."""
        missing = {
            name: value
            for name, value in PRODUCTION_DEFAULTS.items()
            if getattr(self._config, name) is None
            and not (name == "max_inflight" and os.environ.get("AI_LIB_MAX_INFLIGHT"))
        }
        self._config = attrs.evolve(self._config, **missing)
        return self

    def build(self) -> Client:
        """The client, unopened: use it as ``async with builder.build() as client``."""
        from ._client import Client

        if self._model is None:
            raise ConfigurationError("ClientBuilder needs .model('provider/model') first")
        return Client(self._model, self._config)

    open = build
