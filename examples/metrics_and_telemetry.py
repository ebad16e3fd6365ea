"""Metrics and telemetry: structured logs, a metrics collector (and its Prometheus text),
and tracing with OpenTelemetry when it is installed."""

import logging

from _run import run, target

from ailib_anyio import open_client
from ailib_anyio.telemetry import MetricsCollector, Tracer, get_logger


async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    logger = get_logger("my_app")
    logger.warning("starting", model="gpt-4o")  # structured fields

    collector = MetricsCollector()
    async with (
        target() as where,
        open_client("openai/gpt-4o", metrics=collector, **where.settings) as client,
    ):
        with Tracer("my_service").span("three_calls"):  # a no-op without OpenTelemetry
            for _ in range(3):
                await client.chat().user("hi").execute()
    snapshot = collector.get_snapshot()
    print("requests:", snapshot.total_requests)
    print(f"p99 latency: {snapshot.latency_p99_ms:.1f} ms, cost: {snapshot.total_cost}")
    try:
        print(collector.to_prometheus().splitlines()[0])
    except ImportError:
        print("(pip install 'ailib-anyio[prometheus]' for the Prometheus text format)")


run(main)
