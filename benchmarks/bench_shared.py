"""What sharing the rate limiter and circuit breaker through Redis costs per request:
client CPU and wall time per request with the in-process limiter (and breaker) and with
the Redis ones (``shared_state=RedisState(url)``), beside a raw httpx request and an ailib
request with neither, against the mock provider in its own process, in the same rotated
rounds. Ratios are to raw httpx.

    python benchmarks/bench_shared.py [--backend trio] [--quick] [--redis redis://127.0.0.1:6379/0]

Without ``--redis`` (or ``AILIB_TEST_REDIS_URL``) it starts a ``redis-server`` of its own
on a free port when one is installed. The limits are far above the request rate, so no
request waits: what is measured is the bookkeeping — one Lua script round trip per
request for the limiter, one more for the breaker's admission (its success is sent in
the background). The CPU column is this process's only; Redis's own work runs in
``redis-server``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_client import (
    PROVIDER_MODEL,
    ailib_request,
    alternate,
    bind,
    free_port,
    mock_server,
    raw_client,
    raw_request,
    rotated,
)

from ailib_anyio import CircuitBreakerConfig, RateLimiterConfig, open_client
from ailib_anyio.shared import RedisState

EXPECTED = "Mock reply to: hi"
LIMIT = RateLimiterConfig.from_rps(1_000_000, burst=1_000_000)  # never waits
BREAKER = CircuitBreakerConfig()


@contextlib.contextmanager
def redis_server(url: str | None) -> Iterator[str | None]:
    """``url``, else a redis-server of our own for the run (None: none installed)."""
    if url:
        yield url
        return
    server = shutil.which("redis-server")
    if server is None:
        yield None
        return
    port = free_port()
    command = [server, "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    process = subprocess.Popen(
        [*command, "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


async def wall_of(n: int, work: Callable[[], Awaitable[object]]) -> float:
    """Wall seconds for ``n`` sequential awaits of ``work()``."""
    start = time.perf_counter()
    for _ in range(n):
        await work()
    return time.perf_counter() - start


async def run(quick: bool, redis_url: str | None) -> None:
    rounds, n_req = (3, 50) if quick else (9, 400)
    with mock_server() as base, redis_server(redis_url) as url:
        if url is None:
            print("no Redis (no --redis, no AILIB_TEST_REDIS_URL, no redis-server): local only")
        prefix = f"bench:{os.getpid()}:"
        async with contextlib.AsyncExitStack() as stack:

            async def client(**settings: Any) -> Any:
                return await stack.enter_async_context(
                    open_client(PROVIDER_MODEL, base_url=f"{base}/v1", **settings)
                )

            raw = await stack.enter_async_context(raw_client(base))
            works = {
                "raw httpx": bind(raw_request, raw),
                "ailib, none": bind(ailib_request, await client()),
                "local limiter": bind(ailib_request, await client(rate_limit=LIMIT)),
                "local both": bind(
                    ailib_request, await client(rate_limit=LIMIT, circuit_breaker=BREAKER)
                ),
            }
            if url is not None:
                works["redis limiter"] = bind(
                    ailib_request,
                    await client(rate_limit=LIMIT, shared_state=RedisState(url, prefix=prefix)),
                )
                works["redis both"] = bind(
                    ailib_request,
                    await client(
                        rate_limit=LIMIT,
                        circuit_breaker=BREAKER,
                        shared_state=RedisState(url, prefix=prefix),
                    ),
                )
            for _ in range(5):  # warm up: connections, lazy imports, the scripts loaded
                got = {name: await work() for name, work in works.items()}
            if any(text != EXPECTED for text in got.values()):
                raise RuntimeError(f"unexpected replies: {got}")
            cpu = await alternate(rounds, n_req, works, 1)
            wall: dict[str, list[float]] = {name: [] for name in works}
            for r in range(rounds):
                for name in rotated(list(works), r):
                    wall[name].append(await wall_of(n_req, works[name]) / n_req * 1e6)
    report("per request: client CPU", cpu, rounds)
    report("per request: wall time (latency)", wall, rounds)


def report(title: str, runs: dict[str, list[float]], rounds: int) -> None:
    base = statistics.median(runs["raw httpx"])
    local = statistics.median(runs.get("local limiter", runs["raw httpx"]))
    print(f"{title}, median of {rounds} rounds (ratio to raw httpx; added to the local one)")
    for name, values in runs.items():
        median = statistics.median(values)
        spread = f"{min(values):.1f}..{max(values):.1f}"
        added = f"{median - local:+8.1f} us" if name.startswith("redis") else " " * 11
        print(f"  {name:<14} {median:9.1f} us   {median / base:5.2f}x  {added}  ({spread})")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    p.add_argument("--quick", action="store_true", help="few iterations (smoke test)")
    p.add_argument(
        "--redis",
        default=os.environ.get("AILIB_TEST_REDIS_URL"),
        help="the Redis to use (default: $AILIB_TEST_REDIS_URL, else a redis-server started here)",
    )
    args = p.parse_args(argv)
    anyio.run(run, args.quick, args.redis, backend=args.backend)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
