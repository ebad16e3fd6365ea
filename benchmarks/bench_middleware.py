"""What the middleware seam costs: client CPU per request and per streamed chunk with no
middleware, with five middlewares that override nothing (skipped by the chain), and with
five pass-through middlewares on every level (``on_call``, ``on_attempt``, ``on_event``),
against the mock provider in its own process. Ratios are to the client without
middleware, measured in the same rotated rounds.

    python benchmarks/bench_middleware.py [--backend trio] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
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
    stream_headers,
)

from ailib_anyio import Call, Middleware, open_client
from ailib_anyio._client._middleware import Next


class PassThrough(Middleware):
    async def on_call(self, call: Call, next: Next) -> Any:
        return await next(call)

    async def on_attempt(self, call: Call, next: Next) -> Any:
        return await next(call)

    def on_event(self, call: Call, event: Any) -> None:
        pass


SIDES: dict[str, Sequence[Middleware]] = {
    "none": (),
    "5 empty": [Middleware() for _ in range(5)],
    "5 pass-through": [PassThrough() for _ in range(5)],
}


async def run(quick: bool) -> None:
    rounds, n_req, n_stream, chunks = (3, 50, 10, 50) if quick else (9, 400, 40, 50)
    with mock_server() as base:
        async with contextlib.AsyncExitStack() as stack:
            clients = {
                name: await stack.enter_async_context(
                    open_client(PROVIDER_MODEL, base_url=f"{base}/v1", middleware=mw)
                )
                for name, mw in SIDES.items()
            }
            streaming = {
                name: await stack.enter_async_context(
                    open_client(
                        PROVIDER_MODEL,
                        base_url=f"{base}/v1",
                        middleware=mw,
                        headers=stream_headers(chunks),
                    )
                )
                for name, mw in SIDES.items()
            }
            for client in clients.values():  # warm up: connections, lazy imports
                await ailib_request(client)
            for client in streaming.values():
                await ailib_stream(client)
            requests = await alternate(
                rounds, n_req, {k: bind(ailib_request, c) for k, c in clients.items()}, 1
            )
            streams = await alternate(
                rounds, n_stream, {k: bind(ailib_stream, c) for k, c in streaming.items()}, chunks
            )
    for title, runs in (("per request", requests), ("per streamed chunk", streams)):
        base_median = statistics.median(runs["none"])
        print(f"{title}: client CPU, median of {rounds} rounds")
        for name, values in runs.items():
            median = statistics.median(values)
            print(f"  {name:<16} {median:8.1f} us   {median / base_median:5.2f}x")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    p.add_argument("--quick", action="store_true", help="few iterations (smoke test)")
    args = p.parse_args(argv)
    anyio.run(run, args.quick, backend=args.backend)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
