"""``ConnectionPool`` / ``PoolConfig`` on loopback, with httpx and with httpx2, on asyncio
and trio: the clients of one origin share one HTTP client and its connections, counted by
``get_stats()``; closing a client keeps them, closing the pool closes them and interrupts
a client still using it (an error, never a hang); the settings are checked; and a lent
``http_client``'s own timeout is kept on both libraries.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import attrs
import httpx
import pytest

from ailib_anyio import (
    ClientBuilder,
    ClientConfig,
    ConfigurationError,
    ConnectionPool,
    ContentDelta,
    OriginStats,
    PoolConfig,
    PoolStats,
    ReadTimeoutError,
    TransportError,
    open_client,
)
from ailib_anyio._client._client import Client
from ailib_anyio._transport._http import connection_counts
from ailib_anyio._transport._pool import origin_of
from ailib_anyio.testing import MockProvider, ScriptedReply

pytestmark = pytest.mark.anyio

KEY = "sk-test-pool"
HAVE_HTTPX2 = importlib.util.find_spec("httpx2") is not None
LIBRARIES = [
    "httpx",
    pytest.param(
        "httpx2",
        marks=pytest.mark.skipif(not HAVE_HTTPX2, reason="httpx2 is not installed"),
    ),
]
CLOSED_IN_FLIGHT = "the ConnectionPool was closed while this request was using it"


def client_of(mock: MockProvider, pool: ConnectionPool, model: str = "gpt-4o", **kw: Any) -> Client:
    return open_client(
        f"openai/{model}", api_key=KEY, base_url=mock.openai_base_url, pool=pool, **kw
    )


def http_of(client: Client) -> Any:
    assert client.primary.transport is not None
    return client.primary.transport.client


# ------------------------------------------------------------------ settings


def test_presets() -> None:
    assert PoolConfig.default() == PoolConfig()
    assert PoolConfig() == PoolConfig(
        max_connections=100, max_keepalive_connections=20, keepalive_expiry=30.0
    )
    high = PoolConfig.high_throughput()
    assert (high.max_connections, high.max_keepalive_connections) == (500, 200)
    assert (high.keepalive_expiry, high.pool_timeout) == (60.0, 120.0)
    low = PoolConfig.low_latency()
    assert low.max_keepalive_connections == low.max_connections == 100
    assert (low.connect_timeout, low.pool_timeout, low.keepalive_expiry) == (5.0, 5.0, 120.0)
    assert attrs.evolve(high, http_library="httpx2").http_library == "httpx2"


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("max_connections", 0, "max_connections must be an integer >= 1 or None, got 0"),
        ("max_connections", True, "max_connections must be an integer >= 1 or None, got True"),
        ("max_connections", 2.5, "max_connections must be an integer >= 1 or None, got 2.5"),
        (
            "max_keepalive_connections",
            -1,
            "max_keepalive_connections must be an integer >= 0 or None, got -1",
        ),
        (
            "keepalive_expiry",
            0,
            "keepalive_expiry must be a positive number of seconds or None, got 0",
        ),
        (
            "connect_timeout",
            float("inf"),
            "connect_timeout must be a positive number of seconds or None, got inf",
        ),
        (
            "read_timeout",
            "5",
            "read_timeout must be a positive number of seconds or None, got '5'",
        ),
        (
            "pool_timeout",
            -1.0,
            "pool_timeout must be a positive number of seconds or None, got -1.0",
        ),
        ("http_library", "requests", "http_library must be 'httpx' or 'httpx2', got 'requests'"),
    ],
)
def test_a_bad_setting_is_a_configuration_error_naming_it(
    setting: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        PoolConfig(**{setting: value})  # type: ignore[arg-type]
    assert str(info.value) == message


def test_keepalive_over_the_limit_is_allowed() -> None:
    # capped by max_connections, as the HTTP libraries do: PoolConfig(max_connections=1)
    # must not need max_keepalive_connections too
    assert PoolConfig(max_connections=1).max_keepalive_connections == 20


def test_pool_setting_is_checked() -> None:
    with pytest.raises(ConfigurationError) as info:
        ConnectionPool("high")  # type: ignore[arg-type]
    assert str(info.value) == "config must be a PoolConfig, got 'high'"
    with pytest.raises(ConfigurationError) as info:
        ClientConfig(pool="pool")  # type: ignore[arg-type]
    assert str(info.value) == "pool must be a ConnectionPool, got 'pool'"


async def test_pool_and_http_client_together_are_refused() -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(ConfigurationError) as info:
            open_client("openai/gpt-4o", api_key=KEY, pool=ConnectionPool(), http_client=http)
    assert str(info.value) == (
        "pool and http_client cannot be given together: a client takes its connections"
        " from one of them"
    )


def test_a_fallback_shares_the_pool() -> None:
    pool = ConnectionPool()
    assert ClientConfig(pool=pool).for_fallback().pool is pool


def test_origin_of() -> None:
    assert origin_of("https://API.openai.com/v1") == "https://api.openai.com"
    assert origin_of("https://api.openai.com:443/v1") == "https://api.openai.com"
    assert origin_of("http://127.0.0.1:8080/v1beta") == "http://127.0.0.1:8080"
    assert origin_of("http://[::1]:9000/v1") == "http://[::1]:9000"


def test_connections_of_an_unknown_transport_are_not_guessed() -> None:
    assert connection_counts(object()) is None
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    assert connection_counts(http) is None
    assert connection_counts(httpx.AsyncClient()) == (0, 0)


# ------------------------------------------------------------------ lifecycle


async def test_a_pool_must_be_open_before_its_clients(mock: MockProvider) -> None:
    pool = ConnectionPool()
    with pytest.raises(RuntimeError) as info:
        async with client_of(mock, pool):
            pass
    assert str(info.value) == (
        "the ConnectionPool is not open: open clients inside"
        " 'async with ConnectionPool(...) as pool:'"
    )
    async with pool:
        with pytest.raises(RuntimeError, match="a ConnectionPool can be opened only once"):
            await pool.__aenter__()
    await pool.aclose()  # idempotent
    with pytest.raises(RuntimeError) as info:
        async with client_of(mock, pool):
            pass
    assert str(info.value) == "the ConnectionPool is closed"
    with pytest.raises(RuntimeError, match="a ConnectionPool can be opened only once"):
        await pool.__aenter__()


@pytest.mark.parametrize("library", LIBRARIES)
async def test_concurrent_streams_are_active_then_idle(mock: MockProvider, library: str) -> None:
    """8 streams held open at once: 8 active connections; read to their end: 8 idle."""
    n = 8
    config = PoolConfig(http_library=library, max_keepalive_connections=n)
    started: list[int] = []
    release = anyio.Event()
    texts: dict[int, str] = {}

    async def one(client: Client, i: int) -> None:
        parts = []
        async with client.chat().user(f"story {i}").stream() as stream:
            async for event in stream:
                if isinstance(event, ContentDelta):
                    parts.append(event.text)
                    if len(parts) == 1:
                        started.append(i)
                        await release.wait()  # the response stays open meanwhile
        texts[i] = "".join(parts)

    async with ConnectionPool(config) as pool, client_of(mock, pool) as client:
        assert client.primary.transport is not None
        assert client.primary.transport.library.__name__ == library
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for i in range(n):
                    tg.start_soon(one, client, i)
                while len(started) < n:  # noqa: ASYNC110 - no event to wait for
                    await anyio.sleep(0.01)
                stats = pool.get_stats()
                release.set()
        assert isinstance(stats, PoolStats)
        (origin,) = stats.origins
        assert isinstance(origin, OriginStats)
        assert origin.origin == mock.base_url
        assert origin.providers == ("openai",)
        assert (origin.active_connections, origin.idle_connections) == (n, 0)
        assert (origin.clients, origin.requests_served) == (1, n)
        assert (origin.max_connections, origin.max_keepalive_connections) == (100, n)
        after = pool.get_stats()["openai"]
        assert (after.active_connections, after.idle_connections) == (0, n)
        assert after.requests_served == n
        assert sorted(texts) == list(range(n))
        assert all(text.startswith("Mock reply to: story") for text in texts.values())
    assert pool.get_stats().idle_connections == 0  # closed with the pool
    assert mock.connections_accepted == n


@pytest.mark.parametrize("library", LIBRARIES)
async def test_clients_of_one_origin_share_connections(mock: MockProvider, library: str) -> None:
    async with ConnectionPool(PoolConfig(http_library=library)) as pool:
        async with client_of(mock, pool) as a, client_of(mock, pool, "gpt-4o-mini") as b:
            assert http_of(a) is http_of(b)
            await a.chat().user("one").execute()
            await b.chat().user("two").execute()
            async with open_client(
                "anthropic/claude-sonnet-4-5",
                api_key=KEY,
                base_url=mock.anthropic_base_url,
                pool=pool,
            ) as c:
                assert http_of(c) is http_of(a)  # same server, same origin
                await c.chat().user("three").max_tokens(10).execute()
                stats = pool.get_stats()
                assert stats["anthropic"] is stats["openai"] is stats[mock.base_url]
                assert stats["openai"].clients == 3
        assert mock.connections_accepted == 1  # one connection served all three
        shared = http_of(a)
        stats = pool.get_stats()
        (origin,) = stats
        assert origin.providers == ("openai", "anthropic")
        assert (origin.clients, origin.requests_served, origin.idle_connections) == (0, 3, 1)
        assert pool.get_stats("anthropic") == stats
        assert pool.get_stats("gemini") == PoolStats(())
        # closing the clients kept the connection: the next client reuses it
        assert not shared.is_closed
        async with client_of(mock, pool) as d:
            assert http_of(d) is shared
            await d.chat().user("four").execute()
        assert mock.connections_accepted == 1
        assert pool.get_stats().requests_served == 4
    assert shared.is_closed  # closing the pool closed it
    assert "openai" in stats and mock.base_url in stats and "gemini" not in stats
    with pytest.raises(ConfigurationError) as info:
        stats["gemini"]
    assert str(info.value) == (
        f"no connections for 'gemini' in this pool (it has: anthropic, openai, {mock.base_url})"
    )


async def test_each_origin_has_its_own_client(mock: MockProvider) -> None:
    async with MockProvider() as other, ConnectionPool() as pool:
        async with (
            client_of(mock, pool) as a,
            open_client(
                "openai/gpt-4o", api_key=KEY, base_url=other.openai_base_url, pool=pool
            ) as b,
        ):
            assert http_of(a) is not http_of(b)
            await a.chat().user("one").execute()
            await b.chat().user("two").execute()
        stats = pool.get_stats()
        assert [o.origin for o in stats] == [mock.base_url, other.base_url]
        assert [o.requests_served for o in stats] == [1, 1]
        assert len(stats) == 2 and stats.idle_connections == 2
        with pytest.raises(ConfigurationError) as info:
            stats["openai"]
        assert str(info.value) == (
            f"provider 'openai' uses 2 origins in this pool ({mock.base_url},"
            f" {other.base_url}): ask for one of them"
        )
        assert stats[other.base_url].requests_served == 1


# ------------------------------------------------------------------ closed under a client


@pytest.mark.parametrize("library", LIBRARIES)
async def test_pool_closed_under_a_stream_is_a_clear_error(
    mock: MockProvider, library: str
) -> None:
    mock.enqueue(ScriptedReply(content="abcdefgh" * 40, chunk_size=2, delay_between_chunks=0.05))
    async with (
        ConnectionPool(PoolConfig(http_library=library)) as pool,
        client_of(mock, pool) as client,
    ):
        with anyio.fail_after(5), pytest.raises(TransportError) as info:
            async with client.chat().user("hi").stream() as stream:
                async for _ in stream:
                    await pool.aclose()
        assert str(info.value).startswith(CLOSED_IN_FLIGHT)
        assert info.value.retryable is False
        assert client.current_inflight == 0
        with pytest.raises(RuntimeError) as closed:
            await client.chat().user("again").execute()
        assert str(closed.value).startswith("the ConnectionPool this client uses is closed")
    assert len(mock.requests) == 1


@pytest.mark.parametrize("library", LIBRARIES)
async def test_pool_closed_under_a_waiting_request_ends_it_at_once(
    mock: MockProvider, library: str
) -> None:
    """A request waiting for a connection (``max_connections=1``, held by a stream) is
    cancelled by the pool's close, not left to wait out the pool timeout (60 s here)."""
    mock.enqueue(ScriptedReply(content="abcdefgh", chunk_size=2, stall_after_bytes=600))
    config = PoolConfig(http_library=library, max_connections=1, pool_timeout=60)
    errors: list[BaseException] = []

    async def waiting(client: Client) -> None:
        try:
            await client.chat().user("queued").execute()
        except (TransportError, RuntimeError) as exc:
            errors.append(exc)

    async with ConnectionPool(config) as pool, client_of(mock, pool, max_retries=3) as client:
        with anyio.fail_after(5):
            async with client.chat().user("hold").stream() as stream:
                await stream.__anext__()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(waiting, client)
                    while client.current_inflight < 2:  # noqa: ASYNC110 - no event for it
                        await anyio.sleep(0.01)
                    await anyio.sleep(0.05)
                    assert pool.get_stats()["openai"].active_connections == 1
                    await pool.aclose()
        assert client.current_inflight == 0
    (error,) = errors
    assert type(error) is TransportError
    assert str(error).startswith(CLOSED_IN_FLIGHT)
    assert len(mock.requests) == 1  # the queued request never reached the server


# ------------------------------------------------------------------ timeouts


@pytest.mark.parametrize("library", LIBRARIES)
async def test_the_pools_timeouts_apply_unless_the_client_sets_its_own(library: str) -> None:
    async with MockProvider() as mock:
        mock.enqueue(
            ScriptedReply(content="late", delay_before_headers=30),
            ScriptedReply(content="in time", delay_before_headers=0.5),
        )
        config = PoolConfig(http_library=library, read_timeout=0.2, connect_timeout=3.0)
        async with ConnectionPool(config) as pool:
            async with client_of(mock, pool, max_retries=0) as client:
                assert client.primary.transport is not None
                timeout = client.primary.transport.timeout
                assert (timeout.read, timeout.connect) == (0.2, 3.0)
                assert (timeout.write, timeout.pool) == (60.0, 60.0)  # the defaults
                with anyio.fail_after(10), pytest.raises(ReadTimeoutError):
                    await client.chat().user("hi").execute()
            async with client_of(mock, pool, max_retries=0, timeout=30) as client:
                assert (await client.chat().user("hi").execute()).content == "in time"


async def test_ai_http_timeout_secs_is_the_pools_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_HTTP_TIMEOUT_SECS", "7")
    async with (
        MockProvider() as mock,
        ConnectionPool(PoolConfig(connect_timeout=2)) as pool,
        client_of(mock, pool) as client,
    ):
        assert client.primary.transport is not None
        timeout = client.primary.transport.timeout
        assert (timeout.connect, timeout.read, timeout.write, timeout.pool) == (2, 7, 7, 7)


@asynccontextmanager
async def lent(library: str, **kw: Any) -> AsyncIterator[Any]:
    lib = importlib.import_module(library)
    async with lib.AsyncClient(**kw) as http:
        yield http


@pytest.mark.parametrize("library", LIBRARIES)
async def test_a_lent_clients_own_timeout_is_kept(library: str) -> None:
    lib = importlib.import_module(library)
    async with MockProvider() as mock:
        mock.enqueue(ScriptedReply(content="late", delay_before_headers=30))
        async with (
            lent(library, timeout=lib.Timeout(0.2, connect=4.0)) as http,
            open_client(
                "openai/gpt-4o",
                api_key=KEY,
                base_url=mock.openai_base_url,
                http_client=http,
                max_retries=0,
            ) as client,
        ):
            transport = client.primary.transport
            assert transport is not None and transport.library is lib
            assert (transport.timeout.read, transport.timeout.connect) == (0.2, 4.0)
            assert http.timeout == lib.Timeout(0.2, connect=4.0)  # not changed
            with anyio.fail_after(10), pytest.raises(ReadTimeoutError):
                await client.chat().user("hi").execute()


@pytest.mark.parametrize("library", LIBRARIES)
async def test_timeout_setting_wins_over_a_lent_clients(library: str) -> None:
    async with MockProvider() as mock:
        mock.enqueue(ScriptedReply(content="in time", delay_before_headers=0.5))
        async with (
            lent(library, timeout=0.05) as http,
            open_client(
                "openai/gpt-4o",
                api_key=KEY,
                base_url=mock.openai_base_url,
                http_client=http,
                timeout=30,
                max_retries=0,
            ) as client,
        ):
            assert (await client.chat().user("hi").execute()).content == "in time"
            assert http.timeout.read == 0.05  # the lent client's own is left as it was


async def test_the_callers_cancellation_passes_through(mock: MockProvider) -> None:
    """The pool's own cancel scope around a send catches only the pool's cancellation."""
    mock.enqueue(
        ScriptedReply(content="late", delay_before_headers=2),
        ScriptedReply(content="next"),
    )
    async with ConnectionPool() as pool, client_of(mock, pool, max_retries=0) as client:
        with anyio.move_on_after(0.2) as scope:
            await client.chat().user("hi").execute()
        assert scope.cancelled_caught
        assert client.current_inflight == 0
        assert (await client.chat().user("hi").execute()).content == "next"


async def test_the_builder_lends_a_pool(mock: MockProvider) -> None:
    async with ConnectionPool(PoolConfig.low_latency()) as pool:
        builder = (
            ClientBuilder()
            .model("openai/gpt-4o")
            .api_key(KEY)
            .base_url(mock.openai_base_url)
            .with_pool(pool)
        )
        assert builder.config.pool is pool
        async with builder.open() as client:
            await client.chat().user("hi").execute()
        assert pool.get_stats()["openai"].requests_served == 1
