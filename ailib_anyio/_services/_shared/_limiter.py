"""``RedisRateLimiter``: one token bucket per provider, API key and model, in Redis.

The buckets' levels and "blocked until" live in one Redis hash, changed only by the
``BUCKET`` script (``_lua``), which applies the rules of the pure ``TokenBucket`` on the
server's clock. Within a process callers queue FIFO on an ``anyio.Lock`` as with the
in-process ``RateLimiter``; the head of the queue asks the script to take its turn, which
either takes it or says how long to wait, then sleeps that long and asks again. Between
processes there is no queue: whoever asks first once the bucket has refilled goes first.

``refund``, ``observe`` and ``penalize`` are synchronous, as on the in-process limiter:
they queue their change, which goes to Redis in the background at once (so a 429 seen
here pauses every worker within a round trip) or with this process's next ``acquire``,
whichever comes first, in the order they were made.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any

import anyio

from ..._core._bucket import RateLimiterConfig
from ..._core._errors import RateLimitedError, SharedStateError
from ..._core._logging import get_logger
from ..._core._retry import DEFAULT_MAX_RETRY_AFTER
from ..._core._types import RateLimitSnapshot
from ..._resilience._ratelimiter import RateLimiter, RateLimiterStats
from ..._resilience._shared import SharedRateLimiter, SharedScope
from ._lua import BUCKET

if TYPE_CHECKING:
    from ._state import RedisState

__all__ = ["RedisRateLimiter"]

log = get_logger("ailib_anyio.ratelimit")

#: changes waiting to be sent beyond which the oldest are dropped (a stuck Redis)
_MAX_PENDING = 64


def _number(value: float) -> str:
    return repr(float(value))


def _remaining(value: float | None) -> str:
    """A header's remaining count as the script reads it ('' where the pure bucket
    ignores it: missing, NaN, +inf)."""
    if value is None or math.isnan(value) or value == math.inf:
        return ""
    return "-1" if value == -math.inf else _number(value)


def _delay(value: float | None, max_delay: float) -> str:
    """A server-given delay the bucket honours ('' for one it ignores: unusable, or
    longer than ``max_delay``)."""
    if value is None or not 0 <= value <= sys.float_info.max or not value <= max_delay:
        return ""
    return _number(value)


class RedisRateLimiter(SharedRateLimiter):
    """A rate limit shared by every process using the same Redis, provider, API key and
    model; see the module docstring. Made by ``RedisState.rate_limiter(config, scope)``
    (a client with ``shared_state=`` does it); the interface of the in-process
    ``RateLimiter``::

        # not run: needs a Redis server (see tests/services/test_shared_state.py)
        limiter = state.rate_limiter(RateLimiterConfig(requests_per_minute=600),
                                     SharedScope.of("openai", "gpt-4o", api_key=key))
        await limiter.acquire(tokens=40)

    A caller cancelled while its turn is being taken in Redis may cost the bucket that
    one turn (the strict side).
    """

    def __init__(self, state: RedisState, config: RateLimiterConfig, scope: SharedScope) -> None:
        self._state = state
        self._config = config
        self.scope = scope
        #: the Redis hash of the buckets (no key in it: its fingerprint)
        self.key = state.key("ratelimit", scope.provider, scope.key, scope.model)
        self._context: dict[str, Any] = {"provider": scope.provider, "model": scope.model}
        #: answers when Redis is unreachable and the state falls back to local
        self._local = RateLimiter(config)
        rpm, tpm = config.requests_per_minute, config.tokens_per_minute
        self._burst = config.burst if config.burst is not None else max(1.0, (rpm or 0.0) / 60)
        self._head = [
            "",  # now: the server's clock
            "" if rpm is None else _number(rpm),
            "" if rpm is None else _number(self._burst),
            "" if tpm is None else _number(tpm),
        ]
        self._pending: list[str] = []  # 5 strings per change
        self._flush_scheduled = False
        self._lock: anyio.Lock | None = None
        self._waiting = 0
        # the last levels Redis reported, and when (this process's clock)
        self._seen: tuple[float | None, float | None, float, float] | None = None

    def __repr__(self) -> str:
        return f"<RedisRateLimiter {self.key}>"

    @property
    def config(self) -> RateLimiterConfig:
        return self._config

    def _cost(self, tokens: float) -> float:
        tpm = self._config.tokens_per_minute
        if tpm is None or not tokens > 0:  # NaN and negatives cost nothing
            return 0.0
        return min(float(tokens), tpm)

    def _falls_back(self) -> bool:
        return self._state.fallback_to_local and not self._state.available

    # ------------------------------------------------------------ acquire

    async def acquire(self, tokens: int = 0) -> float:
        """Wait for the turn of one request costing ``tokens`` tokens (in every worker's
        shared bucket), take it, and return the seconds waited.

        Raises ``RateLimitedError`` (not retryable, ``retry_after`` the wait) without
        taking anything when ``max_wait`` is set and, at the head of this process's
        queue, the wait would be longer; ``SharedStateError`` when Redis cannot be reached
        (unless the state falls back to the local limiter).
        """
        start = anyio.current_time()
        if self._lock is None:
            self._lock = anyio.Lock()
        max_wait = self._config.max_wait
        cost = self._cost(tokens)
        self._waiting += 1
        try:
            async with self._lock:
                while True:
                    try:
                        taken, delay = await self._take(cost)
                    except SharedStateError:
                        if not self._state.fallback_to_local:
                            raise
                        await self._local.acquire(tokens)
                        return anyio.current_time() - start
                    if taken:
                        return anyio.current_time() - start
                    if max_wait is not None and delay > max_wait:
                        raise RateLimitedError(
                            f"the shared rate limiter would have to wait {delay:g}s,"
                            f" more than max_wait ({max_wait:g}s)",
                            retryable=False,
                            retry_after=delay,
                            **self._context,
                        )
                    log.debug(
                        "shared rate limiter wait",
                        seconds=round(delay, 3),
                        waiting=self._waiting,
                        key=self.key,
                    )
                    await anyio.sleep(delay)
        finally:
            self._waiting -= 1

    async def _take(self, cost: float) -> tuple[bool, float]:
        """Send the queued changes and ask for one turn; (taken, seconds to wait)."""
        ops = [*self._drain(), "take", _number(cost), "1", "", ""]
        reply = await self._state.run(
            BUCKET, [self.key], [*self._head, *ops], what="acquire", context=self._context
        )
        self._remember(reply)
        return int(reply[0]) == 1, float(reply[1])

    def _remember(self, reply: list[bytes]) -> None:
        requests = float(reply[2]) if reply[2] else None
        tokens = float(reply[3]) if reply[3] else None
        self._seen = (requests, tokens, float(reply[4]), anyio.current_time())

    # ------------------------------------------------------------ changes

    def refund(self, tokens: int = 0) -> None:
        """Give back what :meth:`acquire` took, for a request that never went out."""
        if self._falls_back():
            self._local.refund(tokens)
            return
        self._queue("refund", _number(self._cost(tokens)), "", "", "")

    def observe(
        self, snapshot: RateLimitSnapshot, *, max_delay: float = DEFAULT_MAX_RETRY_AFTER
    ) -> None:
        """Adapt every worker's bucket to a response's rate-limit headers (see
        ``TokenBucket.observe``); a reset more than ``max_delay`` seconds away is
        ignored."""
        self._local.observe(snapshot, max_delay=max_delay)  # ready in case of a fallback
        requests = _remaining(snapshot.requests_remaining)
        tokens = _remaining(snapshot.tokens_remaining)
        if requests or tokens:
            self._queue(
                "observe",
                requests,
                _delay(snapshot.requests_reset, max_delay),
                tokens,
                _delay(snapshot.tokens_reset, max_delay),
            )

    def penalize(
        self, seconds: float | None = None, *, max_delay: float = DEFAULT_MAX_RETRY_AFTER
    ) -> None:
        """The provider answered 429: empty every worker's request bucket and, with
        ``seconds`` (its ``retry-after``) of at most ``max_delay``, block every worker
        until then."""
        self._local.penalize(seconds, max_delay=max_delay)
        self._queue("penalize", _delay(seconds, max_delay), "", "", "")

    def _queue(self, *change: str) -> None:
        pending = self._pending
        pending.extend(change)
        if len(pending) > 5 * _MAX_PENDING:
            del pending[:5]
        if not self._flush_scheduled:
            self._flush_scheduled = self._state.start_soon(self._flush)

    def _drain(self) -> list[str]:
        pending, self._pending = self._pending, []
        return pending

    async def _flush(self) -> None:
        self._flush_scheduled = False
        ops = self._drain()
        if not ops:
            return  # an acquire took them
        try:
            reply = await self._state.run(
                BUCKET, [self.key], [*self._head, *ops], what="update", context=self._context
            )
        except SharedStateError:
            return  # the state has logged that Redis is gone; the change is lost
        self._remember(reply)

    # ------------------------------------------------------------ stats

    def stats(self) -> RateLimiterStats:
        """The levels Redis last reported, refilled to now (full before first use), and
        this process's waiting callers; the local limiter's while it stands in."""
        if self._falls_back():
            local = self._local.stats()
            return RateLimiterStats(
                local.available_requests,
                local.available_tokens,
                local.blocked_for,
                self._waiting,
            )
        rpm, tpm = self._config.requests_per_minute, self._config.tokens_per_minute
        seen = self._seen
        if seen is None:
            requests = None if rpm is None else float(self._burst)
            return RateLimiterStats(requests, tpm, 0.0, self._waiting)
        requests, tokens, blocked_for, at = seen
        elapsed = max(0.0, anyio.current_time() - at)
        if requests is not None and rpm is not None:
            requests = min(float(self._burst), requests + elapsed * rpm / 60)
        if tokens is not None and tpm is not None:
            tokens = min(float(tpm), tokens + elapsed * tpm / 60)
        return RateLimiterStats(
            available_requests=requests,
            available_tokens=tokens,
            blocked_for=max(0.0, blocked_for - elapsed),
            waiting=self._waiting,
        )
