"""The async rate limiter: pacing, FIFO fairness, cancellation, the provider's signals and
``max_wait``, on asyncio (short real delays, loose bounds) and on trio with a mock clock
(virtual time, exact timestamps)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest
import trio.testing
from anyio.abc import TaskGroup, TaskStatus

from ailib_anyio._core._bucket import RateLimiterConfig
from ailib_anyio._core._errors import RateLimitedError
from ailib_anyio._core._types import RateLimitSnapshot
from ailib_anyio._resilience._ratelimiter import RateLimiter, RateLimiterStats

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_leftover_tasks")]

#: how late a real (asyncio) timer may fire in these tests without failing them
SLACK = 1.0


Backend = str | tuple[str, dict[str, Any]]


@pytest.fixture(params=["asyncio", "trio-mockclock"])
def anyio_backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "asyncio":
        return "asyncio"
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


@pytest.fixture
def virtual(anyio_backend: Backend) -> bool:
    """Whether time is virtual (exact timestamps) rather than real."""
    return anyio_backend != "asyncio"


@pytest.fixture
def second(virtual: bool) -> float:
    """One second of the tests' timelines: a real one would make the asyncio runs slow."""
    return 1.0 if virtual else 0.05


@pytest.fixture
async def no_leftover_tasks() -> AsyncIterator[None]:
    before = len(anyio.get_running_tasks())
    yield
    assert len(anyio.get_running_tasks()) == before


def assert_elapsed(elapsed: float, expected: float, virtual: bool) -> None:
    """Exact in virtual time; in real time never early (the limiter reads the same clock),
    and late by less than SLACK."""
    if virtual:
        assert elapsed == pytest.approx(expected, abs=1e-9)
    else:
        assert expected - 1e-9 <= elapsed <= expected + SLACK


async def queue(tg: TaskGroup, func: Callable[..., Awaitable[object]], *args: object) -> None:
    """Start ``func(*args)`` and return once it has run up to its first wait: for a call of
    ``acquire()``, once it is in the limiter's queue. (``started()`` only reschedules this
    task; the new one runs on until it blocks. ``wait_all_tasks_blocked`` would do too, but
    on asyncio it polls every 0.1 s, which real-time tests cannot afford.)"""

    async def run(*, task_status: TaskStatus[None]) -> None:
        task_status.started()
        await func(*args)

    await tg.start(run)


async def acquire_in_order(limiter: RateLimiter, count: int) -> list[tuple[int, float, float]]:
    """``count`` tasks, each queued before the next starts; (index, seconds since the start,
    seconds acquire() said it waited) in the order they got through."""
    start = anyio.current_time()
    through: list[tuple[int, float, float]] = []

    async def one(index: int) -> None:
        waited = await limiter.acquire()
        through.append((index, anyio.current_time() - start, waited))

    async with anyio.create_task_group() as tg:
        for index in range(count):
            await queue(tg, one, index)
    return through


@pytest.fixture
def made_outside_a_loop() -> RateLimiter:
    limiter = RateLimiter(RateLimiterConfig.from_rps(2))
    assert limiter.stats() == RateLimiterStats(2.0, None, 0.0, 0)
    return limiter


async def test_made_and_inspected_outside_a_loop(
    made_outside_a_loop: RateLimiter, virtual: bool
) -> None:
    assert_elapsed(await made_outside_a_loop.acquire(), 0.0, virtual)
    assert made_outside_a_loop.config == RateLimiterConfig(requests_per_minute=120)


async def test_a_burst_goes_at_once_then_the_rest_is_paced(second: float, virtual: bool) -> None:
    limiter = RateLimiter(RateLimiterConfig.from_rps(2 / second, burst=2))
    through = await acquire_in_order(limiter, 6)
    assert [index for index, _, _ in through] == list(range(6))
    for (_, at, waited), expected in zip(through, [0, 0, 0.5, 1, 1.5, 2], strict=True):
        assert_elapsed(at, expected * second, virtual)
        if virtual:  # in real time each task started a little after `start`
            assert waited == pytest.approx(expected * second, abs=1e-9)


async def test_waiters_are_served_in_arrival_order(second: float, virtual: bool) -> None:
    limiter = RateLimiter(RateLimiterConfig.from_rps(10 / second, burst=1))
    through = await acquire_in_order(limiter, 20)
    assert [index for index, _, _ in through] == list(range(20))
    for index, at, _ in through:
        assert_elapsed(at, index * 0.1 * second, virtual)
    assert limiter.stats().waiting == 0


async def test_stats_count_the_waiting(second: float) -> None:
    limiter = RateLimiter(RateLimiterConfig.from_rps(1 / second, burst=1))
    await limiter.acquire()
    async with anyio.create_task_group() as tg:
        for _ in range(3):
            await queue(tg, limiter.acquire)
        assert limiter.stats().waiting == 3
        tg.cancel_scope.cancel()
    assert limiter.stats().waiting == 0


@pytest.mark.parametrize("position", [0, 1], ids=["head", "queued"])
async def test_a_cancelled_waiter_takes_nothing_and_blocks_no_one(
    second: float, virtual: bool, position: int
) -> None:
    config = RateLimiterConfig(60 / second, tokens_per_minute=1000, burst=1)
    limiter = RateLimiter(config)
    start = anyio.current_time()
    await limiter.acquire()
    cancelled = anyio.CancelScope()
    served: list[float] = []

    async def greedy() -> None:
        with cancelled:
            await limiter.acquire(tokens=900)

    async def patient() -> None:
        await limiter.acquire()
        served.append(anyio.current_time() - start)

    waiters = [patient, patient]
    waiters.insert(position, greedy)
    async with anyio.create_task_group() as tg:
        for waiter in waiters:
            await queue(tg, waiter)
        await anyio.sleep(0.5 * second)
        assert limiter.stats().waiting == 3
        cancelled.cancel()
    assert cancelled.cancelled_caught
    assert_elapsed(served[0], 1.0 * second, virtual)
    assert_elapsed(served[1], 2.0 * second, virtual)  # not 3: greedy left its place
    stats = limiter.stats()
    assert stats.available_tokens == 1000.0  # greedy's 900 were never taken
    assert stats.waiting == 0


async def test_penalize_blocks_for_the_retry_after(second: float, virtual: bool) -> None:
    limiter = RateLimiter(RateLimiterConfig.from_rps(100 / second))
    start = anyio.current_time()
    limiter.penalize(2.0 * second)
    assert limiter.stats().blocked_for <= 2.0 * second
    waited = await limiter.acquire()
    assert_elapsed(anyio.current_time() - start, 2.0 * second, virtual)
    assert waited == pytest.approx(2.0 * second, abs=1e-9 if virtual else SLACK)


async def test_penalize_without_retry_after_waits_one_refill(second: float, virtual: bool) -> None:
    limiter = RateLimiter(RateLimiterConfig.from_rps(1 / second, burst=5))
    start = anyio.current_time()
    limiter.penalize()
    await limiter.acquire()
    assert_elapsed(anyio.current_time() - start, 1.0 * second, virtual)


async def test_observe_remaining_zero_blocks_until_the_reset(second: float, virtual: bool) -> None:
    limiter = RateLimiter(RateLimiterConfig.from_rps(100 / second))
    start = anyio.current_time()
    limiter.observe(RateLimitSnapshot(requests_remaining=0, requests_reset=3.0 * second))
    await limiter.acquire()
    assert_elapsed(anyio.current_time() - start, 3.0 * second, virtual)


async def test_a_block_during_a_wait_extends_it(second: float, virtual: bool) -> None:
    limiter = RateLimiter(RateLimiterConfig.from_rps(1 / second, burst=1))
    start = anyio.current_time()
    await limiter.acquire()
    async with anyio.create_task_group() as tg:
        await queue(tg, limiter.acquire)  # due at 1 s
        await anyio.sleep(0.5 * second)
        limiter.penalize(2.0 * second)  # now due at 2.5 s
    assert_elapsed(anyio.current_time() - start, 2.5 * second, virtual)


async def test_max_wait_fails_fast_and_takes_nothing(second: float, virtual: bool) -> None:
    config = RateLimiterConfig.from_rps(
        1 / second, burst=1, tokens_per_minute=1000, max_wait=0.5 * second
    )
    limiter = RateLimiter(config)
    await limiter.acquire()
    start = anyio.current_time()
    with pytest.raises(RateLimitedError) as info:
        await limiter.acquire(tokens=300)
    assert_elapsed(anyio.current_time() - start, 0.0, virtual)
    error = info.value
    assert error.retryable is False
    assert error.kind == "rate_limited"
    assert error.retry_after is not None
    assert 0.5 * second < error.retry_after <= 1.0 * second
    if virtual:
        assert error.message == (
            "the local rate limiter would have to wait 1s, more than max_wait (0.5s)"
        )
    else:
        assert re.fullmatch(
            r"the local rate limiter would have to wait \S+s, more than max_wait \(0\.025s\)",
            error.message,
        )
    stats = limiter.stats()
    assert (stats.available_tokens, stats.blocked_for, stats.waiting) == (1000.0, 0.0, 0)
    if virtual:
        assert stats.available_requests == 0.0


async def test_max_wait_lets_shorter_waits_wait(second: float, virtual: bool) -> None:
    limiter = RateLimiter(RateLimiterConfig.from_rps(2 / second, burst=1, max_wait=1 * second))
    await limiter.acquire()
    start = anyio.current_time()
    await limiter.acquire()
    assert_elapsed(anyio.current_time() - start, 0.5 * second, virtual)


async def test_refund_gives_the_request_back(second: float, virtual: bool) -> None:
    limiter = RateLimiter(RateLimiterConfig.from_rps(1 / second, burst=1, tokens_per_minute=100))
    await limiter.acquire(tokens=60)
    limiter.refund(tokens=60)
    stats = limiter.stats()
    assert (stats.available_requests, stats.available_tokens) == (1.0, 100.0)
    assert_elapsed(await limiter.acquire(), 0.0, virtual)
