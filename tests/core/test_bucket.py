"""The token bucket's arithmetic at explicit times, its totality on any float, and random
delay/take/observe/penalize/advance sequences checked against its invariants."""

from __future__ import annotations

import doctest
import math
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from ailib_anyio._core import _bucket
from ailib_anyio._core._bucket import (
    BucketSnapshot,
    RateLimiterConfig,
    TokenBucket,
    seconds_until,
)
from ailib_anyio._core._errors import ConfigurationError
from ailib_anyio._core._types import RateLimitSnapshot

NAN, INF = math.nan, math.inf


def test_doctests() -> None:
    assert doctest.testmod(_bucket, raise_on_error=False).failed == 0


# ------------------------------------------------------------------ config


def test_from_rps() -> None:
    assert RateLimiterConfig.from_rps(2) == RateLimiterConfig(requests_per_minute=120)
    assert RateLimiterConfig.from_rps(
        0.5, burst=3, tokens_per_minute=1000, max_wait=2.0
    ) == RateLimiterConfig(30.0, 1000, burst=3, max_wait=2.0)


@pytest.mark.parametrize(
    ("config", "capacity"),
    [
        (RateLimiterConfig.from_rps(2), 2.0),  # one second's worth
        (RateLimiterConfig.from_rps(0.5), 1.0),  # but at least one request
        (RateLimiterConfig(requests_per_minute=600, burst=3), 3.0),
    ],
)
def test_burst_is_the_request_capacity(config: RateLimiterConfig, capacity: float) -> None:
    assert TokenBucket(config, 0.0).snapshot(1e6).available_requests == capacity


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "RateLimiterConfig needs requests_per_minute or tokens_per_minute"),
        (
            {"requests_per_minute": 0},
            "RateLimiterConfig.requests_per_minute must be a finite number > 0, not 0",
        ),
        (
            {"requests_per_minute": -1.0},
            "RateLimiterConfig.requests_per_minute must be a finite number > 0, not -1.0",
        ),
        (
            {"requests_per_minute": INF},
            "RateLimiterConfig.requests_per_minute must be a finite number > 0, not inf",
        ),
        (
            {"requests_per_minute": NAN},
            "RateLimiterConfig.requests_per_minute must be a number, not nan",
        ),
        (
            {"requests_per_minute": True},
            "RateLimiterConfig.requests_per_minute must be a number, not True",
        ),
        (
            {"tokens_per_minute": "1000"},
            "RateLimiterConfig.tokens_per_minute must be a number, not '1000'",
        ),
        (
            {"tokens_per_minute": 1e-310},
            "RateLimiterConfig.tokens_per_minute (1e-310) is too small: one unit would take"
            " longer to refill than a float can count",
        ),
        (
            {"requests_per_minute": 60, "burst": 0.5},
            "RateLimiterConfig.burst must be a finite number >= 1, not 0.5",
        ),
        (
            {"requests_per_minute": 60, "burst": INF},
            "RateLimiterConfig.burst must be a finite number >= 1, not inf",
        ),
        (
            {"requests_per_minute": 60, "burst": NAN},
            "RateLimiterConfig.burst must be a number, not nan",
        ),
        (
            {"tokens_per_minute": 60, "burst": 2},
            "RateLimiterConfig.burst is the request bucket's capacity: it needs"
            " requests_per_minute",
        ),
        (
            {"requests_per_minute": 60, "max_wait": -0.1},
            "RateLimiterConfig.max_wait must be a number >= 0, not -0.1",
        ),
        (
            {"requests_per_minute": 60, "max_wait": NAN},
            "RateLimiterConfig.max_wait must be a number, not nan",
        ),
    ],
)
def test_config_rejects(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        RateLimiterConfig(**kwargs)
    assert info.value.message == message


@pytest.mark.parametrize(
    ("rps", "message"),
    [
        (0, "RateLimiterConfig.from_rps(rps) must be a finite number > 0, not 0"),
        (True, "RateLimiterConfig.from_rps(rps) must be a number, not True"),
    ],
)
def test_from_rps_rejects(rps: Any, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        RateLimiterConfig.from_rps(rps)
    assert info.value.message == message


def test_max_wait_may_be_zero_or_infinite() -> None:
    assert RateLimiterConfig(60, max_wait=0).max_wait == 0
    assert RateLimiterConfig(60, max_wait=INF).max_wait == INF


# ------------------------------------------------------------------ requests


def test_a_full_burst_then_the_refill_rate() -> None:
    bucket = TokenBucket(RateLimiterConfig(requests_per_minute=60, burst=3), now=10.0)
    for _ in range(3):
        assert bucket.delay(10.0) == 0.0
        bucket.take(10.0)
    assert bucket.delay(10.0) == 1.0
    assert bucket.snapshot(10.5) == BucketSnapshot(0.5, None, 0.0)
    assert bucket.delay(10.5) == 0.5
    assert bucket.delay(11.0) == 0.0
    assert bucket.snapshot(12.0).available_requests == 2.0


def test_refill_stops_at_the_burst() -> None:
    bucket = TokenBucket(RateLimiterConfig(requests_per_minute=60, burst=2), now=0.0)
    bucket.take(0.0)
    bucket.take(0.0)
    assert bucket.snapshot(3600.0).available_requests == 2.0
    bucket.take(3600.0)
    bucket.take(3600.0)
    assert bucket.delay(3600.0) == 1.0


def test_a_request_costs_no_tokens_when_no_token_limit_is_set() -> None:
    bucket = TokenBucket(RateLimiterConfig(requests_per_minute=60), now=0.0)
    assert bucket.delay(0.0, tokens=10**9) == 0.0
    bucket.take(0.0, tokens=10**9)
    assert bucket.snapshot(0.0) == BucketSnapshot(0.0, None, 0.0)


# ------------------------------------------------------------------ tokens


def test_tokens_refill_per_second() -> None:
    bucket = TokenBucket(RateLimiterConfig(tokens_per_minute=600), now=0.0)  # 10 a second
    assert bucket.delay(0.0, tokens=600) == 0.0
    bucket.take(0.0, tokens=500)
    assert bucket.snapshot(0.0) == BucketSnapshot(None, 100.0, 0.0)
    assert bucket.delay(0.0, tokens=100) == 0.0
    assert bucket.delay(0.0, tokens=200) == 10.0
    assert bucket.delay(4.0, tokens=200) == 6.0
    assert bucket.snapshot(4.0).available_tokens == 140.0


def test_a_token_cost_above_the_capacity_waits_for_a_full_bucket() -> None:
    bucket = TokenBucket(RateLimiterConfig(tokens_per_minute=600), now=0.0)
    assert bucket.delay(0.0, tokens=10_000) == 0.0
    bucket.take(0.0, tokens=10_000)  # takes what there is
    assert bucket.snapshot(0.0).available_tokens == 0.0
    assert bucket.delay(0.0, tokens=10_000) == 60.0


def test_requests_and_tokens_both_have_to_allow() -> None:
    config = RateLimiterConfig(requests_per_minute=60, tokens_per_minute=600, burst=1)
    bucket = TokenBucket(config, now=0.0)
    bucket.take(0.0, tokens=590)
    assert bucket.delay(0.0, tokens=10) == 1.0  # the request bucket decides
    assert bucket.delay(0.0, tokens=100) == 9.0  # the token bucket decides
    assert bucket.snapshot(0.0) == BucketSnapshot(0.0, 10.0, 0.0)


@pytest.mark.parametrize("tokens", [-5.0, NAN, 0])
def test_no_cost_for_negative_or_unknown_token_counts(tokens: float) -> None:
    bucket = TokenBucket(RateLimiterConfig(tokens_per_minute=600), now=0.0)
    bucket.take(0.0, tokens=tokens)
    assert bucket.snapshot(0.0).available_tokens == 600.0


# ------------------------------------------------------------------ refund


def test_refund_gives_back_a_take() -> None:
    config = RateLimiterConfig(requests_per_minute=60, tokens_per_minute=600, burst=2)
    bucket = TokenBucket(config, now=0.0)
    bucket.take(0.0, tokens=300)
    bucket.take(0.0, tokens=300)
    bucket.refund(0.0, tokens=300)
    assert bucket.snapshot(0.0) == BucketSnapshot(1.0, 300.0, 0.0)


def test_refund_never_goes_above_capacity() -> None:
    config = RateLimiterConfig(requests_per_minute=60, tokens_per_minute=600, burst=2)
    bucket = TokenBucket(config, now=0.0)
    bucket.take(0.0, tokens=100)
    bucket.refund(10.0, tokens=1000)
    assert bucket.snapshot(10.0) == BucketSnapshot(2.0, 600.0, 0.0)


# ------------------------------------------------------------------ observe


def test_observe_remaining_zero_blocks_until_the_reset() -> None:
    bucket = TokenBucket(RateLimiterConfig(requests_per_minute=6000), now=0.0)
    bucket.observe(RateLimitSnapshot(requests_remaining=0, requests_reset=3.0), 5.0)
    assert bucket.snapshot(5.0) == BucketSnapshot(0.0, None, 3.0)
    assert bucket.delay(5.0) == 3.0
    assert bucket.delay(7.0) == 1.0
    assert bucket.delay(8.0) == 0.0


def test_observe_tokens_remaining_zero_blocks_until_its_reset() -> None:
    bucket = TokenBucket(RateLimiterConfig(tokens_per_minute=60_000), now=0.0)
    bucket.observe(RateLimitSnapshot(tokens_remaining=0, tokens_reset=2.5), 0.0)
    assert bucket.delay(0.0, tokens=0) == 2.5
    assert bucket.snapshot(0.0) == BucketSnapshot(None, 0.0, 2.5)


def test_observe_blocks_even_for_a_bucket_not_configured_here() -> None:
    bucket = TokenBucket(RateLimiterConfig(requests_per_minute=60), now=0.0)
    bucket.observe(RateLimitSnapshot(tokens_remaining=0, tokens_reset=4.0), 0.0)
    assert bucket.snapshot(0.0) == BucketSnapshot(1.0, None, 4.0)


def test_observe_remaining_zero_without_reset_empties_the_bucket() -> None:
    bucket = TokenBucket(RateLimiterConfig(requests_per_minute=60, burst=5), now=0.0)
    bucket.observe(RateLimitSnapshot(requests_remaining=0), 0.0)
    assert bucket.snapshot(0.0) == BucketSnapshot(0.0, None, 0.0)
    assert bucket.delay(0.0) == 1.0


def test_observe_lowers_levels_and_never_raises_them() -> None:
    config = RateLimiterConfig(requests_per_minute=60, tokens_per_minute=600, burst=10)
    bucket = TokenBucket(config, now=0.0)
    bucket.observe(RateLimitSnapshot(requests_remaining=4, tokens_remaining=100), 0.0)
    assert bucket.snapshot(0.0) == BucketSnapshot(4.0, 100.0, 0.0)
    bucket.observe(RateLimitSnapshot(requests_remaining=9, tokens_remaining=500), 0.0)
    assert bucket.snapshot(0.0) == BucketSnapshot(4.0, 100.0, 0.0)
    bucket.observe(RateLimitSnapshot(), 0.0)  # no headers: nothing to learn
    assert bucket.snapshot(0.0) == BucketSnapshot(4.0, 100.0, 0.0)


def test_observe_never_shortens_a_block() -> None:
    bucket = TokenBucket(RateLimiterConfig(requests_per_minute=60), now=0.0)
    bucket.observe(RateLimitSnapshot(requests_remaining=0, requests_reset=5.0), 0.0)
    bucket.observe(RateLimitSnapshot(requests_remaining=0, requests_reset=1.0), 1.0)
    assert bucket.snapshot(1.0).blocked_for == 4.0


@pytest.mark.parametrize("reset", [NAN, INF, -1.0, 10**400, None])
def test_observe_ignores_unusable_resets(reset: Any) -> None:
    bucket = TokenBucket(RateLimiterConfig(requests_per_minute=60), now=0.0)
    bucket.observe(RateLimitSnapshot(requests_remaining=0, requests_reset=reset), 0.0)
    assert bucket.snapshot(0.0) == BucketSnapshot(0.0, None, 0.0)


@pytest.mark.parametrize(("remaining", "level"), [(-3, 0.0), (10**400, 1.0), (NAN, 1.0)])
def test_observe_odd_remaining_counts(remaining: Any, level: float) -> None:
    bucket = TokenBucket(RateLimiterConfig(requests_per_minute=60), now=0.0)
    bucket.observe(RateLimitSnapshot(requests_remaining=remaining), 0.0)
    assert bucket.snapshot(0.0).available_requests == level


# ------------------------------------------------------------------ penalize


def test_penalize_without_seconds_waits_for_one_refill() -> None:
    bucket = TokenBucket(RateLimiterConfig(requests_per_minute=30, burst=4), now=0.0)
    bucket.penalize(0.0, None)
    assert bucket.snapshot(0.0) == BucketSnapshot(0.0, None, 0.0)
    assert bucket.delay(0.0) == 2.0


def test_penalize_with_seconds_blocks_until_then() -> None:
    bucket = TokenBucket(RateLimiterConfig(requests_per_minute=6000), now=0.0)
    bucket.penalize(1.0, 2.0)
    assert bucket.snapshot(1.0) == BucketSnapshot(0.0, None, 2.0)
    assert bucket.delay(1.0) == 2.0
    assert bucket.delay(3.0) == 0.0


def test_penalize_never_shortens_a_block() -> None:
    bucket = TokenBucket(RateLimiterConfig(tokens_per_minute=600), now=0.0)
    bucket.penalize(0.0, 5.0)
    bucket.penalize(1.0, 1.0)
    bucket.penalize(1.0, None)
    assert bucket.snapshot(1.0) == BucketSnapshot(None, 600.0, 4.0)


@pytest.mark.parametrize("seconds", [NAN, INF, -2.0])
def test_penalize_ignores_unusable_seconds(seconds: float) -> None:
    bucket = TokenBucket(RateLimiterConfig(requests_per_minute=60), now=0.0)
    bucket.penalize(0.0, seconds)
    assert bucket.snapshot(0.0) == BucketSnapshot(0.0, None, 0.0)


# ------------------------------------------------------------------ clock


@pytest.mark.parametrize("bad", [NAN, INF, -INF, 5.0])
def test_a_broken_or_backward_clock_counts_as_no_time(bad: float) -> None:
    bucket = TokenBucket(RateLimiterConfig(requests_per_minute=60, burst=1), now=10.0)
    bucket.take(10.0)
    assert bucket.delay(bad) == 1.0
    assert bucket.snapshot(bad) == BucketSnapshot(0.0, None, 0.0)
    assert bucket.delay(10.5) == 0.5  # the clock resumes from 10.0


@example(now=0.9061096881228679, when=156.5949803229578)  # here now + (when - now) < when
@given(now=st.floats(-1e300, 1e300), when=st.floats(allow_nan=False))
def test_seconds_until_is_enough_and_no_more(now: float, when: float) -> None:
    wait = seconds_until(now, when)
    assert wait >= 0.0
    assert now + wait >= when
    if when > now and math.isfinite(when):
        assert now + math.nextafter(wait, 0.0) < when or wait == when - now


# ------------------------------------------------------------------ totality

rates = st.floats(1e-300, 1e300)
configs = st.builds(
    RateLimiterConfig,
    requests_per_minute=rates,
    tokens_per_minute=st.none() | rates,
    burst=st.none() | st.floats(1, 1e300),
) | st.builds(RateLimiterConfig, tokens_per_minute=rates)
any_float = st.floats()
maybe_float = st.none() | any_float
snapshots = st.builds(
    RateLimitSnapshot,
    requests_remaining=st.none() | st.integers() | any_float,
    requests_reset=maybe_float,
    tokens_remaining=st.none() | st.integers() | any_float,
    tokens_reset=maybe_float,
)
calls = st.lists(
    st.tuples(
        st.sampled_from(["delay", "take", "refund", "observe", "penalize", "snapshot"]),
        any_float,
        maybe_float,
        snapshots,
    ),
    max_size=8,
)


@given(config=configs, start=any_float, calls=calls)
def test_total_on_any_float(
    config: RateLimiterConfig,
    start: float,
    calls: list[tuple[str, float, float | None, RateLimitSnapshot]],
) -> None:
    bucket = TokenBucket(config, start)
    for name, now, number, snapshot in calls:
        if name == "observe":
            bucket.observe(snapshot, now)
        elif name == "penalize":
            bucket.penalize(now, number)
        elif name == "snapshot":
            snap = bucket.snapshot(now)
            assert snap.blocked_for >= 0
        else:
            result = getattr(bucket, name)(now, 0.0 if number is None else number)
            if name == "delay":
                assert result >= 0  # never NaN either


# ------------------------------------------------------------------ state machine


class BucketMachine(RuleBasedStateMachine):
    """Random use of one bucket, on a clock that only moves forward."""

    @initialize(
        rpm=st.none() | st.floats(1, 1e4),
        tpm=st.none() | st.floats(1, 1e6),
        burst=st.none() | st.floats(1, 100),
        start=st.floats(0, 1e6),
    )
    def setup(
        self, rpm: float | None, tpm: float | None, burst: float | None, start: float
    ) -> None:
        if rpm is None and tpm is None:
            rpm = 60.0
        self.config = RateLimiterConfig(rpm, tpm, burst=burst if rpm is not None else None)
        self.bucket = TokenBucket(self.config, start)
        self.now = start
        self.request_capacity = None if rpm is None else burst or max(1.0, rpm / 60)
        self.token_capacity = tpm
        self.blocked_until = -INF

    def levels(self) -> tuple[float, float]:
        snap = self.bucket.snapshot(self.now)
        return (
            INF if snap.available_requests is None else snap.available_requests,
            INF if snap.available_tokens is None else snap.available_tokens,
        )

    def cost(self, tokens: float) -> float:
        return 0.0 if self.token_capacity is None else min(tokens, self.token_capacity)

    def tolerance(self) -> float:
        # a level computed at time t is exact to about one ulp of t times the refill rate
        rates = [r for r in (self.config.requests_per_minute, self.config.tokens_per_minute) if r]
        return 1e-9 + 4 * math.ulp(self.now) * max(rates) / 60

    @rule(seconds=st.sampled_from([0.0, 0.001, 1.0]) | st.floats(0, 100))
    def advance(self, seconds: float) -> None:
        self.now += seconds

    @rule(tokens=st.sampled_from([0.0, 1.0]) | st.floats(0, 2e6))
    def take_if_ready(self, tokens: float) -> None:
        if self.bucket.delay(self.now, tokens) > 0:
            return
        requests, available_tokens = self.levels()
        tol = self.tolerance()
        assert requests >= 1 - tol
        assert available_tokens >= self.cost(tokens) - tol
        self.bucket.take(self.now, tokens)
        after_requests, after_tokens = self.levels()
        if requests < INF:
            assert after_requests == pytest.approx(max(0.0, requests - 1), abs=tol)
        if available_tokens < INF:
            expected = max(0.0, available_tokens - self.cost(tokens))
            assert after_tokens == pytest.approx(expected, abs=tol)

    @rule(tokens=st.sampled_from([0.0, 1.0]) | st.floats(0, 2e6))
    def wait_and_take(self, tokens: float) -> None:
        delay = self.bucket.delay(self.now, tokens)
        self.now += delay
        assert self.bucket.delay(self.now, tokens) == 0.0
        self.bucket.take(self.now, tokens)

    @rule(tokens=st.floats(0, 2e6))
    def refund(self, tokens: float) -> None:
        self.bucket.refund(self.now, tokens)

    @rule(
        snapshot=st.builds(
            RateLimitSnapshot,
            requests_remaining=st.none() | st.integers(0, 200),
            requests_reset=st.none() | st.floats(0, 100),
            tokens_remaining=st.none() | st.integers(0, 10**6),
            tokens_reset=st.none() | st.floats(0, 100),
        )
    )
    def observe(self, snapshot: RateLimitSnapshot) -> None:
        before = self.levels()
        self.bucket.observe(snapshot, self.now)
        after = self.levels()
        assert after[0] <= before[0]
        assert after[1] <= before[1]
        for remaining, reset in (
            (snapshot.requests_remaining, snapshot.requests_reset),
            (snapshot.tokens_remaining, snapshot.tokens_reset),
        ):
            if remaining == 0 and reset is not None:
                self.blocked_until = max(self.blocked_until, self.now + reset)

    @rule(seconds=st.none() | st.floats(0, 100))
    def penalize(self, seconds: float | None) -> None:
        before = self.levels()
        self.bucket.penalize(self.now, seconds)
        after = self.levels()
        if self.request_capacity is not None:
            assert after[0] == 0.0
            assert self.bucket.delay(self.now) > 0
        assert after[1] == before[1]
        if seconds is not None:
            self.blocked_until = max(self.blocked_until, self.now + seconds)

    @invariant()
    def levels_within_capacity(self) -> None:
        snap = self.bucket.snapshot(self.now)
        if self.request_capacity is None:
            assert snap.available_requests is None
        else:
            assert snap.available_requests is not None
            assert 0.0 <= snap.available_requests <= self.request_capacity
        if self.token_capacity is None:
            assert snap.available_tokens is None
        else:
            assert snap.available_tokens is not None
            assert 0.0 <= snap.available_tokens <= self.token_capacity

    @invariant()
    def blocked_for_is_the_latest_block(self) -> None:
        blocked_for = self.bucket.snapshot(self.now).blocked_for
        assert 0.0 <= blocked_for < INF
        assert blocked_for == pytest.approx(max(0.0, self.blocked_until - self.now), abs=1e-6)

    @invariant()
    def delays_are_finite_and_cover_the_block(self) -> None:
        blocked_for = self.bucket.snapshot(self.now).blocked_for
        for tokens in (0.0, 1.0, 1e9):
            delay = self.bucket.delay(self.now, tokens)
            assert blocked_for <= delay < INF


# examples per run: the hypothesis profile's (tests/conftest.py)
BucketMachine.TestCase.settings = settings(stateful_step_count=40)
test_bucket_state_machine = BucketMachine.TestCase
