"""The circuit breaker's state machine: every transition at explicit times, then random
admit/record/advance sequences against an independent model."""

from __future__ import annotations

import doctest
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from ailib_anyio._core import _breaker
from ailib_anyio._core._breaker import (
    Admission,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitSnapshot,
    CircuitState,
)
from ailib_anyio._core._errors import ConfigurationError

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN
ADMITTED = Admission(allowed=True, probe=False, retry_in=0.0)
PROBE = Admission(allowed=True, probe=True, retry_in=0.0)


def breaker(threshold: int = 3, cooldown: float = 10.0, probes: int = 1) -> CircuitBreaker:
    return CircuitBreaker(CircuitBreakerConfig(threshold, cooldown, probes))


def fail(b: CircuitBreaker, now: float, times: int = 1) -> None:
    for _ in range(times):
        b.record_failure(b.admit(now), now)


def test_doctests() -> None:
    assert doctest.testmod(_breaker, raise_on_error=False).failed == 0


# ------------------------------------------------------------------ config


def test_config_defaults() -> None:
    assert CircuitBreakerConfig() == CircuitBreakerConfig(5, 30.0, 1)
    assert CircuitBreaker().config == CircuitBreakerConfig()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"failure_threshold": 0},
            "CircuitBreakerConfig.failure_threshold must be an int >= 1, not 0",
        ),
        (
            {"failure_threshold": True},
            "CircuitBreakerConfig.failure_threshold must be an int >= 1, not True",
        ),
        (
            {"failure_threshold": 2.0},
            "CircuitBreakerConfig.failure_threshold must be an int >= 1, not 2.0",
        ),
        (
            {"cooldown_seconds": 0},
            "CircuitBreakerConfig.cooldown_seconds must be a finite number > 0, not 0",
        ),
        (
            {"cooldown_seconds": float("nan")},
            "CircuitBreakerConfig.cooldown_seconds must be a finite number > 0, not nan",
        ),
        (
            {"cooldown_seconds": float("inf")},
            "CircuitBreakerConfig.cooldown_seconds must be a finite number > 0, not inf",
        ),
        (
            {"cooldown_seconds": "30"},
            "CircuitBreakerConfig.cooldown_seconds must be a finite number > 0, not '30'",
        ),
        (
            {"cooldown_seconds": False},
            "CircuitBreakerConfig.cooldown_seconds must be a finite number > 0, not False",
        ),
        (
            {"half_open_max_probes": 0},
            "CircuitBreakerConfig.half_open_max_probes must be an int >= 1, not 0",
        ),
    ],
)
def test_config_rejects(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        CircuitBreakerConfig(**kwargs)
    assert info.value.message == message


# ------------------------------------------------------------------ transitions


def test_closed_admits_everything() -> None:
    b = breaker()
    assert b.state(0.0) is CLOSED
    assert [b.admit(float(t)) for t in range(3)] == [ADMITTED] * 3
    assert b.snapshot(0.0) == CircuitSnapshot(CLOSED, 0, 0, 0, 0, 0.0)


def test_a_success_resets_the_consecutive_failures() -> None:
    b = breaker(threshold=3)
    fail(b, 0.0, times=2)
    assert b.snapshot(0.0).consecutive_failures == 2
    b.record_success(b.admit(1.0), 1.0)
    assert b.snapshot(1.0).consecutive_failures == 0
    fail(b, 2.0, times=2)
    assert b.state(2.0) is CLOSED


def test_neutral_outcomes_do_not_count() -> None:
    b = breaker(threshold=2)
    fail(b, 0.0)
    b.record_neutral(b.admit(0.0), 0.0)
    assert b.snapshot(0.0).consecutive_failures == 1
    fail(b, 0.0)
    assert b.state(0.0) is OPEN


def test_the_threshold_opens_the_circuit() -> None:
    b = breaker(threshold=3, cooldown=10.0)
    fail(b, 1.0, times=2)
    assert b.state(1.0) is CLOSED
    fail(b, 4.0)
    assert b.state(4.0) is OPEN
    assert b.snapshot(4.0) == CircuitSnapshot(OPEN, 3, 1, 0, 0, 10.0)


def test_open_refuses_with_the_rest_of_the_cooldown() -> None:
    b = breaker(threshold=1, cooldown=10.0)
    fail(b, 100.0)
    assert b.admit(100.0) == Admission(allowed=False, probe=False, retry_in=10.0)
    assert b.admit(107.5) == Admission(allowed=False, probe=False, retry_in=2.5)
    assert b.snapshot(107.5) == CircuitSnapshot(OPEN, 1, 1, 2, 0, 2.5)


def test_the_cooldown_ends_in_half_open() -> None:
    b = breaker(threshold=1, cooldown=10.0)
    fail(b, 100.0)
    assert b.state(109.999) is OPEN
    assert b.state(110.0) is HALF_OPEN
    assert b.snapshot(110.0).retry_in == 0.0


def test_half_open_admits_one_probe_at_a_time() -> None:
    b = breaker(threshold=1, cooldown=10.0)
    fail(b, 0.0)
    probe = b.admit(10.0)
    assert probe == PROBE
    # a probe is under way: only its outcome can tell when the next request may go
    assert b.admit(11.0) == Admission(allowed=False, probe=False, retry_in=0.0)
    assert b.snapshot(11.0) == CircuitSnapshot(HALF_OPEN, 1, 1, 1, 1, 0.0)


def test_half_open_max_probes() -> None:
    b = breaker(threshold=1, cooldown=10.0, probes=3)
    fail(b, 0.0)
    assert [b.admit(10.0) for _ in range(4)] == [PROBE] * 3 + [
        Admission(allowed=False, probe=False, retry_in=0.0)
    ]
    assert b.snapshot(10.0).probes_in_flight == 3


def test_a_probe_success_closes_the_circuit() -> None:
    b = breaker(threshold=2, cooldown=10.0)
    fail(b, 0.0, times=2)
    probe = b.admit(12.0)
    b.record_success(probe, 13.0)
    assert b.snapshot(13.0) == CircuitSnapshot(CLOSED, 0, 1, 0, 0, 0.0)
    assert b.admit(13.0) == ADMITTED


def test_a_probe_failure_reopens_for_a_full_cooldown() -> None:
    b = breaker(threshold=2, cooldown=10.0)
    fail(b, 0.0, times=2)
    probe = b.admit(12.0)
    b.record_failure(probe, 15.0)
    assert b.snapshot(15.0) == CircuitSnapshot(OPEN, 3, 2, 0, 0, 10.0)
    assert b.state(24.9) is OPEN
    assert b.state(25.0) is HALF_OPEN


def test_a_neutral_probe_frees_its_slot_and_changes_nothing_else() -> None:
    b = breaker(threshold=1, cooldown=10.0)
    fail(b, 0.0)
    b.record_neutral(b.admit(10.0), 11.0)
    assert b.snapshot(11.0) == CircuitSnapshot(HALF_OPEN, 1, 1, 0, 0, 0.0)
    assert b.admit(11.0) == PROBE


def test_outcomes_of_requests_admitted_before_the_circuit_opened_change_nothing() -> None:
    b = breaker(threshold=1, cooldown=10.0)
    early = [b.admit(0.0) for _ in range(3)]
    b.record_failure(early[0], 1.0)  # opens
    before = b.snapshot(2.0)
    b.record_success(early[1], 2.0)  # does not close
    b.record_failure(early[2], 2.0)  # does not restart the cooldown
    assert b.snapshot(2.0) == before
    probe = b.admit(11.0)
    b.record_success(probe, 12.0)
    assert b.state(12.0) is CLOSED


def test_outcomes_of_requests_admitted_while_closed_arriving_half_open() -> None:
    b = breaker(threshold=1, cooldown=10.0)
    early = b.admit(0.0)
    fail(b, 0.0)
    probe = b.admit(10.0)
    b.record_failure(early, 10.5)
    assert b.state(10.5) is HALF_OPEN
    b.record_success(probe, 11.0)
    assert b.state(11.0) is CLOSED


def test_a_probe_finishing_after_another_probe_decided_only_frees_its_slot() -> None:
    b = breaker(threshold=1, cooldown=10.0, probes=2)
    fail(b, 0.0)
    first, second = b.admit(10.0), b.admit(10.0)
    b.record_failure(first, 11.0)  # reopens until 21
    b.record_success(second, 12.0)  # too late to close it
    assert b.snapshot(12.0) == CircuitSnapshot(OPEN, 2, 2, 0, 0, 9.0)

    third, fourth = b.admit(21.0), b.admit(21.0)
    b.record_success(third, 22.0)  # closes
    b.record_failure(fourth, 23.0)  # a probe, but the circuit is closed now: not counted
    assert b.snapshot(23.0) == CircuitSnapshot(CLOSED, 0, 2, 0, 0, 0.0)


def test_a_refused_admission_has_no_outcome() -> None:
    b = breaker(threshold=1)
    fail(b, 0.0)
    refused = b.admit(0.0)
    for record in (b.record_success, b.record_failure, b.record_neutral):
        with pytest.raises(ValueError, match=r"^a refused admission has no outcome to record$"):
            record(refused, 1.0)
    assert b.snapshot(1.0) == CircuitSnapshot(OPEN, 1, 1, 1, 0, 9.0)


def test_probe_slots_never_go_negative() -> None:
    b = breaker(threshold=1)
    b.record_neutral(PROBE, 0.0)  # an outcome recorded twice, or by a confused caller
    assert b.snapshot(0.0).probes_in_flight == 0


@given(
    opened_at=st.floats(-1e9, 1e9),
    cooldown=st.floats(1e-6, 1e6),
    fraction=st.floats(0, 1, exclude_max=True),
)
def test_waiting_retry_in_reaches_half_open(
    opened_at: float, cooldown: float, fraction: float
) -> None:
    b = breaker(threshold=1, cooldown=cooldown)
    fail(b, opened_at)
    now = opened_at + fraction * cooldown
    refused = b.admit(now)
    if b.state(now) is OPEN:
        assert refused.retry_in > 0
        assert b.admit(now + refused.retry_in).probe


# ------------------------------------------------------------------ state machine


class Model:
    """The breaker as the module docstring describes it, written independently."""

    def __init__(self, config: CircuitBreakerConfig) -> None:
        self.config = config
        self.tripped_at: float | None = None  # None: closed
        self.failures = 0
        self.probes = 0
        self.times_opened = 0
        self.rejected = 0

    def state(self, now: float) -> CircuitState:
        if self.tripped_at is None:
            return CLOSED
        return OPEN if now < self.tripped_at + self.config.cooldown_seconds else HALF_OPEN

    def trip(self, now: float) -> None:
        self.tripped_at = now
        self.times_opened += 1


class BreakerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.in_flight: list[Admission] = []

    @initialize(
        threshold=st.integers(1, 4),
        cooldown=st.sampled_from([0.5, 1.0, 30.0]) | st.floats(0.01, 100.0),
        probes=st.integers(1, 3),
        start=st.floats(-1e6, 1e6),
    )
    def setup(self, threshold: int, cooldown: float, probes: int, start: float) -> None:
        self.config = CircuitBreakerConfig(threshold, cooldown, probes)
        self.breaker = CircuitBreaker(self.config)
        self.model = Model(self.config)
        self.now = start

    @rule(fraction=st.sampled_from([0.0, 0.5, 1.0]) | st.floats(0, 1.5))
    def advance(self, fraction: float) -> None:
        self.now += fraction * self.config.cooldown_seconds

    @rule()
    def advance_by_retry_in(self) -> None:
        self.now += self.breaker.snapshot(self.now).retry_in

    @rule()
    def admit(self) -> None:
        model, now = self.model, self.now
        state = model.state(now)
        admission = self.breaker.admit(now)
        if state is CLOSED:
            assert admission == ADMITTED
        elif state is HALF_OPEN and model.probes < self.config.half_open_max_probes:
            assert admission == PROBE
            model.probes += 1
        else:
            assert not admission.allowed
            assert not admission.probe
            model.rejected += 1
            if state is OPEN:  # never admitted within the cooldown
                assert model.tripped_at is not None
                reopen = model.tripped_at + self.config.cooldown_seconds
                assert admission.retry_in == pytest.approx(reopen - now, rel=1e-9, abs=1e-9)
                assert now + admission.retry_in >= reopen
            else:
                assert admission.retry_in == 0.0
        if admission.allowed:
            self.in_flight.append(admission)

    @precondition(lambda self: self.in_flight)
    @rule(
        index=st.integers(0, 100),
        outcome=st.sampled_from(["success", "failure", "neutral"]),
    )
    def record(self, index: int, outcome: str) -> None:
        admission = self.in_flight.pop(index % len(self.in_flight))
        model, now = self.model, self.now
        before = model.state(now)
        getattr(self.breaker, f"record_{outcome}")(admission, now)

        if admission.probe:
            model.probes -= 1
            if before is HALF_OPEN and outcome == "success":
                model.tripped_at = None
                model.failures = 0
            elif before is HALF_OPEN and outcome == "failure":
                model.failures += 1
                model.trip(now)
        elif before is CLOSED and outcome == "success":
            model.failures = 0
        elif before is CLOSED and outcome == "failure":
            model.failures += 1
            if model.failures == self.config.failure_threshold:
                model.trip(now)

        after = self.breaker.state(now)
        if after is CLOSED and before is not CLOSED:
            assert admission.probe and outcome == "success"
        if after is OPEN and before is CLOSED:
            assert self.breaker.snapshot(now).consecutive_failures == (
                self.config.failure_threshold
            )

    @rule()
    def record_a_refusal(self) -> None:
        refused = Admission(allowed=False, probe=False, retry_in=1.0)
        with pytest.raises(ValueError, match="refused"):
            self.breaker.record_failure(refused, self.now)

    @invariant()
    def matches_the_model(self) -> None:
        model, now = self.model, self.now
        snap = self.breaker.snapshot(now)
        assert snap.state is model.state(now) is self.breaker.state(now)
        assert snap.consecutive_failures == model.failures
        assert snap.times_opened == model.times_opened
        assert snap.rejected == model.rejected
        assert snap.probes_in_flight == model.probes == sum(a.probe for a in self.in_flight)
        assert 0 <= snap.probes_in_flight <= self.config.half_open_max_probes
        assert (snap.retry_in > 0) == (snap.state is OPEN)
        if snap.state is CLOSED:
            assert snap.consecutive_failures < self.config.failure_threshold


# examples per run: the hypothesis profile's (tests/conftest.py)
BreakerMachine.TestCase.settings = settings(stateful_step_count=40)
test_breaker_state_machine = BreakerMachine.TestCase
