"""``SignalsSnapshot``: the client's resilience state at one moment."""

from __future__ import annotations

import attrs

from .._core._breaker import CircuitSnapshot
from .._core._types import RateLimitSnapshot
from ._ratelimiter import RateLimiterStats

__all__ = ["SignalsSnapshot"]


@attrs.frozen
class SignalsSnapshot:
    """The client's resilience state at one moment (``client.get_resilience_stats()``).

    ``circuits`` and ``rate_limiters`` are keyed by target (``"provider/model"``: the client
    first, then its fallbacks); ``last_rate_limits`` is the latest rate-limit header snapshot
    each target received.
    """

    inflight: int
    max_inflight: float
    circuits: dict[str, CircuitSnapshot]
    rate_limiters: dict[str, RateLimiterStats]
    last_rate_limits: dict[str, RateLimitSnapshot]
    retries: int
    fallbacks: int
    hedges: int
