"""Resilience on anyio primitives: retries, circuit breaker, rate limit, fallback, hedging,
deadlines.

Everything here is a cancel scope, a task group, ``anyio.sleep`` or ``anyio.current_time``,
so it behaves the same under asyncio and trio, and nothing outlives the call that started
it. The decisions themselves are pure and live in the sans-IO core (``RetryPolicy``,
``CircuitBreaker``, ``TokenBucket``); this module only sleeps, races and cancels.

One request runs as: the total deadline (a cancel scope) around the fallback chain; the
chain tries each target in turn — with hedging, the next target also starts when the
current one has produced nothing for ``HedgeConfig.delay`` — in one task group, where
the first success cancels the rest; each target runs its retry loop (circuit breaker
admission, rate-limiter wait, the attempt, then the retry policy's verdict and backoff);
a stream attempt ends at its first event, so retries, fallbacks and hedges never happen
after the user has seen anything.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anyio
import anyio.lowlevel
import attrs

from .._core._errors import (
    AiLibError,
    CircuitOpenError,
    ConfigurationError,
    DeadlineExceededError,
    MalformedResponseError,
    RateLimitedError,
    RemoteError,
    TimeoutError,
    TransportError,
)
from .._core._logging import get_logger

if TYPE_CHECKING:
    from .._core._breaker import Admission, CircuitBreaker, CircuitBreakerConfig, CircuitState
    from .._core._bucket import RateLimiterConfig
    from .._core._retry import RetryPolicy
    from .._core._types import RateLimitSnapshot
    from ._ratelimiter import RateLimiter
    from ._shared import SharedCircuit, SharedRateLimiter, SharedScope, SharedState

__all__ = [
    "Deadlines",
    "HedgeConfig",
    "TargetGuard",
    "is_provider_failure",
    "race",
    "within",
]

T = TypeVar("T")
R = TypeVar("R")

#: attempts, retries, fallbacks, hedges and circuit transitions, at DEBUG
log = get_logger("ailib_anyio.attempts")

#: kinds of remote errors that say the provider (not the caller) failed.
_PROVIDER_KINDS = frozenset({"server_error", "overloaded", "timeout"})


def _seconds(owner: str, name: str, value: float | None, *, zero_ok: bool = False) -> None:
    if value is None:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or math.isnan(value) or value < 0 or (value == 0 and not zero_ok):
        bound = ">= 0" if zero_ok else "> 0"
        raise ConfigurationError(
            f"{owner}.{name} must be a number of seconds {bound}, not {value!r}"
        )


@attrs.frozen
class Deadlines:
    """Time limits of one request, in seconds (None: no limit). Each is a cancel scope and
    raises its own error class; a caller's own ``anyio.fail_after`` composes with them.

    - ``total``: the whole request — every attempt, backoff and limiter wait, and for a
      stream every wait for the next chunk (not the caller's own time in the loop body):
      ``DeadlineExceededError``, never retried;
    - ``first_token``: a stream attempt's wait for its first event (connect, headers, first
      chunks): ``FirstTokenTimeoutError``; retryable, so a retry or fallback can follow;
    - ``idle``: a stream's wait for its next event (chunks that complete no event, such
      as a trickle, do not count), and without ``first_token`` also the wait from the
      request to the first event: ``IdleTimeoutError`` (retryable before the first event).
    """

    total: float | None = None
    first_token: float | None = None
    idle: float | None = None

    def __attrs_post_init__(self) -> None:
        for name in ("total", "first_token", "idle"):
            _seconds("Deadlines", name, getattr(self, name))


@attrs.frozen
class HedgeConfig:
    """Hedged requests: when the running target has produced no first event (a stream) or
    no response (a request) after ``delay`` seconds, the next target of the fallback chain
    starts beside it; the first to succeed wins and the others are cancelled, their
    connections closed. A target that fails starts the next one at once."""

    delay: float

    def __attrs_post_init__(self) -> None:
        _seconds("HedgeConfig", "delay", self.delay, zero_ok=True)


def is_provider_failure(error: AiLibError) -> bool:
    """Whether ``error`` counts against the provider's circuit: 5xx, overload, timeouts
    (the provider's or ours, but not the caller's whole-request deadline), broken
    connections and bytes that are not the protocol. A 4xx the caller caused (400, 401,
    404...) and rate limiting do not count."""
    if isinstance(error, DeadlineExceededError):
        return False
    if isinstance(error, (TransportError, TimeoutError, MalformedResponseError)):
        return True
    return error.kind in _PROVIDER_KINDS


@attrs.define(eq=False)
class TargetGuard:
    """The resilience state of one target (a provider endpoint and model): its retry
    policy, circuit breaker and rate limiter, and counters for the signals.

    The breaker and limiter are in-process, or shared with other processes once
    :meth:`share` has swapped them for a ``SharedState``'s (``shared_circuit`` is then
    the breaker, awaited where the local one is called).

    ``max_retry_after`` (the retry policy's, else the default) caps every delay a server
    gives: a longer ``retry-after`` or rate-limit reset is refused everywhere — the request
    fails at once and the limiter is never parked by it."""

    name: str
    context: Mapping[str, Any] = attrs.field(factory=dict)  # provider, model: for errors
    retry: RetryPolicy | None = None
    breaker: CircuitBreaker | SharedCircuit | None = None
    limiter: RateLimiter | SharedRateLimiter | None = None
    shared_circuit: SharedCircuit | None = None
    random: Callable[[], float] = random.random
    last_rate_limits: RateLimitSnapshot | None = None
    retries: int = 0
    max_retry_after: float = 30.0  # DEFAULT_MAX_RETRY_AFTER (the core stays unimported)

    @classmethod
    def build(
        cls,
        name: str,
        context: Mapping[str, Any],
        retry: RetryPolicy | None,
        circuit_breaker: CircuitBreakerConfig | None,
        rate_limit: RateLimiterConfig | None,
    ) -> TargetGuard:
        guard = cls(name, context=context, retry=retry)
        if retry is not None:
            guard.max_retry_after = retry.config.max_retry_after
        # Loaded only when configured: importing the package stays fast.
        if circuit_breaker is not None:
            from .._core._breaker import CircuitBreaker

            guard.breaker = CircuitBreaker(circuit_breaker)
        if rate_limit is not None:
            from ._ratelimiter import RateLimiter

            guard.limiter = RateLimiter(rate_limit)
        return guard

    def share(self, state: SharedState, scope: SharedScope) -> None:
        """Swap the in-process limiter and breaker (those configured) for ``state``'s
        shared ones, keyed by ``scope``. Once, when the client opens."""
        limiter, breaker = self.limiter, self.breaker
        if limiter is not None:
            self.limiter = state.rate_limiter(limiter.config, scope)
        if breaker is not None:
            self.breaker = self.shared_circuit = state.circuit(breaker.config, scope)

    def observe(self, rate_limits: RateLimitSnapshot | None) -> None:
        """Feed a response's rate-limit headers to the limiter."""
        if rate_limits is None:
            return
        self.last_rate_limits = rate_limits
        if self.limiter is not None:
            self.limiter.observe(rate_limits, max_delay=self.max_retry_after)

    async def call(
        self,
        attempt: Callable[[], Awaitable[T]],
        errors: list[AiLibError],
        *,
        tokens: int = 0,
        rate_limits: Callable[[T], RateLimitSnapshot | None] = lambda _: None,
    ) -> T:
        """Run ``attempt`` under this target's breaker and limiter, retrying as the policy
        says. Every failure is appended to ``errors``; the last one is raised.

        A backoff that would end after the enclosing deadline (the caller's or ours) is
        not slept: the error is raised at once, since waiting could only end in a timeout.
        """
        number = 0
        shared = self.shared_circuit
        # the in-process breaker, when the circuit is not shared
        breaker = None if shared is not None else cast("CircuitBreaker | None", self.breaker)
        while True:
            if self.limiter is not None:
                try:
                    await self.limiter.acquire(tokens)  # FIFO; cancellable; may fail fast
                except AiLibError as exc:
                    errors.append(exc)
                    raise
            admission: Admission | None = None
            if breaker is not None or shared is not None:
                try:
                    if shared is not None:
                        admission = await shared.admit()  # may raise SharedStateError
                    else:
                        admission = breaker.admit(anyio.current_time())  # type: ignore[union-attr]
                except BaseException as exc:  # the shared store failed, or a cancellation
                    if self.limiter is not None:
                        self.limiter.refund(tokens)  # nothing was sent
                    if isinstance(exc, AiLibError):
                        errors.append(exc)
                    raise
                if not admission.allowed:
                    if self.limiter is not None:
                        self.limiter.refund(tokens)  # nothing was sent
                    error = CircuitOpenError(
                        f"the circuit of {self.name} is open: failing fast without a request",
                        retry_after=admission.retry_in,
                        retryable=False,
                        **self.context,
                    )
                    errors.append(error)
                    raise error
            outcome: AiLibError | None = None
            debug = log.isEnabledFor(logging.DEBUG)
            if debug:
                log.debug("attempt", target=self.name, attempt=number + 1)
                circuit = self.breaker
                before = circuit.state(anyio.current_time()) if circuit is not None else None
            try:
                result = await attempt()
            except AiLibError as exc:
                outcome = exc
                errors.append(exc)
                self.observe(exc.rate_limits)
                if isinstance(exc, RateLimitedError) and self.limiter is not None:
                    self.limiter.penalize(exc.retry_after, max_delay=self.max_retry_after)
                if admission is not None:
                    failed = is_provider_failure(exc)
                    if shared is not None:
                        if failed:
                            await shared.record_failure(admission)
                        else:
                            await shared.record_neutral(admission)
                    elif breaker is not None:
                        now = anyio.current_time()
                        if failed:
                            breaker.record_failure(admission, now)
                        else:
                            breaker.record_neutral(admission, now)
            except BaseException:
                if admission is not None:
                    if shared is not None:
                        shared.abandon(admission)
                    elif breaker is not None:
                        breaker.record_neutral(admission, anyio.current_time())
                raise
            else:
                if admission is not None:
                    if shared is not None:
                        await shared.record_success(admission)
                    elif breaker is not None:
                        breaker.record_success(admission, anyio.current_time())
                self.observe(rate_limits(result))
                if debug:
                    log.debug("attempt succeeded", target=self.name, attempt=number + 1)
                    self._log_transition(before)
                return result
            number += 1
            delay = self._retry_delay(outcome, number)
            if debug:
                log.debug(
                    "attempt failed",
                    target=self.name,
                    attempt=number,
                    error=outcome.kind,
                    status=outcome.status_code,
                    retry_in=None if delay is None else round(delay, 3),
                )
                self._log_transition(before)
            if delay is None:
                raise outcome
            self.retries += 1
            await anyio.sleep(delay)

    def _log_transition(self, before: CircuitState | None) -> None:
        if self.breaker is None or before is None:
            return
        after = self.breaker.state(anyio.current_time())
        if after is not before:
            log.debug("circuit", target=self.name, before=before.value, after=after.value)

    def _retry_delay(self, error: AiLibError, number: int) -> float | None:
        """Seconds to wait before retry ``number``, or None to give up with ``error``."""
        if self.retry is None:
            return None
        decision = self.retry.decide(
            kind=error.kind,
            retryable=error.retryable,
            # a transport failure (cut connection, timeout) has no HTTP error status of its
            # own, even when it happened after a 200: the status filter does not judge it
            status=error.status_code if isinstance(error, RemoteError) else None,
            attempt=number,
            retry_after=error.retry_after,
            random=self.random,
        )
        if not decision.should_retry:
            return None
        if anyio.current_time() + decision.delay >= anyio.current_effective_deadline():
            return None  # the deadline would cut the wait short: report the real error now
        return decision.delay


async def within(
    seconds: float, fn: Callable[[], Awaitable[T]], make_error: Callable[[], AiLibError]
) -> T:
    """``await fn()`` with a time limit; when the limit (and not an enclosing scope) cancels
    it, raise ``make_error()``. A caller's own cancellation propagates untouched."""
    with anyio.move_on_after(seconds):
        return await fn()
    # Our scope expired. If an enclosing scope is cancelled too, its cancellation wins.
    await anyio.lowlevel.checkpoint_if_cancelled()
    raise make_error()


async def race(
    candidates: Sequence[T],
    run: Callable[[T], Awaitable[R]],
    *,
    hedge_delay: float | None,
    discard: Callable[[R], Awaitable[None]] | None = None,
    errors: list[AiLibError],
    on_next: Callable[[bool], None] = lambda hedged: None,
) -> R:
    """Run ``run(candidate)`` down the chain until one succeeds (a fallback chain), starting
    the next candidate when the current one fails with a retryable or fallbackable error
    or, with ``hedge_delay``, when it has not finished after that many seconds.

    The first success wins: the others are cancelled (their own cleanup closes their
    connections) and a result that lost a photo finish is passed to ``discard``. An error
    that no other candidate could avoid (an invalid request) ends the race at once. When
    every candidate failed, the last error is raised; ``errors`` holds them all.
    ``on_next(hedged)`` is called when a candidate after the first starts: ``hedged`` when
    the one before it was still running (a hedge), else after its failure (a fallback).
    """
    won: list[R] = []
    fatal: list[BaseException] = []
    count = len(candidates)

    async def attempt(index: int, previous_failed: anyio.Event | None) -> None:
        if previous_failed is not None:
            with anyio.move_on_after(math.inf if hedge_delay is None else hedge_delay):
                await previous_failed.wait()
            hedged = not previous_failed.is_set()
            on_next(hedged)
            log.debug("hedge" if hedged else "fallback", candidate=repr(candidates[index]))
        failed = anyio.Event()
        if index + 1 < count:
            tg.start_soon(attempt, index + 1, failed)
        try:
            result = await run(candidates[index])
        except AiLibError as exc:
            if exc not in errors:
                errors.append(exc)
            if not (exc.retryable or exc.fallbackable):
                fatal.append(exc)
                tg.cancel_scope.cancel()
            failed.set()
            return
        except Exception as exc:  # noqa: BLE001 - a bug: stop the race, re-raise it as itself
            fatal.append(exc)
            tg.cancel_scope.cancel()
            return
        if won:
            if discard is not None:
                with anyio.CancelScope(shield=True):
                    await discard(result)
            return
        won.append(result)
        tg.cancel_scope.cancel()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(attempt, 0, None)
    except BaseException:
        if won and discard is not None:  # cancelled from outside just after a win
            with anyio.CancelScope(shield=True):
                await discard(won[0])
        raise
    if won:
        return won[0]
    if fatal:
        raise fatal[0]
    raise errors[-1]
