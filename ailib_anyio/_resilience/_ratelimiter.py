"""The client-side rate limiter: a fair queue around the pure :class:`TokenBucket`.

The bucket decides how long a request must wait; this layer only queues and sleeps.
Callers are served first come, first served: they queue on an ``anyio.Lock``, which hands
ownership to its waiters in FIFO order on both asyncio and trio, and only the head of the
queue waits for the bucket. A cancelled caller leaves the queue at once and takes nothing.
"""

from __future__ import annotations

import anyio
import attrs

from .._core._bucket import RateLimiterConfig, TokenBucket
from .._core._errors import RateLimitedError
from .._core._logging import get_logger
from .._core._retry import DEFAULT_MAX_RETRY_AFTER
from .._core._types import RateLimitSnapshot

__all__ = ["RateLimiter", "RateLimiterStats"]

#: limiter waits, at DEBUG
log = get_logger("ailib_anyio.ratelimit")


@attrs.frozen
class RateLimiterStats:
    """What is available now (None for a bucket that is not configured), how long the
    provider's signals block requests for, and how many callers are waiting."""

    available_requests: float | None
    available_tokens: float | None
    blocked_for: float
    waiting: int


class RateLimiter:
    """Paces requests to a :class:`RateLimiterConfig`, fairly (FIFO).

    ::

        limiter = RateLimiter(RateLimiterConfig.from_rps(2))
        await limiter.acquire(tokens=40)  # before each request, with its estimated tokens
        response = await client.chat().user("2+2?").execute()
        if response.rate_limits is not None:  # after it, when it had rate-limit headers
            limiter.observe(response.rate_limits)

    One limiter may be shared by any number of tasks of one event loop. It needs no running
    loop to be created.
    """

    __slots__ = ("_bucket", "_config", "_lock", "_waiting")

    def __init__(self, config: RateLimiterConfig) -> None:
        self._config = config
        # made on first use: both need the event loop's clock or backend
        self._bucket: TokenBucket | None = None
        self._lock: anyio.Lock | None = None
        self._waiting = 0

    @property
    def config(self) -> RateLimiterConfig:
        return self._config

    def _get_bucket(self) -> TokenBucket:
        if self._bucket is None:
            self._bucket = TokenBucket(self._config, anyio.current_time())
        return self._bucket

    async def acquire(self, tokens: int = 0) -> float:
        """Wait for the turn of one request costing ``tokens`` tokens, take it, and return
        the seconds waited.

        Raises ``RateLimitedError`` (not retryable, ``retry_after`` the wait) without
        taking anything when ``max_wait`` is set and, at the head of the queue, the wait
        would be longer. Cancellable at any point; a cancelled caller takes nothing.
        """
        start = anyio.current_time()
        bucket = self._get_bucket()
        if self._lock is None:
            self._lock = anyio.Lock()
        max_wait = self._config.max_wait
        self._waiting += 1
        try:
            async with self._lock:
                while True:
                    now = anyio.current_time()
                    delay = bucket.delay(now, tokens)
                    if delay == 0:
                        bucket.take(now, tokens)
                        return now - start
                    if max_wait is not None and delay > max_wait:
                        raise RateLimitedError(
                            f"the local rate limiter would have to wait {delay:g}s,"
                            f" more than max_wait ({max_wait:g}s)",
                            retryable=False,
                            retry_after=delay,
                        )
                    # then look again: the provider's headers may have moved the time
                    log.debug("rate limiter wait", seconds=round(delay, 3), waiting=self._waiting)
                    await anyio.sleep(delay)
        finally:
            self._waiting -= 1

    def refund(self, tokens: int = 0) -> None:
        """Give back what :meth:`acquire` took, for a request that never went out."""
        self._get_bucket().refund(anyio.current_time(), tokens)

    def observe(
        self, snapshot: RateLimitSnapshot, *, max_delay: float = DEFAULT_MAX_RETRY_AFTER
    ) -> None:
        """Adapt to the rate-limit headers of a response (see ``TokenBucket.observe``); a
        reset more than ``max_delay`` seconds away is ignored."""
        self._get_bucket().observe(snapshot, anyio.current_time(), max_delay=max_delay)

    def penalize(
        self, seconds: float | None = None, *, max_delay: float = DEFAULT_MAX_RETRY_AFTER
    ) -> None:
        """The provider answered 429: empty the request bucket and, with ``seconds`` (its
        ``retry-after``) of at most ``max_delay``, block every request until then. A longer
        delay never parks the limiter (the retry policy refuses it: the request fails)."""
        self._get_bucket().penalize(anyio.current_time(), seconds, max_delay=max_delay)

    def stats(self) -> RateLimiterStats:
        """The limiter's state now. Before first use it needs no running loop."""
        if self._bucket is None:  # untouched: full, whatever the time
            snap = TokenBucket(self._config, 0.0).snapshot(0.0)
        else:
            snap = self._bucket.snapshot(anyio.current_time())
        return RateLimiterStats(
            available_requests=snap.available_requests,
            available_tokens=snap.available_tokens,
            blocked_for=snap.blocked_for,
            waiting=self._waiting,
        )
