"""``ClientConfig``: every client setting checked once, by its attrs validator, with one
message style; ``open_client``, ``ClientBuilder``, ``ailib_anyio.sync.open_client`` and a
``"provider/model"`` fallback are all built from it."""

from __future__ import annotations

import inspect
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

import ailib_anyio.sync
from ailib_anyio import (
    CircuitBreakerConfig,
    Client,
    ClientBuilder,
    ClientConfig,
    ConfigurationError,
    Deadlines,
    HedgeConfig,
    RateLimiterConfig,
    RetryConfig,
    open_client,
)
from ailib_anyio.testing import MockProvider, ScriptedReply

KEY = "sk-config-secret-4242"
MODEL = "openai/gpt-4o"
CLAUDE = "anthropic/claude-sonnet-4-5"

SETTINGS = [field.name for field in attrs.fields(ClientConfig)]

#: (setting, bad value, the exact message)
BAD = [
    ("api_key", 42, "api_key must be a string, got int"),
    ("base_url", b"http://x", "base_url must be a string, got bytes"),
    (
        "base_url",
        "ftp://example.com",
        "base_url must start with http:// or https://, got 'ftp://example.com'",
    ),
    ("timeout", "3", "timeout must be seconds or an httpx.Timeout, got '3'"),
    ("timeout", 0, "timeout must be seconds or an httpx.Timeout, got 0"),
    ("timeout", float("nan"), "timeout must be seconds or an httpx.Timeout, got nan"),
    ("timeout", True, "timeout must be seconds or an httpx.Timeout, got True"),
    ("max_inflight", 0, "max_inflight must be a positive integer, got 0"),
    ("max_inflight", True, "max_inflight must be a positive integer, got True"),
    ("max_inflight", "4", "max_inflight must be a positive integer, got '4'"),
    (
        "protocol_path",
        3,
        "protocol_path must be a directory (str or os.PathLike) or a sequence of them, got 3",
    ),
    (
        "protocol_path",
        ["protocols", 3],
        "protocol_path must be a directory (str or os.PathLike) or a sequence of them, got 3",
    ),
    ("http_client", "pool", "http_client must be an httpx.AsyncClient (or httpx2's), got 'pool'"),
    ("headers", [("a", "b")], "headers must be a mapping of header names to values, got list"),
    (
        "headers",
        {"bad name": "x"},
        "headers: 'bad name' is not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)",
    ),
    ("max_retries", -1, "max_retries must be an integer >= 0, got -1"),
    ("max_retries", 1.5, "max_retries must be an integer >= 0, got 1.5"),
    ("retry", {"max_retries": 2}, "retry must be a RetryConfig, got {'max_retries': 2}"),
    ("fallbacks", [42], "fallbacks must be 'provider/model' strings or Client objects, got 42"),
    ("fallbacks", 42, "fallbacks must be 'provider/model' strings or Client objects, got 42"),
    (
        "middleware",
        [42],
        "middleware must be Middleware objects or async functions (call, next), got 42",
    ),
    (
        "plugins",
        ["audit"],
        "plugins must be Plugin objects (ailib_anyio.plugins: Plugin, PluginRegistry,"
        " HookManager), got 'audit'",
    ),
    ("metrics", "prom", "metrics must be a MetricsCollector (ailib_anyio.telemetry), got 'prom'"),
    ("hedge", 0.5, "hedge must be a HedgeConfig, got 0.5"),
    ("rate_limit", 5, "rate_limit must be a RateLimiterConfig, got 5"),
    ("circuit_breaker", {}, "circuit_breaker must be a CircuitBreakerConfig, got {}"),
    ("deadlines", 3, "deadlines must be a Deadlines, got 3"),
    ("parameter_defaults", "yes", "parameter_defaults must be True or False, got 'yes'"),
    ("host_supplied_key", 1, "host_supplied_key must be True or False, got 1"),
    ("max_response_bytes", 0, "max_response_bytes must be a positive integer, got 0"),
    ("max_response_bytes", None, "max_response_bytes must be a positive integer, got None"),
    ("telemetry", "on", "telemetry must be True or False, got 'on'"),
    (
        "tracer_provider",
        42,
        "tracer_provider must be an OpenTelemetry TracerProvider (with get_tracer()), got 42",
    ),
    (
        "meter_provider",
        "mp",
        "meter_provider must be an OpenTelemetry MeterProvider (with get_meter()), got 'mp'",
    ),
    ("capture_content", 1, "capture_content must be True, False or None, got 1"),
    ("cache", 42, "cache must be a CacheManager (from ailib_anyio.cache), got 42"),
    (
        "shared_state",
        "redis://x",
        "shared_state must be a SharedState (ailib_anyio.shared.RedisState), got 'redis://x'",
    ),
    ("pool", "pool", "pool must be a ConnectionPool, got 'pool'"),
]

#: ClientBuilder's method for a setting
METHOD = {
    "retry": "with_retry",
    "fallbacks": "with_fallbacks",
    "middleware": "with_middleware",
    "plugins": "with_plugins",
    "metrics": "with_metrics",
    "cache": "with_cache",
    "rate_limit": "with_rate_limit",
    "circuit_breaker": "with_circuit_breaker",
    "shared_state": "with_shared_state",
    "pool": "with_pool",
}


def test_every_setting_has_a_bad_value_here() -> None:
    assert {name for name, _, _ in BAD} == set(SETTINGS)


@pytest.mark.parametrize(("name", "value", "message"), BAD)
def test_a_bad_value_names_its_setting(name: str, value: Any, message: str) -> None:
    settings = {"api_key": KEY, name: value}
    makers: list[Callable[[], object]] = [
        lambda: ClientConfig(**{name: value}),
        lambda: attrs.evolve(ClientConfig(api_key=KEY), **{name: value}),
        lambda: open_client(MODEL, **settings),
        lambda: Client(MODEL, ClientConfig(), **settings),
        lambda: ailib_anyio.sync.open_client(MODEL, **settings),
    ]
    if name not in ("hedge", "deadlines"):  # those two take numbers in the builder
        method = METHOD.get(name, name)
        makers.append(lambda: getattr(ClientBuilder(), method)(value))
    for make in makers:
        with pytest.raises(ConfigurationError) as info:
            make()
        assert str(info.value) == message
        assert KEY not in repr(info.value.args)


def test_a_fallback_from_the_environment_is_refused_with_a_host_supplied_key() -> None:
    with pytest.raises(ConfigurationError) as info:
        ClientConfig(api_key=KEY, host_supplied_key=True, fallbacks=[CLAUDE])
    assert str(info.value) == (
        "host_supplied_key=True: a 'provider/model' fallback would take its key from the"
        " environment; pass a Client(..., api_key=..., host_supplied_key=True)"
    )


def test_defaults_and_normal_forms() -> None:
    config = ClientConfig()
    assert config.headers == {} and config.fallbacks == () and config.protocol_path == ()
    assert config.max_inflight is None and config.deadlines is None
    assert config.max_response_bytes == 32 * 1024 * 1024
    one = ClientConfig(fallbacks=CLAUDE, protocol_path=Path("protocols"))
    assert one.fallbacks == (CLAUDE,)
    assert one.protocol_path == (Path("protocols"),)
    assert ClientConfig(fallbacks=iter([CLAUDE])).fallbacks == (CLAUDE,)
    timeout = httpx.Timeout(3.0)
    assert ClientConfig(timeout=timeout).timeout is timeout


def test_unknown_setting_is_refused_listing_the_valid_ones() -> None:
    message = f"'max_inflite' is not a client setting; the settings are: {', '.join(SETTINGS)}"
    makers: list[Callable[[], object]] = [
        lambda: open_client(MODEL, api_key=KEY, max_inflite=3),  # type: ignore[call-arg]
        lambda: Client(MODEL, api_key=KEY, max_inflite=3),
        lambda: ailib_anyio.sync.open_client(MODEL, api_key=KEY, max_inflite=3),
    ]
    for make in makers:
        with pytest.raises(ConfigurationError) as info:
            make()
        assert str(info.value) == message
    assert SETTINGS[:3] == ["api_key", "base_url", "timeout"]
    with pytest.raises(TypeError):  # ClientConfig itself is a plain attrs class
        ClientConfig(max_inflite=3)  # type: ignore[call-arg]


def test_evolve_keeps_the_rest_and_checks_the_new_value() -> None:
    config = ClientConfig(api_key=KEY, max_inflight=4, headers={"X-Team": "a"})
    wider = attrs.evolve(config, max_inflight=16)
    assert wider.max_inflight == 16 and config.max_inflight == 4
    assert wider.api_key == KEY and wider.headers == {"X-Team": "a"}
    with pytest.raises(ConfigurationError, match=r"^max_inflight must be a positive integer"):
        attrs.evolve(config, max_inflight=-1)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.max_inflight = 8  # type: ignore[misc]


def test_repr_never_shows_the_key() -> None:
    config = ClientConfig(api_key=KEY, base_url="http://127.0.0.1:9/v1")
    assert KEY not in repr(config)
    assert "api_key" not in repr(config)
    assert "base_url='http://127.0.0.1:9/v1'" in repr(config)
    builder = ClientBuilder().model(MODEL).api_key(KEY)
    assert KEY not in repr(builder) and KEY not in repr(builder.config)
    assert repr(builder) == f"<ClientBuilder {MODEL!r} ['api_key']>"


def test_open_client_builder_and_sync_are_built_from_the_same_config() -> None:
    settings: dict[str, Any] = {
        "api_key": KEY,
        "base_url": "http://127.0.0.1:9/v1",
        "timeout": 7.5,
        "max_inflight": 3,
        "headers": {"X-Team": "a"},
        "max_retries": 1,
        "retry": RetryConfig(max_retries=2),
        "hedge": HedgeConfig(delay=0.5),
        "rate_limit": RateLimiterConfig.from_rps(5),
        "circuit_breaker": CircuitBreakerConfig(failure_threshold=2),
        "deadlines": Deadlines(total=30.0),
        "parameter_defaults": True,
        "max_response_bytes": 1000,
    }
    expected = ClientConfig(**settings)
    built = (
        ClientBuilder()
        .model(MODEL)
        .api_key(KEY)
        .base_url("http://127.0.0.1:9/v1")
        .timeout(7.5)
        .max_inflight(3)
        .headers({"X-Team": "a"})
        .max_retries(1)
        .with_retry(RetryConfig(max_retries=2))
        .with_hedge(0.5)
        .with_rate_limit(RateLimiterConfig.from_rps(5))
        .with_circuit_breaker(CircuitBreakerConfig(failure_threshold=2))
        .with_deadlines(total=30.0)
        .parameter_defaults()
        .max_response_bytes(1000)
        .build()
    )
    clients = [
        open_client(MODEL, **settings),
        Client(MODEL, expected),
        built,
        ClientBuilder(expected).model(MODEL).build(),
        ailib_anyio.sync.open_client(MODEL, **settings).async_client,
        ailib_anyio.sync.open_client(MODEL, expected).async_client,
    ]
    for client in clients:
        assert client.config == expected
        assert client.max_inflight == 3
        assert client.base_url == "http://127.0.0.1:9/v1"
    # settings given with a config replace its values
    assert Client(MODEL, expected, max_inflight=9).config == attrs.evolve(expected, max_inflight=9)


def test_open_client_shows_the_settings_in_its_signature() -> None:
    parameters = list(inspect.signature(open_client).parameters)
    assert parameters == ["model", *SETTINGS]


def test_production_ready_fills_only_what_was_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AI_LIB_MAX_INFLIGHT", raising=False)
    config = ClientBuilder().max_inflight(20).production_ready().config
    assert config.max_inflight == 20
    assert config.circuit_breaker is not None and config.rate_limit is not None
    assert config.deadlines == Deadlines(total=600.0, first_token=120.0, idle=120.0)
    monkeypatch.setenv("AI_LIB_MAX_INFLIGHT", "5")
    assert ClientBuilder().production_ready().config.max_inflight is None


class LentPool:
    """Stands in for a lent ``httpx.AsyncClient`` (the check is by shape)."""

    async def send(self, request: httpx.Request) -> httpx.Response:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError


def test_a_string_fallback_inherits_only_the_chain_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    http: Any = LentPool()
    parent = ClientConfig(
        api_key=KEY,
        base_url="http://127.0.0.1:9/v1",
        headers={"X-Team": "a"},
        timeout=5.0,
        http_client=http,
        max_retries=1,
        retry=RetryConfig(max_retries=3),
        circuit_breaker=CircuitBreakerConfig(failure_threshold=2),
        max_response_bytes=1000,
        max_inflight=4,
        hedge=HedgeConfig(delay=1.0),
        deadlines=Deadlines(total=9.0),
        parameter_defaults=True,
        protocol_path=os.fspath(tmp_path),
        fallbacks=[CLAUDE],
    )
    client = Client(MODEL, parent)
    (fallback,) = client.targets[1:]
    assert fallback.config == ClientConfig(
        timeout=5.0,
        http_client=http,
        max_retries=1,
        retry=RetryConfig(max_retries=3),
        circuit_breaker=CircuitBreakerConfig(failure_threshold=2),
        max_response_bytes=1000,
        protocol_path=parent.protocol_path,
    )
    assert fallback.base_url == "https://api.anthropic.com/v1"
    assert KEY not in repr(fallback.config)


def test_a_client_fallback_takes_the_chain_body_limit_only_if_it_kept_the_default() -> None:
    default = Client(CLAUDE, api_key="k2")
    own = Client(CLAUDE, api_key="k3", max_response_bytes=50)
    client = Client(MODEL, api_key=KEY, max_response_bytes=1000, fallbacks=[default, own])
    assert [f.config.max_response_bytes for f in client.targets[1:]] == [1000, 50]


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    async with MockProvider() as server:
        yield server


@pytest.mark.anyio
async def test_a_client_made_from_a_config_runs_a_request(mock: MockProvider) -> None:
    mock.enqueue(ScriptedReply(content="four"))
    config = ClientConfig(api_key=KEY, base_url=mock.openai_base_url, max_retries=0)
    async with Client(MODEL, config) as client:
        reply = await client.chat().user("2+2?").execute()
        assert client.current_inflight == 0
    assert reply.content == "four"
    assert mock.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_a_key_passed_where_the_config_goes_is_not_shown() -> None:
    makers: list[Callable[[], object]] = [
        lambda: Client(MODEL, KEY),  # type: ignore[arg-type]
        lambda: ailib_anyio.sync.open_client(MODEL, KEY),  # type: ignore[arg-type]
        lambda: ClientBuilder(KEY),  # type: ignore[arg-type]
    ]
    for make in makers:
        with pytest.raises(ConfigurationError) as info:
            make()
        assert str(info.value) == "config must be a ClientConfig, got str"
