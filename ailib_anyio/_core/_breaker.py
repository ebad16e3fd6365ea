"""The circuit breaker as a pure state machine of an injected clock.

A provider that keeps failing is given a rest instead of more requests. The breaker never
sleeps and never reads a clock: every method takes ``now`` (seconds, any monotonic clock),
so every transition reproduces in a plain synchronous test. The caller asks
:meth:`CircuitBreaker.admit` before a request and reports the outcome of every admitted
request with exactly one of ``record_success``, ``record_failure`` or ``record_neutral``.

The state machine:

- **closed**: every request is admitted. A provider-side failure adds one to the count of
  consecutive failures, a success resets it to 0; when it reaches ``failure_threshold`` the
  circuit **opens**.
- **open**: every request is refused, with ``retry_in`` the rest of the cooldown. Once
  ``cooldown_seconds`` have passed since it opened, the circuit is **half-open**.
- **half-open**: up to ``half_open_max_probes`` requests at a time are admitted as probes;
  others are refused with ``retry_in`` 0.0 (a probe is under way, its outcome decides). A
  probe's success closes the circuit (and resets the failure count); a probe's failure
  opens it again, for a full new cooldown.

A neutral outcome (the caller's own error, such as a 400 or 401, or a cancellation) says
nothing about the provider: it frees a probe's slot and changes nothing else. Outcomes
that arrive after the state they were admitted in has gone change nothing either, except
that a probe always frees its slot: a request admitted while closed that finishes after
the circuit opened, or a probe that finishes after another probe already closed or
reopened the circuit.
"""

from __future__ import annotations

import enum
import math

import attrs

from ._bucket import seconds_until
from ._errors import ConfigurationError

__all__ = [
    "Admission",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitSnapshot",
    "CircuitState",
]


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"CircuitBreakerConfig.{name} must be an int >= 1, not {value!r}")


@attrs.frozen
class CircuitBreakerConfig:
    """When to stop sending requests to a failing provider, and for how long.

    >>> CircuitBreakerConfig(failure_threshold=3, cooldown_seconds=10.0)
    CircuitBreakerConfig(failure_threshold=3, cooldown_seconds=10.0, half_open_max_probes=1)

    ``failure_threshold`` consecutive provider-side failures open the circuit for
    ``cooldown_seconds``; then ``half_open_max_probes`` requests at a time may test whether
    the provider has recovered.
    """

    failure_threshold: int = 5
    cooldown_seconds: float = 30.0
    half_open_max_probes: int = 1

    def __attrs_post_init__(self) -> None:
        _check_count("failure_threshold", self.failure_threshold)
        cooldown = self.cooldown_seconds
        if (
            isinstance(cooldown, bool)
            or not isinstance(cooldown, (int, float))
            or not 0 < cooldown < math.inf  # NaN fails too
        ):
            raise ConfigurationError(
                f"CircuitBreakerConfig.cooldown_seconds must be a finite number > 0,"
                f" not {cooldown!r}"
            )
        _check_count("half_open_max_probes", self.half_open_max_probes)


class CircuitState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@attrs.frozen
class Admission:
    """The breaker's answer to "may a request go now?".

    ``probe`` marks a request admitted while half-open, whose outcome decides the state.
    ``retry_in`` is, for a refused request, the seconds until one may be admitted again
    (0.0 when a probe is under way and only its outcome can tell); 0.0 when admitted.
    """

    allowed: bool
    probe: bool
    retry_in: float


@attrs.frozen
class CircuitSnapshot:
    """The breaker's state and counters at one time (for stats and logs).

    ``rejected`` counts refused admissions so far; ``retry_in`` is the rest of the
    cooldown while open (0.0 otherwise).
    """

    state: CircuitState
    consecutive_failures: int
    times_opened: int
    rejected: int
    probes_in_flight: int
    retry_in: float


_ADMITTED = Admission(allowed=True, probe=False, retry_in=0.0)
_PROBE = Admission(allowed=True, probe=True, retry_in=0.0)


class CircuitBreaker:
    """The state machine of a :class:`CircuitBreakerConfig`; see the module docstring.

    >>> breaker = CircuitBreaker(CircuitBreakerConfig(failure_threshold=1, cooldown_seconds=5))
    >>> breaker.record_failure(breaker.admit(now=0.0), now=0.0)
    >>> breaker.admit(now=1.0)
    Admission(allowed=False, probe=False, retry_in=4.0)
    >>> breaker.admit(now=5.0)
    Admission(allowed=True, probe=True, retry_in=0.0)
    """

    __slots__ = (
        "_config",
        "_failures",
        "_open",
        "_opened_at",
        "_probes",
        "_rejected",
        "_times_opened",
    )

    def __init__(self, config: CircuitBreakerConfig | None = None) -> None:
        self._config = CircuitBreakerConfig() if config is None else config
        self._failures = 0
        self._open = False  # open or half-open: which one depends on the time
        self._opened_at = 0.0
        self._probes = 0
        self._rejected = 0
        self._times_opened = 0

    @property
    def config(self) -> CircuitBreakerConfig:
        return self._config

    def state(self, now: float) -> CircuitState:
        """The state at ``now`` (open turns half-open when the cooldown has passed)."""
        if not self._open:
            return CircuitState.CLOSED
        if now >= self._reopens_at():
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    def _reopens_at(self) -> float:
        return self._opened_at + self._config.cooldown_seconds

    def admit(self, now: float) -> Admission:
        """Whether a request may go at ``now``; an admitted one must have its outcome
        recorded, a refused one must not."""
        state = self.state(now)
        if state is CircuitState.CLOSED:
            return _ADMITTED
        if state is CircuitState.HALF_OPEN and self._probes < self._config.half_open_max_probes:
            self._probes += 1
            return _PROBE
        self._rejected += 1
        return Admission(allowed=False, probe=False, retry_in=self._retry_in(state, now))

    def _retry_in(self, state: CircuitState, now: float) -> float:
        return seconds_until(now, self._reopens_at()) if state is CircuitState.OPEN else 0.0

    def record_success(self, admission: Admission, now: float) -> None:
        """The admitted request succeeded."""
        if self._settle(admission):
            if self.state(now) is CircuitState.HALF_OPEN:
                self._open = False
                self._failures = 0
        elif not self._open:
            self._failures = 0

    def record_failure(self, admission: Admission, now: float) -> None:
        """The admitted request failed on the provider's side (5xx, overloaded, timeout...)."""
        if self._settle(admission):
            if self.state(now) is CircuitState.HALF_OPEN:
                self._failures += 1
                self._trip(now)
        elif not self._open:
            self._failures += 1
            if self._failures >= self._config.failure_threshold:
                self._trip(now)

    def record_neutral(self, admission: Admission, now: float) -> None:
        """The admitted request ended in a way that says nothing about the provider: the
        caller's own error (400, 401...) or a cancellation."""
        self._settle(admission)

    def _settle(self, admission: Admission) -> bool:
        """Check that ``admission`` was admitted and free its probe slot; is it a probe?"""
        if not admission.allowed:
            raise ValueError("a refused admission has no outcome to record")
        if admission.probe:
            self._probes = max(0, self._probes - 1)
        return admission.probe

    def _trip(self, now: float) -> None:
        self._open = True
        self._opened_at = now
        self._times_opened += 1

    def snapshot(self, now: float) -> CircuitSnapshot:
        """The state and counters at ``now``."""
        state = self.state(now)
        return CircuitSnapshot(
            state=state,
            consecutive_failures=self._failures,
            times_opened=self._times_opened,
            rejected=self._rejected,
            probes_in_flight=self._probes,
            retry_in=self._retry_in(state, now),
        )
