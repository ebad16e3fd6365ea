"""Custom resilience: retries (delays in seconds), rate limit, circuit breaker, deadlines,
fallbacks and a hedge, set one by one."""

from _run import run, target

from ailib_anyio import (
    CircuitBreakerConfig,
    Deadlines,
    HedgeConfig,
    RateLimiterConfig,
    RetryConfig,
    open_client,
)
from ailib_anyio.testing import Reply


async def main() -> None:
    async with target() as where:
        if where.mock is not None:  # one failure first: the retry answers
            where.mock.enqueue(Reply.error(503, "overloaded, try again", type="server_error"))
        async with open_client(
            "openai/gpt-4o",
            retry=RetryConfig(max_retries=3, min_delay=0.01, max_delay=1.0),
            rate_limit=RateLimiterConfig(requests_per_minute=600),
            circuit_breaker=CircuitBreakerConfig(failure_threshold=5, cooldown_seconds=30),
            max_inflight=10,
            deadlines=Deadlines(total=60, first_token=20, idle=30),
            fallbacks=[open_client("openai/gpt-4o-mini", **where.settings)],
            hedge=HedgeConfig(delay=5.0),
            **where.settings,
        ) as client:
            reply = await client.chat().user("Hello!").execute()
            stats = client.get_resilience_stats()
            print("reply:", reply.content)
            print("retries:", stats.retries, "fallbacks:", stats.fallbacks, "hedges:", stats.hedges)


run(main)
