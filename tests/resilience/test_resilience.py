"""Resilience end to end, against the loopback mock provider's fault injection, on asyncio
and trio: retries, the circuit breaker, the rate limiter, backpressure, fallback, hedging
and deadlines.

Under trio the clock is virtual (``MockClock``): it jumps to the next deadline once every
task has been idle for a moment of real time, so a 30 s cooldown costs nothing. Loopback
I/O answers far sooner than that moment, so only sleeps and deadlines are skipped. Under
asyncio, which has no virtual clock, the waits are real and kept short; bounds are
generous either way. After every scenario no task, connection or in-flight slot is left.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator

import anyio
import pytest
import trio.testing

from ailib_anyio import (
    AuthenticationError,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
    ClientBuilder,
    ConfigurationError,
    ContentDelta,
    DeadlineExceededError,
    Deadlines,
    FirstTokenTimeoutError,
    HedgeConfig,
    IdleTimeoutError,
    InvalidRequestError,
    PreflightChecker,
    RateLimitedError,
    RateLimiterConfig,
    RetryConfig,
    ServerError,
    TransportError,
    open_client,
)
from ailib_anyio._client._client import Client
from ailib_anyio._services._embeddings import EmbeddingClient
from ailib_anyio.testing import MockProvider, Reply, ScriptedReply

pytestmark = pytest.mark.anyio

KEY = "sk-test-secret-123"


@pytest.fixture(
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param(
            ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0.05)}), id="trio"
        ),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> object:
    return request.param


def virtual(anyio_backend: object) -> bool:
    return isinstance(anyio_backend, tuple)


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    before = len(anyio.get_running_tasks())
    async with MockProvider() as server:
        yield server
        # Every client has left its block: no connection may still be open at the server.
        with anyio.fail_after(5):
            while server.open_connections:  # noqa: ASYNC110 - the mock offers no event for this
                await anyio.sleep(0.01)
    assert len(anyio.get_running_tasks()) == before  # nothing outlives the scenario


def client_for(mock: MockProvider, model: str = "openai/gpt-4o", **kw: object) -> Client:
    return open_client(model, api_key=KEY, base_url=mock.openai_base_url, **kw)  # type: ignore[arg-type]


def target(mock: MockProvider, model: str = "openai/gpt-4o-mini", **kw: object) -> Client:
    """A fallback target served by the same mock."""
    return Client(model, api_key=KEY, base_url=mock.openai_base_url, **kw)  # type: ignore[arg-type]


def pool_connections(client: Client) -> int:
    assert client.primary.transport is not None
    pool = client.primary.transport.client._transport._pool  # type: ignore[attr-defined]
    return len(pool.connections)


async def assert_clean(mock: MockProvider, client: Client) -> None:
    """No in-flight slot, no pooled connection the server still has open."""
    assert client.current_inflight == 0
    with anyio.fail_after(5):
        while mock.active_requests:  # noqa: ASYNC110 - the mock offers no event for this
            await anyio.sleep(0.01)


FAST_RETRY = RetryConfig(max_retries=3, min_delay=0.01, max_delay=0.05)


# ------------------------------------------------------------------ retry


async def test_429_with_retry_after_waits_then_succeeds(
    mock: MockProvider, anyio_backend: object
) -> None:
    mock.enqueue(
        Reply.error(429, "Rate limit reached", type="requests", headers={"retry-after": "2"}),
        ScriptedReply(content="ok"),
    )
    async with client_for(mock, retry=FAST_RETRY) as client:
        start = anyio.current_time()
        reply = await client.chat().user("hi").execute()
        waited = anyio.current_time() - start
        await assert_clean(mock, client)
        assert client.get_resilience_stats().retries == 1
    assert reply.content == "ok"
    assert len(mock.requests) == 2
    assert 2.0 <= waited < 10  # the provider's 2 s, not the 0.01 s backoff


async def test_retry_after_beyond_the_cap_fails_fast(mock: MockProvider) -> None:
    mock.enqueue(Reply.error(429, "Slow down", headers={"retry-after": "107"}))
    config = RetryConfig(max_retries=3, min_delay=0.01, max_delay=0.05, max_retry_after=30)
    async with client_for(mock, retry=config) as client:
        start = anyio.current_time()
        with pytest.raises(RateLimitedError) as info:
            await client.chat().user("hi").execute()
        assert anyio.current_time() - start < 5  # neither 107 s nor the 30 s cap
        await assert_clean(mock, client)
    assert info.value.retry_after == 107
    assert len(mock.requests) == 1
    assert info.value.attempts == (info.value,)


async def test_manifest_retry_policy_is_the_default_and_max_retries_overrides(
    mock: MockProvider,
) -> None:
    async with client_for(mock) as client:
        policy = client.primary.guard.retry
        assert policy is not None and policy.config.max_retries == 2  # protocols/openai.yaml
    async with client_for(mock, max_retries=0) as client:
        assert client.primary.guard.retry is None
        mock.enqueue(Reply.error(500, "boom", type="server_error"))
        with pytest.raises(ServerError):
            await client.chat().user("hi").execute()
    assert len(mock.requests) == 1


async def test_retries_exhausted_error_carries_every_attempt(mock: MockProvider) -> None:
    mock.enqueue(*[Reply.error(500, f"down {i}", type="server_error") for i in range(4)])
    async with client_for(mock, retry=FAST_RETRY) as client:
        with pytest.raises(ServerError) as info:
            await client.chat().user("hi").execute()
        await assert_clean(mock, client)
    assert len(mock.requests) == 4
    assert [e.message for e in info.value.attempts] == [f"server_error: down {i}" for i in range(4)]


async def test_invalid_request_is_not_retried(mock: MockProvider) -> None:
    mock.enqueue(Reply.error(400, "bad"))
    async with client_for(mock, retry=FAST_RETRY) as client:
        with pytest.raises(InvalidRequestError):
            await client.chat().user("hi").execute()
    assert len(mock.requests) == 1


async def test_stream_retries_before_the_first_event(mock: MockProvider) -> None:
    mock.enqueue(
        Reply.error(503, "down", type="server_error"),
        ScriptedReply(content="a b c", chunk_size=2, close_after_bytes=0),  # cut before data
        ScriptedReply(content="hello", chunk_size=2),
    )
    async with client_for(mock, retry=FAST_RETRY) as client:
        async with client.chat().user("hi").stream() as stream:
            text = "".join([e.text async for e in stream if isinstance(e, ContentDelta)])
        await assert_clean(mock, client)
    assert text == "hello"
    assert len(mock.requests) == 3


async def test_stream_never_retries_after_the_first_event(mock: MockProvider) -> None:
    mock.enqueue(ScriptedReply(content="x" * 400, chunk_size=4, close_after_bytes=1500))
    async with client_for(mock, retry=FAST_RETRY, fallbacks=[target(mock)]) as client:
        seen: list[str] = []
        with pytest.raises(TransportError) as info:
            async with client.chat().user("hi").stream() as stream:
                async for event in stream:
                    if isinstance(event, ContentDelta):
                        seen.append(event.text)
        await assert_clean(mock, client)
    assert seen and info.value.response is not None
    assert info.value.response.content == "".join(seen)
    assert len(mock.requests) == 1  # no retry, no fallback once text was delivered


# ------------------------------------------------------------------ circuit breaker


async def test_5xx_storm_opens_the_circuit_and_it_recovers(
    mock: MockProvider, anyio_backend: object
) -> None:
    cooldown = 30.0 if virtual(anyio_backend) else 0.3
    breaker = CircuitBreakerConfig(failure_threshold=3, cooldown_seconds=cooldown)
    mock.enqueue(*[Reply.error(500, "boom", type="server_error") for _ in range(3)])
    async with client_for(mock, max_retries=0, circuit_breaker=breaker) as client:
        for _ in range(3):
            with pytest.raises(ServerError):
                await client.chat().user("hi").execute()
        with pytest.raises(CircuitOpenError) as info:
            await client.chat().user("hi").execute()
        assert len(mock.requests) == 3  # failed fast: no request
        assert info.value.fallbackable and not info.value.retryable
        assert 0 < (info.value.retry_after or 0) <= cooldown + 1e-6
        stats = client.get_resilience_stats()
        assert stats.circuits["openai/gpt-4o"].state.value == "open"
        await anyio.sleep(cooldown)
        mock.enqueue(ScriptedReply(content="back"))
        reply = await client.chat().user("hi").execute()  # the half-open probe
        assert reply.content == "back"
        assert client.get_resilience_stats().circuits["openai/gpt-4o"].state.value == "closed"
        await assert_clean(mock, client)


async def test_failed_probe_reopens_the_circuit(mock: MockProvider, anyio_backend: object) -> None:
    cooldown = 30.0 if virtual(anyio_backend) else 0.3
    breaker = CircuitBreakerConfig(failure_threshold=1, cooldown_seconds=cooldown)
    mock.enqueue(*[Reply.error(502, "bad gateway", type="server_error") for _ in range(2)])
    async with client_for(mock, max_retries=0, circuit_breaker=breaker) as client:
        with pytest.raises(ServerError):
            await client.chat().user("hi").execute()
        await anyio.sleep(cooldown)
        with pytest.raises(ServerError):
            await client.chat().user("hi").execute()  # probe fails
        with pytest.raises(CircuitOpenError):
            await client.chat().user("hi").execute()
    assert len(mock.requests) == 2


async def test_caller_errors_never_open_the_circuit(mock: MockProvider) -> None:
    breaker = CircuitBreakerConfig(failure_threshold=2, cooldown_seconds=60)
    mock.enqueue(
        *[Reply.error(401, "bad key", type="invalid_request_error", code="invalid_api_key")] * 2,
        *[Reply.error(400, "bad request")] * 2,
        ScriptedReply(content="fine"),
    )
    async with client_for(mock, max_retries=0, circuit_breaker=breaker) as client:
        expected = [AuthenticationError] * 2 + [InvalidRequestError] * 2
        for cls in expected:
            with pytest.raises(cls):
                await client.chat().user("hi").execute()
        assert (await client.chat().user("hi").execute()).content == "fine"
        assert client.get_resilience_stats().circuits["openai/gpt-4o"].times_opened == 0


# ------------------------------------------------------------------ rate limit, backpressure


async def test_rate_limiter_paces_requests(mock: MockProvider, anyio_backend: object) -> None:
    rps = 2.0 if virtual(anyio_backend) else 20.0
    limit = RateLimiterConfig.from_rps(rps, burst=1)
    async with client_for(mock, max_retries=0, rate_limit=limit) as client:
        start = anyio.current_time()
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(client.chat().user("hi").execute)
        elapsed = anyio.current_time() - start
        stats = client.get_resilience_stats().rate_limiters["openai/gpt-4o"]
        assert stats.waiting == 0
    assert len(mock.requests) == 5
    assert elapsed >= 4 / rps * 0.95  # the burst of 1 goes at once, 4 more at rps


async def test_a_429_slows_the_limiter_down(mock: MockProvider, anyio_backend: object) -> None:
    wait = 3 if virtual(anyio_backend) else 1
    limit = RateLimiterConfig.from_rps(100)
    mock.enqueue(Reply.error(429, "slow down", headers={"retry-after": str(wait)}))
    async with client_for(mock, max_retries=0, rate_limit=limit) as client:
        with pytest.raises(RateLimitedError):
            await client.chat().user("hi").execute()
        start = anyio.current_time()
        await client.chat().user("hi").execute()
        assert anyio.current_time() - start >= wait * 0.95


async def test_1000_requests_never_exceed_max_inflight(mock: MockProvider) -> None:
    async with client_for(mock, max_inflight=10, max_retries=0) as client:
        async with anyio.create_task_group() as tg:
            for _ in range(1000):
                tg.start_soon(client.chat().user("hi").execute)
        await assert_clean(mock, client)
        assert pool_connections(client) <= 10
    assert len(mock.requests) == 1000
    assert mock.max_active_requests <= 10


# ------------------------------------------------------------------ fallback


async def test_fallback_on_overload_then_answers(mock: MockProvider) -> None:
    mock.enqueue(Reply.error(503, "overloaded", type="server_error"), ScriptedReply(content="b"))
    async with client_for(mock, max_retries=0, fallbacks=[target(mock)]) as client:
        reply = await client.chat().user("hi").execute()
        assert client.get_resilience_stats().fallbacks == 1
    assert reply.content == "b" and reply.model == "gpt-4o-mini"
    assert [r.json["model"] for r in mock.requests] == ["gpt-4o", "gpt-4o-mini"]


async def test_auth_failure_falls_back_invalid_request_does_not(mock: MockProvider) -> None:
    mock.enqueue(
        Reply.error(401, "bad key", code="invalid_api_key"),
        ScriptedReply(content="other provider"),
        Reply.error(400, "bad"),
    )
    async with client_for(mock, max_retries=0, fallbacks=[target(mock)]) as client:
        assert (await client.chat().user("hi").execute()).content == "other provider"
        with pytest.raises(InvalidRequestError):
            await client.chat().user("hi").execute()
    assert len(mock.requests) == 3


async def test_stream_falls_back_before_the_first_event(mock: MockProvider) -> None:
    mock.enqueue(Reply.error(500, "boom", type="server_error"), ScriptedReply(content="fb"))
    async with client_for(mock, max_retries=0, fallbacks=[target(mock)]) as client:
        async with client.chat().user("hi").stream() as stream:
            text = "".join([e.text async for e in stream if isinstance(e, ContentDelta)])
            assert (stream.provider, stream.model) == ("openai", "gpt-4o-mini")
        await assert_clean(mock, client)
    assert text == "fb"


async def test_exhausted_chain_raises_the_last_error_with_all_attempts(
    mock: MockProvider,
) -> None:
    mock.enqueue(
        Reply.error(500, "first", type="server_error"),
        Reply.error(502, "second", type="server_error"),
        Reply.error(429, "third"),
    )
    fallbacks = [target(mock, max_retries=0), target(mock, "openai/gpt-4.1", max_retries=0)]
    async with client_for(mock, max_retries=0, fallbacks=fallbacks) as client:
        with pytest.raises(RateLimitedError) as info:
            await client.chat().user("hi").execute()
    attempts = info.value.attempts
    assert [type(e) for e in attempts] == [ServerError, ServerError, RateLimitedError]
    assert [e.model for e in attempts] == ["gpt-4o", "gpt-4o-mini", "gpt-4.1"]
    assert attempts[-1] is info.value


# ------------------------------------------------------------------ hedging


async def test_hedge_returns_the_fast_answer_and_cancels_the_slow(mock: MockProvider) -> None:
    mock.enqueue(
        ScriptedReply(content="slow", delay_before_headers=30), ScriptedReply(content="fast")
    )
    async with client_for(
        mock, max_retries=0, fallbacks=[target(mock)], hedge=HedgeConfig(delay=0.2)
    ) as client:
        reply = await client.chat().user("hi").execute()
        with anyio.fail_after(5):
            await mock.requests[0].wait_disconnected()
        await assert_clean(mock, client)
        assert client.get_resilience_stats().hedges == 1
    assert reply.content == "fast"
    assert mock.requests[0].client_disconnected and not mock.requests[0].completed


async def test_hedged_stream_first_event_wins(mock: MockProvider) -> None:
    mock.enqueue(
        ScriptedReply(content="slow", delay_before_headers=30),
        ScriptedReply(content="fast stream", chunk_size=3),
    )
    async with client_for(
        mock, max_retries=0, fallbacks=[target(mock)], hedge=HedgeConfig(delay=0.1)
    ) as client:
        async with client.chat().user("hi").stream() as stream:
            text = "".join([e.text async for e in stream if isinstance(e, ContentDelta)])
        with anyio.fail_after(5):
            await mock.requests[0].wait_disconnected()
        await assert_clean(mock, client)
    assert text == "fast stream"


async def test_hedge_not_started_when_the_first_target_is_fast(mock: MockProvider) -> None:
    async with client_for(
        mock, max_retries=0, fallbacks=[target(mock)], hedge=HedgeConfig(delay=5)
    ) as client:
        await client.chat().user("hi").execute()
        assert client.get_resilience_stats().hedges == 0
    assert len(mock.requests) == 1


# ------------------------------------------------------------------ deadlines


async def test_total_deadline(mock: MockProvider) -> None:
    mock.enqueue(ScriptedReply(content="late", delay_before_headers=30))
    async with client_for(mock, max_retries=0, deadlines=Deadlines(total=0.5)) as client:
        with pytest.raises(DeadlineExceededError) as info:
            await client.chat().user("hi").execute()
        with anyio.fail_after(5):
            await mock.requests[0].wait_disconnected()
        await assert_clean(mock, client)
    assert not info.value.retryable


async def test_first_token_timeout_then_retry_succeeds(mock: MockProvider) -> None:
    mock.enqueue(
        ScriptedReply(content="late", delay_before_headers=30), ScriptedReply(content="ok")
    )
    deadlines = Deadlines(first_token=0.5)
    async with client_for(mock, retry=FAST_RETRY, deadlines=deadlines) as client:
        async with client.chat().user("hi").stream() as stream:
            text = "".join([e.text async for e in stream if isinstance(e, ContentDelta)])
        await assert_clean(mock, client)
    assert text == "ok"
    assert mock.requests[0].client_disconnected


async def test_first_token_timeout_error(mock: MockProvider) -> None:
    mock.enqueue(ScriptedReply(content="late", delay_before_headers=30))
    async with client_for(mock, max_retries=0, deadlines=Deadlines(first_token=0.3)) as client:
        with pytest.raises(FirstTokenTimeoutError) as info:
            async with client.chat().user("hi").stream():
                pass
        await assert_clean(mock, client)
    assert info.value.provider == "openai"


async def test_idle_timeout_keeps_the_partial_response(mock: MockProvider) -> None:
    mock.enqueue(ScriptedReply(content="abcdefghijklmnop", chunk_size=2, stall_after_bytes=700))
    async with client_for(mock, max_retries=0, deadlines=Deadlines(idle=0.5)) as client:
        seen = []
        with pytest.raises(IdleTimeoutError) as info:
            async with client.chat().user("hi").stream() as stream:
                async for event in stream:
                    if isinstance(event, ContentDelta):
                        seen.append(event.text)
        await assert_clean(mock, client)
    assert seen
    assert info.value.response is not None and info.value.response.content == "".join(seen)


async def test_callers_deadline_is_never_converted(mock: MockProvider) -> None:
    mock.enqueue(ScriptedReply(content="late", delay_before_headers=30))
    deadlines = Deadlines(total=20, first_token=20, idle=20)
    async with client_for(mock, retry=FAST_RETRY, deadlines=deadlines) as client:
        with pytest.raises(builtins.TimeoutError) as info:
            with anyio.fail_after(0.5):
                async with client.chat().user("hi").stream():
                    pass
        assert type(info.value) is builtins.TimeoutError  # anyio's, not a library error
        await assert_clean(mock, client)
    assert len(mock.requests) == 1


async def test_backoff_that_would_outlive_the_deadline_is_not_slept(mock: MockProvider) -> None:
    mock.enqueue(Reply.error(429, "wait", headers={"retry-after": "10"}))
    config = RetryConfig(max_retries=3, min_delay=0.01, max_delay=0.05, max_retry_after=60)
    async with client_for(mock, retry=config, deadlines=Deadlines(total=5)) as client:
        start = anyio.current_time()
        with pytest.raises(RateLimitedError):
            await client.chat().user("hi").execute()
        assert anyio.current_time() - start < 4
    assert len(mock.requests) == 1


# ------------------------------------------------------------------ composition


async def test_open_circuit_falls_back_at_once(mock: MockProvider) -> None:
    breaker = CircuitBreakerConfig(failure_threshold=1, cooldown_seconds=60)
    mock.enqueue(Reply.error(500, "boom", type="server_error"), ScriptedReply(content="fb 1"))
    async with client_for(
        mock, max_retries=0, circuit_breaker=breaker, fallbacks=[target(mock)]
    ) as client:
        assert (await client.chat().user("hi").execute()).content == "fb 1"
        mock.enqueue(ScriptedReply(content="fb 2"))
        reply = await client.chat().user("hi").execute()  # primary's circuit is open
        assert client.circuit_state is CircuitState.OPEN
    assert reply.content == "fb 2"
    assert [r.json["model"] for r in mock.requests] == ["gpt-4o", "gpt-4o-mini", "gpt-4o-mini"]


async def test_local_limiter_refusal_is_not_a_provider_429(mock: MockProvider) -> None:
    limit = RateLimiterConfig(requests_per_minute=1, max_wait=5)
    async with client_for(mock, max_retries=0, rate_limit=limit) as client:
        await client.chat().user("hi").execute()
        with pytest.raises(RateLimitedError, match="local rate limiter") as info:
            await client.chat().user("hi").execute()
        stats = client.get_resilience_stats().rate_limiters["openai/gpt-4o"]
    assert info.value.status_code is None and not info.value.retryable
    assert stats.blocked_for == 0  # the refusal did not penalize the limiter itself
    assert len(mock.requests) == 1


async def test_signals_snapshot(mock: MockProvider) -> None:
    headers = {"x-ratelimit-remaining-requests": "99", "x-ratelimit-limit-requests": "100"}
    mock.enqueue(ScriptedReply(content="ok", headers=headers))
    async with client_for(
        mock,
        max_inflight=4,
        circuit_breaker=CircuitBreakerConfig(),
        rate_limit=RateLimiterConfig.from_rps(10),
        fallbacks=[target(mock, circuit_breaker=CircuitBreakerConfig())],
    ) as client:
        await client.chat().user("hi").execute()
        stats = client.get_resilience_stats()
    assert stats.inflight == 0 and stats.max_inflight == 4
    assert set(stats.circuits) == {"openai/gpt-4o", "openai/gpt-4o-mini"}
    assert stats.circuits["openai/gpt-4o"].state is CircuitState.CLOSED
    assert set(stats.rate_limiters) == {"openai/gpt-4o"}
    limits = stats.last_rate_limits["openai/gpt-4o"]
    assert (limits.requests_remaining, limits.requests_limit) == (99, 100)
    assert (stats.retries, stats.fallbacks, stats.hedges) == (0, 0, 0)


async def test_preflight_before_any_io(mock: MockProvider, anyio_backend: object) -> None:
    cooldown = 30.0 if virtual(anyio_backend) else 0.3
    breaker = CircuitBreakerConfig(failure_threshold=1, cooldown_seconds=cooldown)
    mock.enqueue(Reply.error(500, "boom", type="server_error"))
    async with client_for(mock, max_retries=0, circuit_breaker=breaker) as client:
        checker = PreflightChecker(client)
        request = client.chat().user("hi").temperature(3.5)
        assert [i.check for i in checker.issues(request)] == ["parameter"]
        with pytest.raises(InvalidRequestError, match="temperature"):
            checker.check(request)
        with pytest.raises(ServerError):
            await client.chat().user("hi").execute()
        issues = checker.issues(client.chat().user("hi"))
        assert [i.check for i in issues] == ["circuit"]
        assert isinstance(issues[0].error, CircuitOpenError)
        await anyio.sleep(cooldown)
        assert checker.issues(client.chat().user("hi")) == []
    assert len(mock.requests) == 1


async def test_client_builder_production_ready(mock: MockProvider) -> None:
    mock.enqueue(Reply.error(503, "overloaded", type="server_error"), ScriptedReply(content="b"))
    builder = (
        ClientBuilder()
        .model("openai/gpt-4o")
        .api_key(KEY)
        .base_url(mock.openai_base_url)
        .production_ready()
        .max_retries(0)
        .with_fallbacks([target(mock)])
        .max_inflight(20)
    )
    async with builder.open() as client:
        reply = await client.chat().user("hi").execute()
        stats = client.get_resilience_stats()
        assert client.circuit_state is CircuitState.CLOSED
    assert reply.content == "b"
    assert stats.max_inflight == 20  # set explicitly: production_ready does not override it
    assert "openai/gpt-4o" in stats.circuits and "openai/gpt-4o" in stats.rate_limiters
    assert client.calls.deadlines.total is not None


def test_configuration_errors() -> None:
    for kwargs, message in [
        ({"max_retries": -1}, "max_retries"),
        ({"hedge": 0.5}, "hedge must be a HedgeConfig"),
        ({"deadlines": 3}, "deadlines must be a Deadlines"),
        ({"circuit_breaker": {"failure_threshold": 3}}, "circuit_breaker must be"),
        ({"fallbacks": [42]}, "fallbacks must be"),
    ]:
        with pytest.raises(ConfigurationError, match=message):
            open_client("openai/gpt-4o", api_key=KEY, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"Deadlines\.idle"):
        Deadlines(idle=-1)
    with pytest.raises(ConfigurationError, match=r"HedgeConfig\.delay"):
        HedgeConfig(delay=float("nan"))
    with pytest.raises(ConfigurationError, match="model"):
        ClientBuilder().build()


async def test_embeddings_retry_but_never_fall_back(mock: MockProvider) -> None:
    mock.enqueue(
        Reply.error(500, "boom", type="server_error"),
        Reply.json({"data": [{"embedding": [0.5, -1.0]}], "usage": {"prompt_tokens": 2}}),
    )
    async with client_for(
        mock, "openai/text-embedding-3-small", retry=FAST_RETRY, fallbacks=[target(mock)]
    ) as client:
        result = await EmbeddingClient(client).embed("hi")
    assert result.vectors == [[0.5, -1.0]]
    assert [r.json["model"] for r in mock.requests] == ["text-embedding-3-small"] * 2
