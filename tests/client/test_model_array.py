"""Model arrays end to end: ``open_client(ModelArray(...))`` against the loopback mock
provider, on asyncio and trio. Which endpoint took a call is read from what the server
received (each endpoint is another model id, or another server). After every scenario
no task, connection or in-flight slot is left."""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator

import anyio
import pytest

from ailib_anyio import (
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
    ClientBuilder,
    ConfigurationError,
    HedgeConfig,
    open_client,
)
from ailib_anyio.routing import (
    LoadBalancingStrategy,
    ModelArray,
    ModelEndpoint,
)
from ailib_anyio.testing import MockProvider, Reply, ScriptedReply

pytestmark = pytest.mark.anyio

KEY = "sk-array-test-key-000"
A, B, C = "openai/gpt-4o", "openai/gpt-4o-mini", "openai/gpt-4.1"


async def settled(*servers: MockProvider) -> None:
    """Every connection the clients opened is closed at the servers."""
    with anyio.fail_after(5):
        while any(s.open_connections for s in servers):  # noqa: ASYNC110 - no event for it
            await anyio.sleep(0.01)


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    before = len(anyio.get_running_tasks())
    async with MockProvider() as server:
        yield server
        await settled(server)
    assert len(anyio.get_running_tasks()) == before  # nothing outlives the scenario


@pytest.fixture
async def other() -> AsyncIterator[MockProvider]:
    """A second server: a separate deployment of the same models."""
    async with MockProvider() as server:
        yield server
        await settled(server)


def models(server: MockProvider) -> list[str]:
    return [f"openai/{r.json['model']}" for r in server.requests]


def counts(server: MockProvider) -> dict[str, int]:
    return dict(collections.Counter(models(server)))


async def test_round_robin_spreads_calls_evenly(mock: MockProvider) -> None:
    array = ModelArray([A, B, C])
    async with open_client(array, api_key=KEY, base_url=mock.openai_base_url) as client:
        for n in range(30):
            if n % 2:
                reply = await client.chat().user("hi").execute()
                assert reply.content == "Mock reply to: hi"
            else:
                async with client.chat().user("hi").stream() as stream:
                    async for _ in stream:
                        pass
                assert f"openai/{stream.model}" == models(mock)[-1]
        stats = client.router.snapshot()  # type: ignore[union-attr]
    assert models(mock)[:6] == [A, B, C, A, B, C]
    assert counts(mock) == {A: 10, B: 10, C: 10}
    assert [(s.name, s.picks, s.inflight) for s in stats] == [(A, 10, 0), (B, 10, 0), (C, 10, 0)]
    assert all(s.duration is not None and s.time_to_first_token is not None for s in stats)


async def test_weighted_shares_over_a_thousand_calls(mock: MockProvider) -> None:
    array = ModelArray({A: 3, B: 1}, strategy="weighted")
    async with open_client(array, api_key=KEY, base_url=mock.openai_base_url) as client:
        result = await client.batch(
            [client.chat().user("hi") for _ in range(1000)], max_concurrent=25
        )
    assert result.failed_count == 0
    found = counts(mock)
    # the stated tolerance: 2% of the calls (smooth weighted round robin is exact: 750/250)
    assert abs(found[A] - 750) <= 20 and abs(found[B] - 250) <= 20
    assert found[A] + found[B] == 1000


async def test_least_inflight_under_concurrency(mock: MockProvider) -> None:
    array = ModelArray([A, B, C], strategy=LoadBalancingStrategy.LEAST_INFLIGHT)
    async with open_client(array, api_key=KEY, base_url=mock.openai_base_url) as client:
        router = client.router
        assert router is not None
        held: list[tuple[str, anyio.Event, anyio.Event]] = []  # (model, release, closed)

        async def hold(*, task_status: anyio.abc.TaskStatus[None]) -> None:
            release, closed = anyio.Event(), anyio.Event()
            async with client.chat().user("hold").stream() as stream:
                held.append((f"openai/{stream.model}", release, closed))
                task_status.started()
                await release.wait()
            closed.set()

        async def burst(calls: int) -> list[str]:
            before = len(mock.requests)
            async with anyio.create_task_group() as tg:
                for _ in range(calls):
                    tg.start_soon(client.chat().user("now").execute)
            return models(mock)[before:]

        async with anyio.create_task_group() as tg:
            for _ in range(4):  # each opened while the ones before it stay open
                await tg.start(hold)
            assert [m for m, _, _ in held] == [A, B, C, A]  # the fewest in flight; equals alternate
            assert [s.inflight for s in router.snapshot()] == [2, 1, 1]
            # close A's two streams: a burst of concurrent calls then all go to A, each
            # routed before any of them was in flight (A had 0, the others 1)
            for model, release, closed in held:
                if model == A:
                    release.set()
                    await closed.wait()
            assert [s.inflight for s in router.snapshot()] == [0, 1, 1]
            assert await burst(5) == [A] * 5
            # more streams go to the least loaded (equals in turn), until all hold two...
            for _ in range(4):
                await tg.start(hold)
            assert [m for m, _, _ in held[4:]] == [A, B, C, A]
            assert [s.inflight for s in router.snapshot()] == [2, 2, 2]
            # ...when a burst spreads evenly
            assert sorted(await burst(6)) == sorted([A, A, B, B, C, C])
            for _, release, _ in held:
                release.set()
        assert [s.inflight for s in router.snapshot()] == [0, 0, 0]
        assert client.current_inflight == 0


async def test_an_endpoint_with_an_open_circuit_is_skipped(mock: MockProvider) -> None:
    mock.enqueue(Reply.error(500, "boom", type="server_error"))
    breaker = CircuitBreakerConfig(failure_threshold=1, cooldown_seconds=600)
    array = ModelArray([A, B])
    async with open_client(
        array, api_key=KEY, base_url=mock.openai_base_url, circuit_breaker=breaker, max_retries=0
    ) as client:
        for _ in range(7):
            reply = await client.chat().user("hi").execute()
            assert reply.model == "gpt-4o-mini"
        stats = client.router.snapshot()  # type: ignore[union-attr]
        assert client.get_resilience_stats().fallbacks == 1
    # A failed once (its circuit opened), B answered that call as its fallback, then every
    # call went to B: A was never tried again, not even to fail fast
    assert models(mock) == [A] + [B] * 7
    assert [(s.circuit, s.eligible, s.picks) for s in stats] == [
        (CircuitState.OPEN, False, 1),
        (CircuitState.CLOSED, True, 6),
    ]


async def test_a_failing_endpoint_moves_traffic_to_the_healthy_ones(
    mock: MockProvider, other: MockProvider
) -> None:
    # "bad" is another deployment of gpt-4o whose every answer is a 503 or a reset
    other.enqueue(*[Reply.error(503, "overloaded", type="server_error")] * 10)
    bad = open_client(
        A,
        api_key=KEY,
        base_url=other.openai_base_url,
        max_retries=0,
        circuit_breaker=CircuitBreakerConfig(failure_threshold=3, cooldown_seconds=600),
    )
    array = ModelArray([ModelEndpoint(bad, name="bad"), A, B])
    async with open_client(array, api_key=KEY, base_url=mock.openai_base_url) as client:
        for n in range(12):
            if n % 2:
                reply = await client.chat().user("hi").execute()
                assert reply.content == "Mock reply to: hi"
            else:
                async with client.chat().user("hi").stream() as stream:
                    text = "".join([e.text async for e in stream if hasattr(e, "text")])
                assert text == "Mock reply to: hi"
        stats = {s.name: s for s in client.router.snapshot()}  # type: ignore[union-attr]
    # every call succeeded; "bad" went first for one call in three until its circuit
    # opened after 3 failures, each of those calls falling back to the next endpoint (A);
    # then the calls alternated between A and B
    assert len(other.requests) == 3
    assert stats["bad"].circuit is CircuitState.OPEN
    assert [s.inflight for s in stats.values()] == [0, 0, 0]
    assert models(mock) == [A, A, B, A, A, B, A, A, B, A, B, A]


async def test_a_health_check_takes_an_endpoint_out(mock: MockProvider) -> None:
    down = {B}
    array = ModelArray([A, B, C], health=lambda name: False if name in down else None)
    async with open_client(array, api_key=KEY, base_url=mock.openai_base_url) as client:
        for _ in range(6):
            await client.chat().user("hi").execute()
        assert counts(mock) == {A: 3, C: 3}
        assert [s.healthy for s in client.router.snapshot()] == [None, False, None]  # type: ignore[union-attr]
        down.update({A, C})  # every endpoint down: all are tried anyway, in turn
        await client.chat().user("hi").execute()
        down.clear()
        for _ in range(3):
            await client.chat().user("hi").execute()
    assert len(mock.requests) == 10


async def test_every_circuit_open_fails_fast_without_a_request(mock: MockProvider) -> None:
    breaker = CircuitBreakerConfig(failure_threshold=1, cooldown_seconds=600)
    async with open_client(
        ModelArray([A, B]), api_key=KEY, base_url=mock.openai_base_url, circuit_breaker=breaker
    ) as client:
        now = anyio.current_time()
        for target in client.targets:
            assert target.guard.breaker is not None
            target.guard.breaker.record_failure(target.guard.breaker.admit(now), now)
        with pytest.raises(CircuitOpenError) as info:
            await client.chat().user("hi").execute()
    assert mock.requests == []
    assert [type(e) for e in info.value.attempts] == [CircuitOpenError, CircuitOpenError]


async def test_lowest_latency_measures_then_prefers_the_fastest(
    mock: MockProvider, other: MockProvider
) -> None:
    other.enqueue(*[ScriptedReply(content="slow", delay_before_headers=0.3)] * 3)
    slow = open_client(A, api_key=KEY, base_url=other.openai_base_url)
    array = ModelArray([ModelEndpoint(slow, name="slow"), A], strategy="lowest_latency")
    async with open_client(array, api_key=KEY, base_url=mock.openai_base_url) as client:
        for _ in range(8):
            await client.chat().user("hi").execute()
        slow_stats, fast_stats = client.router.snapshot()  # type: ignore[union-attr]
    assert len(other.requests) == 1  # measured once, then left alone
    assert len(mock.requests) == 7
    assert slow_stats.duration is not None and fast_stats.duration is not None
    assert slow_stats.duration >= 0.3 > fast_stats.duration


async def test_hedging_races_the_next_endpoint(mock: MockProvider, other: MockProvider) -> None:
    other.enqueue(ScriptedReply(content="slow", delay_before_headers=10))
    slow = open_client(A, api_key=KEY, base_url=other.openai_base_url)
    array = ModelArray([ModelEndpoint(slow, name="slow"), A])
    async with open_client(
        array, api_key=KEY, base_url=mock.openai_base_url, hedge=HedgeConfig(delay=0.05)
    ) as client:
        with anyio.fail_after(5):
            async with client.chat().user("hi").stream() as stream:
                text = "".join([e.text async for e in stream if hasattr(e, "text")])
        assert text == "Mock reply to: hi"
        assert client.get_resilience_stats().hedges == 1
        assert [s.inflight for s in client.router.snapshot()] == [0, 0]  # type: ignore[union-attr]
    # the slow endpoint was asked first, then hung up on when the hedge won
    with anyio.fail_after(5):
        await other.requests[0].wait_finished()
    assert other.requests[0].client_disconnected


async def test_the_clients_fallbacks_come_after_the_endpoints(mock: MockProvider) -> None:
    mock.enqueue(*[Reply.error(500, "boom", type="server_error")] * 2)
    fallback = open_client(C, api_key=KEY, base_url=mock.openai_base_url)
    async with open_client(
        ModelArray([A, B]),
        api_key=KEY,
        base_url=mock.openai_base_url,
        max_retries=0,
        fallbacks=[fallback],
    ) as client:
        reply = await client.chat().user("hi").execute()
        assert [t.model_id for t in client.targets] == ["gpt-4o", "gpt-4o-mini", "gpt-4.1"]
    assert reply.model == "gpt-4.1"
    assert models(mock) == [A, B, C]


async def test_the_builder_and_repr(mock: MockProvider) -> None:
    builder = ClientBuilder().model(ModelArray([A, B])).api_key(KEY).base_url(mock.openai_base_url)
    async with builder.open() as client:
        assert (
            repr(client)
            == "<Client ModelArray[openai/gpt-4o, openai/gpt-4o-mini] round_robin open>"
        )
        await client.chat().user("hi").execute()
        await client.chat().user("hi").execute()
    assert models(mock) == [A, B]


async def test_bad_arrays_are_refused_before_any_io(mock: MockProvider) -> None:
    def refused(make: object, message: str) -> None:
        with pytest.raises(ConfigurationError) as info:
            make() if callable(make) else None  # type: ignore[operator]
        assert str(info.value) == message

    refused(lambda: ModelArray([]), "a ModelArray needs at least one endpoint")
    refused(
        lambda: ModelArray([A, A]),
        "two endpoints of the ModelArray are named 'openai/gpt-4o': give them distinct"
        " names (ModelEndpoint(..., name=...))",
    )
    refused(
        lambda: ModelArray({A: 0}),
        "an endpoint's weight must be a finite number > 0, got 0",
    )
    refused(
        lambda: ModelArray([A], strategy="random"),
        "strategy must be a LoadBalancingStrategy or one of 'round_robin', 'weighted',"
        " 'least_inflight', 'lowest_latency', got 'random'",
    )
    refused(
        lambda: ModelArray([42]),
        "a ModelArray endpoint must be a 'provider/model' string or an unopened Client, got 42",
    )
    refused(
        lambda: ModelArray([A], health=True),
        "health must be a callable (endpoint name -> True, False or None), got True",
    )
    refused(
        lambda: open_client(ModelArray([A, "anthropic/claude-sonnet-5-5"]), api_key=KEY),
        "the ModelArray's 'provider/model' endpoints share the client's api_key, base_url"
        " and headers, but they are of several providers (anthropic, openai): give one"
        " provider's endpoints their own settings as unopened clients"
        " (ModelEndpoint(open_client('provider/model', api_key=...)))",
    )
    chained = open_client(A, api_key=KEY, fallbacks=[open_client(B, api_key=KEY)])
    refused(
        lambda: open_client(ModelArray([chained, B]), api_key=KEY),
        "ModelArray endpoint 'openai/gpt-4o' has fallbacks of its own: give the client"
        " opened from the array its fallbacks",
    )
    async with open_client(A, api_key=KEY, base_url=mock.openai_base_url) as opened:
        refused(
            lambda: open_client(ModelArray([opened, B]), api_key=KEY),
            "ModelArray endpoint 'openai/gpt-4o' is already open; pass it unopened",
        )
    refused(
        lambda: ClientBuilder().model(42),  # type: ignore[arg-type]
        "model must be a 'provider/model' string or a ModelArray, got 42",
    )
    assert mock.requests == []
