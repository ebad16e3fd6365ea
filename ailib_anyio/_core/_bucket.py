"""The client-side rate limit as pure arithmetic: two token buckets and a "blocked until".

:class:`TokenBucket` answers one question: how long until one more request (costing some
number of tokens) may go? It never sleeps and never reads a clock: every method takes
``now`` (seconds, any monotonic clock), so every behaviour reproduces in a plain
synchronous test. The async :class:`~ailib_anyio._resilience._ratelimiter.RateLimiter` asks it, then
sleeps.

The rules:

- the **request bucket** (when ``requests_per_minute`` is set) holds ``burst`` requests and
  refills continuously at ``requests_per_minute / 60`` per second; a request needs one;
- the **token bucket** (when ``tokens_per_minute`` is set) holds ``tokens_per_minute``
  tokens and refills at ``tokens_per_minute / 60`` per second; a request needs its token
  cost, capped at the capacity (a request bigger than a whole minute's worth still goes,
  once the bucket is full);
- both start full; levels stay within ``[0, capacity]``;
- the provider's headers (:meth:`TokenBucket.observe`) and its 429s
  (:meth:`TokenBucket.penalize`) only ever make the limiter stricter: they lower levels and
  set a time before which nothing goes ("blocked until"), never the reverse.

Everything is total: any float input (NaN, infinities, negative counts) gives an answer,
never an exception. A ``now`` that is not finite, or earlier than one already seen, counts
as no time passing.
"""

from __future__ import annotations

import math
import sys

import attrs

from ._errors import ConfigurationError
from ._types import RateLimitSnapshot

__all__ = ["BucketSnapshot", "RateLimiterConfig", "TokenBucket", "seconds_until"]


def _check_number(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigurationError(f"RateLimiterConfig.{name} must be a number, not {value!r}")


def _check_rate(name: str, value: float | None) -> None:
    if value is None:
        return
    _check_number(name, value)
    if not 0 < value < math.inf:
        raise ConfigurationError(
            f"RateLimiterConfig.{name} must be a finite number > 0, not {value!r}"
        )
    if not math.isfinite(60.0 / value):
        raise ConfigurationError(
            f"RateLimiterConfig.{name} ({value!r}) is too small: one unit would take longer"
            " to refill than a float can count"
        )


@attrs.frozen
class RateLimiterConfig:
    """A client-side rate limit: requests and/or tokens per minute.

    >>> RateLimiterConfig(requests_per_minute=120)  # doctest: +ELLIPSIS
    RateLimiterConfig(requests_per_minute=120, tokens_per_minute=None, burst=None, ...)

    ``burst`` is how many requests may go at once after a quiet spell (the request bucket's
    capacity; by default one second's worth, and at least 1). ``max_wait`` (seconds) bounds
    how long a request may wait for the limiter: one that would have to wait longer fails
    fast with ``RateLimitedError`` instead (None: wait as long as needed). At least one of
    the two rates must be set.
    """

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    burst: float | None = None
    max_wait: float | None = None

    def __attrs_post_init__(self) -> None:
        _check_rate("requests_per_minute", self.requests_per_minute)
        _check_rate("tokens_per_minute", self.tokens_per_minute)
        if self.requests_per_minute is None and self.tokens_per_minute is None:
            raise ConfigurationError(
                "RateLimiterConfig needs requests_per_minute or tokens_per_minute"
            )
        if self.burst is not None:
            _check_number("burst", self.burst)
            if not 1 <= self.burst < math.inf:
                raise ConfigurationError(
                    f"RateLimiterConfig.burst must be a finite number >= 1, not {self.burst!r}"
                )
            if self.requests_per_minute is None:
                raise ConfigurationError(
                    "RateLimiterConfig.burst is the request bucket's capacity: it needs"
                    " requests_per_minute"
                )
        if self.max_wait is not None:
            _check_number("max_wait", self.max_wait)
            if self.max_wait < 0:
                raise ConfigurationError(
                    f"RateLimiterConfig.max_wait must be a number >= 0, not {self.max_wait!r}"
                )

    @classmethod
    def from_rps(
        cls,
        rps: float,
        *,
        burst: float | None = None,
        tokens_per_minute: float | None = None,
        max_wait: float | None = None,
    ) -> RateLimiterConfig:
        """A limit of ``rps`` requests per second (``from_rps(2)`` is 120 per minute)."""
        _check_rate("from_rps(rps)", rps)
        return cls(
            requests_per_minute=rps * 60,
            tokens_per_minute=tokens_per_minute,
            burst=burst,
            max_wait=max_wait,
        )


def seconds_until(now: float, when: float) -> float:
    """Seconds from ``now`` until ``when`` (0.0 if it has passed), rounded up so that
    ``now + seconds_until(now, when) >= when`` holds in floating point: whoever sleeps that
    long and asks again gets 0.0, not a remainder too small to move the clock."""
    if not when > now:
        return 0.0
    wait = when - now
    while now + wait < when:
        wait = math.nextafter(wait, math.inf)
    return wait


def _duration(value: float | None) -> float | None:
    """A usable number of seconds from a header: finite and >= 0, else None."""
    if value is None or not 0 <= value <= sys.float_info.max:  # NaN fails too
        return None
    return float(value)


class _Level:
    """One bucket. ``level`` is the content at time ``at``; refill is computed on read, so
    the time at which an amount is available does not move as the clock is read."""

    __slots__ = ("at", "capacity", "interval", "level")

    def __init__(self, capacity: float, per_minute: float, now: float) -> None:
        self.capacity = capacity
        self.interval = 60.0 / per_minute  # seconds to refill one unit
        self.level = capacity
        self.at = now

    def current(self, now: float) -> float:
        elapsed = now - self.at
        if elapsed > 0:
            return min(self.capacity, self.level + elapsed / self.interval)
        return self.level

    def ready_at(self, amount: float) -> float:
        """When ``amount`` (at most the capacity) will be available, if nothing is taken."""
        if self.level >= amount:
            return -math.inf
        return self.at + (amount - self.level) * self.interval

    def set(self, now: float, level: float) -> None:
        self.level = min(self.capacity, max(0.0, level))
        self.at = now


@attrs.frozen
class BucketSnapshot:
    """The limiter's state at one time: what is available now (None for a bucket that is
    not configured) and how long it is blocked by the provider's signals."""

    available_requests: float | None
    available_tokens: float | None
    blocked_for: float


class TokenBucket:
    """The request and token buckets of a :class:`RateLimiterConfig`; see the module
    docstring for the rules.

    >>> bucket = TokenBucket(RateLimiterConfig.from_rps(2), now=0.0)
    >>> [bucket.delay(0.0), bucket.take(0.0), bucket.take(0.0), bucket.delay(0.0)]
    [0.0, None, None, 0.5]
    """

    __slots__ = ("_blocked_until", "_now", "_requests", "_tokens")

    def __init__(self, config: RateLimiterConfig, now: float) -> None:
        self._now = now if math.isfinite(now) else 0.0
        rpm, tpm = config.requests_per_minute, config.tokens_per_minute
        burst = config.burst if config.burst is not None else max(1.0, (rpm or 0.0) / 60)
        self._requests = None if rpm is None else _Level(float(burst), rpm, self._now)
        self._tokens = None if tpm is None else _Level(float(tpm), tpm, self._now)
        self._blocked_until = -math.inf

    def _clock(self, now: float) -> float:
        # the latest finite reading: a clock that jumps back or breaks counts as standing still
        if math.isfinite(now) and now > self._now:
            self._now = now
        return self._now

    def _cost(self, tokens: float) -> float:
        if self._tokens is None or not tokens > 0:  # NaN and negatives cost nothing
            return 0.0
        return min(float(tokens), self._tokens.capacity)

    def delay(self, now: float, tokens: float = 0) -> float:
        """Seconds until one request costing ``tokens`` may go (0.0: it may go now)."""
        now = self._clock(now)
        ready = self._blocked_until
        if self._requests is not None:
            ready = max(ready, self._requests.ready_at(1.0))
        if self._tokens is not None:
            ready = max(ready, self._tokens.ready_at(self._cost(tokens)))
        return seconds_until(now, ready)

    def take(self, now: float, tokens: float = 0) -> None:
        """Debit one request and its tokens (once :meth:`delay` said 0.0 for them)."""
        now = self._clock(now)
        if self._requests is not None:
            self._requests.set(now, self._requests.current(now) - 1.0)
        if self._tokens is not None:
            self._tokens.set(now, self._tokens.current(now) - self._cost(tokens))

    def refund(self, now: float, tokens: float = 0) -> None:
        """Give back what :meth:`take` debited, for a request that never went out (levels
        never go above capacity)."""
        now = self._clock(now)
        if self._requests is not None:
            self._requests.set(now, self._requests.current(now) + 1.0)
        if self._tokens is not None:
            self._tokens.set(now, self._tokens.current(now) + self._cost(tokens))

    def observe(
        self, snapshot: RateLimitSnapshot, now: float, *, max_delay: float = math.inf
    ) -> None:
        """Adapt to the provider's rate-limit headers.

        A ``requests_remaining`` (``tokens_remaining``) of 0 with a known
        ``requests_reset`` (``tokens_reset``) blocks everything until that reset, whether
        or not that bucket is configured here. A remaining count below the local level
        lowers the level to it (it never raises it). Missing or unusable fields are ignored,
        and so is a reset more than ``max_delay`` seconds away: a server-given delay the
        retry policy would refuse never parks the limiter.
        """
        now = self._clock(now)
        r, t = snapshot, self._tokens
        self._adapt(self._requests, r.requests_remaining, r.requests_reset, now, max_delay)
        self._adapt(t, r.tokens_remaining, r.tokens_reset, now, max_delay)

    def _adapt(
        self,
        bucket: _Level | None,
        remaining: float | None,
        reset: float | None,
        now: float,
        max_delay: float,
    ) -> None:
        if remaining is None:
            return
        if remaining <= 0:
            self._block(now, _duration(reset), max_delay)
        if bucket is not None and remaining < bucket.current(now):  # NaN fails here too
            bucket.set(now, float(remaining) if remaining > 0 else 0.0)

    def penalize(self, now: float, seconds: float | None, *, max_delay: float = math.inf) -> None:
        """The provider answered 429: empty the request bucket and, when it said how long
        to wait (``seconds``, at most ``max_delay``), block until then (an existing later
        block stays). Without ``seconds``, or with one over ``max_delay`` (which the retry
        policy refuses: the request fails at once), the empty bucket alone makes the next
        request wait for one refill."""
        now = self._clock(now)
        if self._requests is not None:
            self._requests.set(now, 0.0)
        self._block(now, _duration(seconds), max_delay)

    def _block(self, now: float, seconds: float | None, max_delay: float) -> None:
        if seconds is None or not seconds <= max_delay:
            return
        until = now + seconds
        if math.isfinite(until):
            self._blocked_until = max(self._blocked_until, until)

    def snapshot(self, now: float) -> BucketSnapshot:
        """The levels and the remaining block at ``now``."""
        now = self._clock(now)
        return BucketSnapshot(
            available_requests=None if self._requests is None else self._requests.current(now),
            available_tokens=None if self._tokens is None else self._tokens.current(now),
            blocked_for=seconds_until(now, self._blocked_until),
        )
