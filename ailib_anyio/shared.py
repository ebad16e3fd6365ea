"""Rate limits and circuit state shared by many processes, through Redis.

A provider's limits are per API key, not per process: ten workers each with their own
token bucket send ten times the allowed rate, and each learns alone that the provider
is failing. With one setting, every worker's limiter and breaker keep their state in
Redis instead::

    # not run: needs a Redis server (tests/services/test_shared_state.py runs this setup)
    from ailib_anyio import CircuitBreakerConfig, RateLimiterConfig, open_client
    from ailib_anyio.shared import RedisState

    async with open_client(
        "openai/gpt-4o",
        rate_limit=RateLimiterConfig(requests_per_minute=500, tokens_per_minute=30_000),
        circuit_breaker=CircuitBreakerConfig(failure_threshold=5, cooldown_seconds=30),
        shared_state=RedisState("redis://127.0.0.1:6379/0"),
    ) as client:
        reply = await client.chat().user("2+2?").execute()

- the token buckets (requests and tokens per minute) are keyed by provider, model and a
  fingerprint of the API key (a truncated SHA-256: the key never reaches Redis), and
  changed atomically by a Lua script on the server's clock; a 429 or a ``retry-after``
  any worker sees pauses them all; within a process, callers are served FIFO;
- the circuit (per provider, base URL and model) counts failures across workers, opens
  for all of them at once, and lets exactly one worker probe when half-open;
- Redis unreachable: ``SharedStateError`` at ``open_client`` (within about ``timeout``
  seconds), or, with ``RedisState(..., fallback_to_local=True)``, the in-process limiter
  and breaker, with a warning logged (``ailib_anyio.shared``).

Needs coredis (``pip install 'ailib-anyio[redis]'``), which runs under asyncio and trio.
"""

from ._core._errors import SharedStateError as SharedStateError
from ._core._publish import publish
from ._resilience._shared import SharedCircuit as SharedCircuit
from ._resilience._shared import SharedRateLimiter as SharedRateLimiter
from ._resilience._shared import SharedScope as SharedScope
from ._resilience._shared import SharedState as SharedState
from ._services._shared._circuit import RedisCircuitStore as RedisCircuitStore
from ._services._shared._limiter import RedisRateLimiter as RedisRateLimiter
from ._services._shared._state import RedisState as RedisState

__all__ = [
    "RedisCircuitStore",
    "RedisRateLimiter",
    "RedisState",
    "SharedCircuit",
    "SharedRateLimiter",
    "SharedScope",
    "SharedState",
    "SharedStateError",
]

publish(__name__, globals(), __all__)
