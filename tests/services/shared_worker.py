"""A worker process for tests/services/test_shared_state.py: one client per command, with
its rate limiter and circuit breaker shared through Redis.

Run as ``python shared_worker.py BACKEND REDIS_URL BASE_URL``. It prints ``ready``, then
reads one JSON command per line from stdin and answers each with one JSON line:

- ``{"do": "open", "prefix": P, "burst": B}``: open the client (a limit of B requests per
  minute with ``max_wait=0``, or without ``burst`` 6,000 per minute; a breaker opening
  after 2 failures for ``cooldown`` seconds, default 1), keys under ``P``; answers
  ``{"opened": true}``;
- ``{"do": "requests", "count": N}``: N requests one after the other; answers
  ``{"outcomes": [...], "seconds": [...]}``, each outcome ``"ok"``, ``"rate_limited"``,
  ``"circuit_open"`` or an error class name, with the seconds it took;
- ``{"do": "close"}``: close the client; ``{"do": "quit"}``: exit.

Opening first and requesting later lets the parent start several workers' requests at
the same moment (a barrier).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from typing import Any

import anyio
import anyio.to_thread

from ailib_anyio import (
    AiLibError,
    CircuitBreakerConfig,
    CircuitOpenError,
    RateLimitedError,
    RateLimiterConfig,
    open_client,
)
from ailib_anyio.shared import RedisState

KEY = "sk-shared-worker-key-0123456789"
MODEL = "openai/gpt-4o"


def open_worker_client(redis_url: str, base_url: str, command: dict[str, Any]) -> Any:
    burst = command.get("burst")
    if burst is None:
        limit = RateLimiterConfig(requests_per_minute=6000)
    else:
        limit = RateLimiterConfig(requests_per_minute=1, burst=burst, max_wait=0)
    return open_client(
        MODEL,
        api_key=KEY,
        base_url=base_url,
        max_retries=0,
        rate_limit=limit,
        circuit_breaker=CircuitBreakerConfig(
            failure_threshold=2, cooldown_seconds=command.get("cooldown", 1.0)
        ),
        shared_state=RedisState(redis_url, prefix=command["prefix"], timeout=2.0),
    )


async def requests(client: Any, count: int) -> dict[str, Any]:
    outcomes, seconds = [], []
    for _ in range(count):
        start = time.monotonic()
        try:
            await client.chat().user("hi").execute()
        except RateLimitedError:
            outcomes.append("rate_limited")
        except CircuitOpenError:
            outcomes.append("circuit_open")
        except AiLibError as exc:
            outcomes.append(type(exc).__name__)
        else:
            outcomes.append("ok")
        seconds.append(time.monotonic() - start)
    return {"outcomes": outcomes, "seconds": seconds}


async def main(redis_url: str, base_url: str) -> None:
    print("ready", flush=True)
    async with contextlib.AsyncExitStack() as stack:
        client: Any = None
        while True:
            line = await anyio.to_thread.run_sync(sys.stdin.readline)
            command = json.loads(line or '{"do": "quit"}')
            if command["do"] == "quit":
                return
            if command["do"] == "open":
                client = await stack.enter_async_context(
                    open_worker_client(redis_url, base_url, command)
                )
                answer: dict[str, Any] = {"opened": True}
            elif command["do"] == "requests":
                answer = await requests(client, command["count"])
            else:
                await stack.aclose()
                answer = {"closed": True}
            print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    backend, redis_url, base_url = sys.argv[1:4]
    anyio.run(main, redis_url, base_url, backend=backend)
