"""The retry schedule and the fallback rule (``ailib_anyio._core._retry``): pure functions.

Every decision takes its random value from the test, so each expectation is exact; the
jitter bounds are checked for every attempt and random value hypothesis picks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ailib_anyio import ConfigurationError, RetryConfig, RetryDecision, RetryPolicy
from ailib_anyio._core._errors import RETRYABLE_KINDS, STANDARD_ERRORS
from ailib_anyio._core._retry import should_fallback
from ailib_anyio._protocol._models import RetryPolicySpec
from ailib_anyio._protocol._registry import ProtocolRegistry


def fixed(value: float) -> Callable[[], float]:
    return lambda: value


def decide(
    policy: RetryPolicy,
    *,
    kind: str = "rate_limited",
    retryable: bool = True,
    status: int | None = 429,
    attempt: int = 1,
    retry_after: float | None = None,
    random: float = 0.5,
) -> RetryDecision:
    return policy.decide(
        kind=kind,
        retryable=retryable,
        status=status,
        attempt=attempt,
        retry_after=retry_after,
        random=fixed(random),
    )


POLICY = RetryPolicy(RetryConfig(max_retries=3, min_delay=1.0, max_delay=30.0))


# ---------------------------------------------------------------- which errors are retried


@pytest.mark.parametrize("kind", sorted(RETRYABLE_KINDS))
def test_retryable_kinds_are_retried(kind: str) -> None:
    decision = decide(POLICY, kind=kind, status=None)
    assert decision.should_retry
    assert decision.delay == 1.0
    assert decision.reason == "retry 1 after backoff (full jitter)"


@pytest.mark.parametrize("kind", sorted(set(STANDARD_ERRORS) - RETRYABLE_KINDS))
def test_non_retryable_kinds_are_not_retried(kind: str) -> None:
    decision = decide(POLICY, kind=kind, retryable=False, status=400)
    assert decision == RetryDecision(False, 0.0, f"{kind} errors are not retryable")


def test_the_retryable_flag_decides_not_the_kind() -> None:
    # x-should-retry: the classifier folds the provider's header into `retryable`
    assert not decide(POLICY, kind="rate_limited", retryable=False).should_retry
    assert decide(POLICY, kind="conflict", retryable=True, status=409).should_retry
    assert decide(POLICY, kind="transport", retryable=True, status=None).should_retry


def test_retry_on_kinds_only_narrows() -> None:
    policy = RetryPolicy(RetryConfig(retry_on_kinds={"rate_limited"}))
    assert decide(policy, kind="rate_limited").should_retry
    assert decide(policy, kind="server_error", status=500) == RetryDecision(
        False, 0.0, "server_error is not in retry_on_kinds"
    )
    # listing a non-retryable kind does not make it retryable
    widened = RetryPolicy(RetryConfig(retry_on_kinds={"invalid_request"}))
    assert not decide(widened, kind="invalid_request", retryable=False, status=400).should_retry


def test_retry_on_kinds_accepts_a_single_string() -> None:
    assert RetryConfig(retry_on_kinds="overloaded").retry_on_kinds == frozenset({"overloaded"})


def test_retry_on_status_only_narrows_and_ignores_errors_without_status() -> None:
    policy = RetryPolicy(RetryConfig(retry_on_status=[429, 503]))
    assert decide(policy, status=429).should_retry
    assert decide(policy, kind="server_error", status=500) == RetryDecision(
        False, 0.0, "HTTP 500 is not in retry_on_status"
    )
    assert decide(policy, kind="timeout", status=None).should_retry  # a read timeout, say


def test_no_retry_past_max_retries() -> None:
    assert decide(POLICY, attempt=3).should_retry
    assert decide(POLICY, attempt=4) == RetryDecision(
        False, 0.0, "retries exhausted (3 allowed, this is 4)"
    )
    never = RetryPolicy(RetryConfig(max_retries=0))
    assert not decide(never, attempt=1).should_retry


def test_attempt_counts_from_one() -> None:
    with pytest.raises(ValueError, match="attempt counts retries from 1, got 0"):
        decide(POLICY, attempt=0)


# ---------------------------------------------------------------- retry-after


def test_retry_after_beyond_the_cap_fails_fast() -> None:
    # the issue's example: a provider asking for 107 s when the cap is 30 s fails at once,
    # instead of sleeping 107 s, or sleeping the 9 s of backoff and hitting the same wall
    policy = RetryPolicy(RetryConfig(max_retries=5, min_delay=1.0, max_delay=60.0))
    for attempt in (1, 2, 3, 4):
        decision = decide(policy, attempt=attempt, retry_after=107.0, random=0.999)
        assert decision == RetryDecision(
            False,
            0.0,
            "the provider asked to wait 107s, more than max_retry_after (30s)",
        )


def test_retry_after_within_the_cap_is_the_delay() -> None:
    decision = decide(POLICY, retry_after=12.5, random=0.999)
    assert decision == RetryDecision(True, 12.5, "retry 1 after the provider's retry-after")
    assert decide(POLICY, retry_after=30.0).delay == 30.0  # the cap itself is allowed


def test_retry_after_is_a_minimum_not_a_maximum() -> None:
    # the backoff still applies when the provider asks for less than it
    assert decide(POLICY, retry_after=0.0, random=0.0).delay == 1.0
    assert decide(POLICY, attempt=3, retry_after=0.5, random=0.999).delay > 3.9


def test_retry_after_may_exceed_max_delay_within_the_cap() -> None:
    policy = RetryPolicy(RetryConfig(min_delay=0.5, max_delay=8.0, max_retry_after=30.0))
    assert decide(policy, retry_after=20.0).delay == 20.0


def test_max_retry_after_is_configurable() -> None:
    patient = RetryPolicy(RetryConfig(max_retry_after=math.inf))
    assert decide(patient, retry_after=107.0).delay == 107.0
    strict = RetryPolicy(RetryConfig(max_retry_after=0.0))
    assert not decide(strict, retry_after=0.001).should_retry


# ---------------------------------------------------------------- backoff and jitter


@pytest.mark.parametrize(
    ("jitter", "attempt", "random", "delay"),
    [
        ("none", 1, 0.7, 1.0),
        ("none", 2, 0.7, 2.0),
        ("none", 3, 0.7, 4.0),
        ("none", 6, 0.7, 30.0),  # 32 s capped at max_delay
        ("full", 1, 0.999, 1.0),  # the floor is min_delay: the first retry waits min_delay
        ("full", 3, 0.0, 1.0),
        ("full", 3, 0.5, 2.5),
        ("full", 6, 0.5, 15.5),
        ("equal", 3, 0.0, 2.0),
        ("equal", 3, 0.5, 3.0),
        ("equal", 1, 0.5, 1.0),
        ("equal", 6, 0.0, 15.0),
    ],
)
def test_backoff(jitter: Any, attempt: int, random: float, delay: float) -> None:
    policy = RetryPolicy(RetryConfig(max_retries=10, min_delay=1.0, max_delay=30.0, jitter=jitter))
    assert decide(policy, attempt=attempt, random=random).delay == pytest.approx(delay)


@pytest.mark.parametrize(
    ("strategy", "delays"),
    [
        ("exponential_backoff", [1.0, 2.0, 4.0, 8.0, 10.0]),
        ("linear_backoff", [1.0, 2.0, 3.0, 4.0, 5.0]),
        ("fixed_delay", [1.0, 1.0, 1.0, 1.0, 1.0]),
    ],
)
def test_strategies(strategy: Any, delays: list[float]) -> None:
    policy = RetryPolicy(
        RetryConfig(max_retries=9, min_delay=1.0, max_delay=10.0, jitter="none", strategy=strategy)
    )
    assert [decide(policy, attempt=a).delay for a in range(1, 6)] == delays


def test_huge_attempts_do_not_overflow() -> None:
    policy = RetryPolicy(RetryConfig(max_retries=10_000, min_delay=1.0, max_delay=30.0))
    assert decide(policy, attempt=5_000, random=0.999).delay <= 30.0


def test_a_bad_random_source_cannot_break_the_bounds() -> None:
    assert decide(POLICY, attempt=3, random=7.0).delay == 4.0
    assert decide(POLICY, attempt=3, random=-1.0).delay == 1.0


@given(
    attempt=st.integers(1, 200),
    random=st.floats(0.0, 1.0, exclude_max=True),
    jitter=st.sampled_from(["full", "equal", "none"]),
    strategy=st.sampled_from(["exponential_backoff", "linear_backoff", "fixed_delay"]),
    min_delay=st.floats(0.0, 100.0),
    spread=st.floats(0.0, 1000.0),
)
def test_delays_stay_within_min_and_max_delay(
    attempt: int,
    random: float,
    jitter: Any,
    strategy: Any,
    min_delay: float,
    spread: float,
) -> None:
    config = RetryConfig(
        max_retries=200,
        min_delay=min_delay,
        max_delay=min_delay + spread,
        jitter=jitter,
        strategy=strategy,
    )
    decision = decide(RetryPolicy(config), kind="server_error", attempt=attempt, random=random)
    assert decision.should_retry
    assert config.min_delay <= decision.delay <= config.max_delay


@given(
    attempt=st.integers(1, 50),
    random=st.floats(0.0, 1.0, exclude_max=True),
    retry_after=st.floats(0.0, 60.0),
)
def test_retry_after_bounds(attempt: int, random: float, retry_after: float) -> None:
    config = RetryConfig(max_retries=50, min_delay=0.5, max_delay=8.0, max_retry_after=30.0)
    decision = decide(RetryPolicy(config), attempt=attempt, retry_after=retry_after, random=random)
    if retry_after > 30.0:
        assert not decision.should_retry
    else:
        assert decision.should_retry
        assert retry_after <= decision.delay <= max(retry_after, config.max_delay)


@given(attempt=st.integers(1, 30), low=st.floats(0.0, 1.0), high=st.floats(0.0, 1.0))
def test_full_jitter_is_monotonic_in_the_random_value(
    attempt: int, low: float, high: float
) -> None:
    low, high = sorted((low, high))
    policy = RetryPolicy(RetryConfig(max_retries=30, min_delay=0.25, max_delay=20.0))
    assert decide(policy, attempt=attempt, random=low).delay <= (
        decide(policy, attempt=attempt, random=high).delay
    )


# ---------------------------------------------------------------- configuration


def test_defaults() -> None:
    config = RetryConfig()
    assert (config.max_retries, config.min_delay, config.max_delay) == (3, 1.0, 60.0)
    assert (config.jitter, config.max_retry_after, config.strategy) == (
        "full",
        30.0,
        "exponential_backoff",
    )
    assert config.retry_on_status is None
    assert config.retry_on_kinds is None
    assert RetryPolicy().config == config


def test_from_the_shipped_openai_manifest() -> None:
    manifest = ProtocolRegistry().get("openai")
    assert manifest.retry_policy is not None
    config = RetryConfig.from_manifest(manifest.retry_policy)
    assert config == RetryConfig(
        max_retries=2,
        min_delay=0.5,
        max_delay=8.0,
        jitter="full",
        max_retry_after=30.0,
        retry_on_status=frozenset({408, 409, 429, 500, 502, 503, 504}),
        retry_on_kinds=None,
        strategy="exponential_backoff",
    )
    policy = RetryPolicy(config)
    assert [decide(policy, attempt=a, random=0.0).delay for a in (1, 2)] == [0.5, 0.5]
    assert not decide(policy, attempt=3).should_retry


def test_from_manifest_reads_milliseconds_and_an_empty_status_list() -> None:
    spec = RetryPolicySpec(
        strategy="linear_backoff", max_retries=4, min_delay_ms=250, max_delay_ms=1500
    )
    config = RetryConfig.from_manifest(spec, max_retry_after=10.0)
    assert (config.min_delay, config.max_delay, config.max_retry_after) == (0.25, 1.5, 10.0)
    assert (config.max_retries, config.strategy, config.retry_on_status) == (
        4,
        "linear_backoff",
        None,
    )


def test_from_manifest_rejects_an_unknown_jitter() -> None:
    with pytest.raises(ConfigurationError, match=r"RetryConfig\.jitter must be one of"):
        RetryConfig.from_manifest(RetryPolicySpec(jitter="decorrelated"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_retries": -1}, "RetryConfig.max_retries must be an int >= 0, not -1"),
        ({"max_retries": 1.5}, "RetryConfig.max_retries must be an int >= 0, not 1.5"),
        ({"max_retries": True}, "RetryConfig.max_retries must be an int >= 0, not True"),
        ({"min_delay": -0.1}, "RetryConfig.min_delay must be a finite number >= 0, not -0.1"),
        ({"max_delay": math.nan}, "RetryConfig.max_delay must be a finite number >= 0, not nan"),
        ({"max_delay": math.inf}, "RetryConfig.max_delay must be a finite number >= 0, not inf"),
        ({"min_delay": "1"}, "RetryConfig.min_delay must be a number, not '1'"),
        (
            {"max_retry_after": -5},
            "RetryConfig.max_retry_after must be a number >= 0, not -5",
        ),
        (
            {"min_delay": 10.0, "max_delay": 5.0},
            "RetryConfig.min_delay (10.0) is greater than max_delay (5.0)",
        ),
        (
            {"jitter": "random"},
            "RetryConfig.jitter must be one of full, equal, none, not 'random'",
        ),
        (
            {"strategy": "fibonacci"},
            "RetryConfig.strategy must be one of exponential_backoff, linear_backoff,"
            " fixed_delay, not 'fibonacci'",
        ),
    ],
)
def test_invalid_config(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        RetryConfig(**kwargs)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


def test_zero_delays_are_valid() -> None:
    policy = RetryPolicy(RetryConfig(min_delay=0.0, max_delay=0.0))
    assert decide(policy, attempt=2, random=0.9) == RetryDecision(
        True, 0.0, "retry 2 after backoff (full jitter)"
    )


# ---------------------------------------------------------------- fallback


@pytest.mark.parametrize(("kind", "entry"), sorted(STANDARD_ERRORS.items()))
def test_should_fallback_for_every_standard_kind_and_code(
    kind: str, entry: tuple[str, bool]
) -> None:
    code, fallbackable = entry
    assert should_fallback(kind) is fallbackable
    assert should_fallback(code) is fallbackable


def test_should_fallback_examples_from_the_issue() -> None:
    assert should_fallback("authentication")  # another provider has another key
    assert should_fallback("E1002")
    assert not should_fallback("invalid_request")  # fails the same way anywhere
    assert should_fallback("E3002")
    assert should_fallback("overloaded")


@pytest.mark.parametrize("value", ["", "E0000", "e3002", "bogus", "content_filter"])
def test_should_fallback_is_false_for_unknown_values(value: str) -> None:
    assert not should_fallback(value)
