"""What a response-cache hit costs: client CPU per request answered from a ``MemoryCache``
and from a ``DiskCache`` (SQLite), beside a raw httpx request to the mock provider (in its
own process) and an ailib request without a cache, measured in the same rotated rounds.
Ratios are to raw httpx (the request plus ``json.loads``). With ``--redis URL`` (or
``AILIB_TEST_REDIS_URL``), a ``RedisCache`` hit too. ``--stream`` adds stream replays
(per stream of ``--chunks`` content deltas).

    python benchmarks/bench_cache.py [--backend trio] [--quick] [--redis redis://127.0.0.1:6379/0]

A hit never reaches the server: its cost is the key (the request encoded as the provider
would receive it, canonical JSON, SHA-256), the lookup and the decoding of the entry. The
SQLite and Redis rows include a worker-thread hop or a round trip to the server, which
take CPU in this process as well.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_client import (
    PROVIDER_MODEL,
    ailib_request,
    ailib_stream,
    alternate,
    bind,
    mock_server,
    raw_client,
    raw_request,
    raw_stream,
    stream_headers,
)

from ailib_anyio import open_client
from ailib_anyio.cache import CacheManager, DiskCache, MemoryCache, RedisCache

EXPECTED = "Mock reply to: hi"


async def run(quick: bool, redis_url: str | None, streams: bool, chunks: int) -> None:
    rounds, n_req, n_stream = (3, 50, 10) if quick else (9, 400, 40)
    with mock_server() as base, tempfile.TemporaryDirectory() as tmp:
        caches = {
            "memory hit": CacheManager(backend=MemoryCache(max_size=1000)),
            "sqlite hit": CacheManager(backend=DiskCache(Path(tmp) / "bench.sqlite3")),
        }
        if redis_url:
            caches["redis hit"] = CacheManager(backend=RedisCache(redis_url, prefix="bench:"))
        async with contextlib.AsyncExitStack() as stack:
            raw = await stack.enter_async_context(raw_client(base))
            plain = await stack.enter_async_context(
                open_client(PROVIDER_MODEL, base_url=f"{base}/v1")
            )
            cached = {
                name: await stack.enter_async_context(
                    open_client(PROVIDER_MODEL, base_url=f"{base}/v1", cache=cache)
                )
                for name, cache in caches.items()
            }
            for cache in caches.values():
                await cache.clear()
            works = {
                "raw httpx": bind(raw_request, raw),
                "ailib, no cache": bind(ailib_request, plain),
                **{name: bind(ailib_request, client) for name, client in cached.items()},
            }
            for _ in range(5):  # warm up: connections, lazy imports, the cache entries
                got = {name: await work() for name, work in works.items()}
            if any(text != EXPECTED for text in got.values()):
                raise RuntimeError(f"unexpected replies: {got}")
            upstream = {name: caches[name].stats().misses for name in caches}
            requests = await alternate(rounds, n_req, works, 1)
            if any(caches[name].stats().misses != upstream[name] for name in caches):
                raise RuntimeError("a cache missed during the measurement")
            report("per request: client CPU", requests, rounds)

            if streams:
                headers = stream_headers(chunks)
                raw_s = await stack.enter_async_context(raw_client(base, headers))
                plain_s = await stack.enter_async_context(
                    open_client(PROVIDER_MODEL, base_url=f"{base}/v1", headers=headers)
                )
                cached_s = {
                    name: await stack.enter_async_context(
                        open_client(
                            PROVIDER_MODEL, base_url=f"{base}/v1", headers=headers, cache=cache
                        )
                    )
                    for name, cache in caches.items()
                }
                stream_works = {
                    "raw httpx": bind(raw_stream, raw_s),
                    "ailib, no cache": bind(ailib_stream, plain_s),
                    **{name: bind(ailib_stream, c) for name, c in cached_s.items()},
                }
                for _ in range(3):
                    for work in stream_works.values():
                        await work()
                per_stream = await alternate(rounds, n_stream, stream_works, 1)
                report(f"per stream of {chunks} chunks: client CPU", per_stream, rounds)


def report(title: str, runs: dict[str, list[float]], rounds: int) -> None:
    base = statistics.median(runs["raw httpx"])
    print(f"{title}, median of {rounds} rounds (ratio to raw httpx)")
    for name, values in runs.items():
        median = statistics.median(values)
        spread = f"{min(values):.1f}..{max(values):.1f}"
        print(f"  {name:<16} {median:9.1f} us   {median / base:5.2f}x   ({spread})")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    p.add_argument("--quick", action="store_true", help="few iterations (smoke test)")
    p.add_argument(
        "--redis",
        default=os.environ.get("AILIB_TEST_REDIS_URL"),
        help="also measure a RedisCache hit on this server (default: $AILIB_TEST_REDIS_URL)",
    )
    p.add_argument("--stream", action="store_true", help="also measure stream replays")
    p.add_argument("--chunks", type=int, default=50, help="content deltas per stream")
    args = p.parse_args(argv)
    options: Any = (args.quick, args.redis, args.stream, args.chunks)
    anyio.run(run, *options, backend=args.backend)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
