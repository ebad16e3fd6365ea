"""What OpenTelemetry tracing and metrics cost: client CPU per request and per streamed
chunk, as ratios to raw httpx doing the same work in the same run (DESIGN.md §6: tracing
and metrics on <= 1.3x raw httpx per request and per chunk).

    python benchmarks/bench_telemetry.py [--backend trio] [--quick] [--rounds N] [--json PATH]

The sides, in rotated rounds against the mock provider in its own process:

- ``httpx``: raw httpx, ``json.loads`` / a hand-written SSE loop (as ``bench_client.py``);
- ``ailib off``: ``open_client(..., telemetry=False)``: no middleware at all;
- ``ailib api``: the default with opentelemetry-api installed and no SDK configured (the
  global providers are the API's proxies: non-recording spans, no-op instruments);
- ``ailib sdk``: tracing and metrics on: an SDK ``TracerProvider`` exporting every span
  through a ``SimpleSpanProcessor`` to an ``InMemorySpanExporter``, and an SDK
  ``MeterProvider`` with an ``InMemoryMetricReader`` (two spans and three to four
  histogram records per call).

It measures, it does not assert: the exit code is 0 whatever the figures are. ``--json
PATH`` writes every figure to PATH (benchmarks/result_schema.json, as bench_client.py).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_json
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

BAR = 1.3


def sdk_providers() -> tuple[Any, Any, Any]:
    """An SDK tracer provider exporting to memory, an SDK meter provider read in memory,
    and the exporter (cleared now and then so that it does not grow without end)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return tracer_provider, meter_provider, exporter


def clearing(
    work: Callable[[], Awaitable[object]], exporter: Any, every: int = 100
) -> Callable[[], Awaitable[object]]:
    count = 0

    async def run() -> object:
        nonlocal count
        count += 1
        if count % every == 0:
            exporter.clear()
        return await work()

    return run


#: The sides, for the JSON output (keys as printed, with ``_`` for the space).
SIDES = {
    "httpx": "raw httpx (hand-written JSON and SSE loops)",
    "ailib off": "ailib_anyio, telemetry=False",
    "ailib api": "ailib_anyio, opentelemetry-api with no SDK (proxy providers)",
    "ailib sdk": "ailib_anyio, SDK tracing and metrics on (in-memory exporter and reader)",
}


async def run(quick: bool, rounds: int) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Measure and print; return the settings and the metrics for the JSON output."""
    n_req, n_stream, chunks = (50, 3, 50) if quick else (300, 6, 200)
    rounds = 3 if quick else rounds
    counts = {"rounds": rounds, "requests": n_req, "streams": n_stream, "chunks": chunks}
    tracer_provider, meter_provider, exporter = sdk_providers()
    settings: dict[str, dict[str, Any]] = {
        "ailib off": {"telemetry": False},
        "ailib api": {},
        "ailib sdk": {"tracer_provider": tracer_provider, "meter_provider": meter_provider},
    }
    with mock_server() as base:
        async with contextlib.AsyncExitStack() as stack:

            async def sides(headers: dict[str, str] | None) -> dict[str, Any]:
                found: dict[str, Any] = {
                    "httpx": await stack.enter_async_context(raw_client(base, headers))
                }
                for name, extra in settings.items():
                    found[name] = await stack.enter_async_context(
                        open_client(PROVIDER_MODEL, base_url=f"{base}/v1", headers=headers, **extra)
                    )
                return found

            clients = await sides(None)
            streaming = await sides(stream_headers(chunks))
            for name, client in clients.items():  # warm up: connections, lazy imports
                for _ in range(5):
                    await (raw_request if name == "httpx" else ailib_request)(client)
            events = 0
            for name, client in streaming.items():
                events, _ = await (raw_stream if name == "httpx" else ailib_stream)(client)
            # CPU per chunk = CPU per stream / SSE events on the wire (as bench_client.py)
            per_stream = (await raw_stream(streaming["httpx"]))[0]

            def works(
                sides: dict[str, Any],
                raw: Callable[[Any], Awaitable[object]],
                ailib: Callable[[Any], Awaitable[object]],
            ) -> dict[str, Callable[[], Awaitable[object]]]:
                found = {}
                for name, client in sides.items():
                    work = bind(raw if name == "httpx" else ailib, client)
                    found[name] = clearing(work, exporter) if name == "ailib sdk" else work
                return found

            requests = await alternate(rounds, n_req, works(clients, raw_request, ailib_request), 1)
            streams = await alternate(
                rounds, n_stream, works(streaming, raw_stream, ailib_stream), per_stream
            )
    print(f"client CPU, median of {rounds} rotated rounds; ratio to raw httpx (bar {BAR}x)")
    metrics = []
    for key, title, runs, note in (
        ("request", "per request", requests, f"{n_req} sequential requests per round"),
        (
            "chunk",
            "per streamed chunk",
            streams,
            f"{n_stream} streams per round, {per_stream} SSE events each ({chunks} deltas)",
        ),
    ):
        raw = statistics.median(runs["httpx"])
        print(f"{title} ({note}):")
        for name, values in runs.items():
            median = statistics.median(values)
            ratio = median / raw
            verdict = (
                ""
                if name in ("httpx", "ailib off", "ailib api")
                else ("ok" if ratio <= BAR else "OVER")
            )
            spread = f"{min(values):.1f}..{max(values):.1f}"
            print(f"  {name:<10} {median:8.2f} us  {ratio:5.2f}x  {verdict:<4} ({spread})")
        entry = bench_json.metric(
            key,
            f"CPU / {title[4:]}",
            "us",
            {name.replace(" ", "_"): values for name, values in runs.items()},
            note=note,
        )
        bench_json.bar(entry, "ailib_sdk", "<=", BAR)
        metrics.append(entry)
    print(f"  (ailib yielded {events} events per stream)")
    return counts, metrics


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    p.add_argument("--quick", action="store_true", help="few iterations (smoke test)")
    p.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    p.add_argument("--rounds", type=int, default=9, help="rotated rounds (more: steadier medians)")
    args = p.parse_args(argv)
    started = time.monotonic()
    doc = bench_json.environment(
        "bench_telemetry",
        args.backend,
        "quick" if args.quick else "full",
        ["ailib-anyio", "httpx", "anyio", "trio", "opentelemetry-api", "opentelemetry-sdk"],
    )
    doc["settings"], doc["metrics"] = anyio.run(run, args.quick, args.rounds, backend=args.backend)
    doc["sides"] = {
        name.replace(" ", "_"): {"label": label, "peer": False} for name, label in SIDES.items()
    }
    if args.json:
        bench_json.write(args.json, bench_json.finish(doc, started, time.monotonic()))
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
