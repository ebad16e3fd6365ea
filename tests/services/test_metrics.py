"""``MetricsCollector`` (issue 13, item 3): recorded by hand, filled by a client on the
middleware seam (chat, stream, retry, fallback, hedge, errors), and exported in the
Prometheus text format checked with prometheus_client's own parser; asyncio and trio."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import anyio
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from ailib_anyio import (
    AuthenticationError,
    CircuitBreakerConfig,
    ConfigurationError,
    HedgeConfig,
    RetryConfig,
    open_client,
)
from ailib_anyio.telemetry import MetricLabels, MetricsCollector
from ailib_anyio.testing import MockProvider, Reply, ScriptedReply

KEY = "sk-metrics-test"
FAST = RetryConfig(max_retries=2, min_delay=0.01, max_delay=0.02)
GPT = MetricLabels("openai", "gpt-4o")


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    async with MockProvider() as server:
        yield server


def client(mock: MockProvider, collector: MetricsCollector, **settings: Any) -> Any:
    return open_client(
        "openai/gpt-4o", api_key=KEY, base_url=mock.openai_base_url, metrics=collector, **settings
    )


def test_recorded_by_hand_as_in_the_reference() -> None:
    collector = MetricsCollector()
    for ms in range(1, 101):  # 1..100 ms
        collector.record_request(GPT, latency=ms / 1000, tokens_in=10, tokens_out=5, cost=0.001)
    collector.record_request(GPT, latency=0.2, status="error", error_kind="rate_limited")
    snapshot = collector.get_snapshot()
    stats = snapshot.labels[GPT]
    assert snapshot.total_requests == 101 and stats.successes == 100
    assert stats.errors == {"rate_limited": 1} and snapshot.total_errors == 1
    # nearest rank over 1..100 and 200: p50 is the 51st of 101 (51 ms), p99 the 100th
    assert stats.latency_p50_ms == pytest.approx(51)
    assert stats.latency_p99_ms == pytest.approx(100)
    assert snapshot.latency_p99_ms == pytest.approx(100)
    assert (snapshot.total_tokens_in, snapshot.total_tokens_out) == (1000, 500)
    assert snapshot.total_cost == Decimal("0.100")
    assert math.isnan(stats.ttft_p50_ms)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ConfigurationError, match="max_samples must be a positive integer"):
        MetricsCollector(max_samples=0)
    with pytest.raises(ConfigurationError, match="status must be 'success' or 'error'"):
        MetricsCollector().record_request(GPT, latency=1, status="ok")


def test_the_sample_window_is_bounded() -> None:
    collector = MetricsCollector(max_samples=10)
    for i in range(1000):
        collector.record_request(GPT, latency=float(i))
    latencies, _ = collector.series_latencies(GPT)
    assert latencies == [float(i) for i in range(990, 1000)]
    assert collector.get_snapshot().labels[GPT].requests == 1000


@pytest.mark.anyio
async def test_a_client_fills_the_collector(mock: MockProvider) -> None:
    collector = MetricsCollector()
    mock.enqueue(
        ScriptedReply(content="one", usage=(12, 3)),
        ScriptedReply(content="stream", usage=(7, 2)),
        Reply.error(500, "boom", type="server_error"),
        ScriptedReply(content="after retry", usage=(5, 1)),
        Reply.error(401, "bad key", code="invalid_api_key"),
    )
    async with client(mock, collector, retry=FAST) as c:
        await c.chat().user("hi").execute()
        async with c.chat().user("hi").stream() as stream:
            async for _ in stream:
                pass
        await c.chat().user("hi").execute()
        with pytest.raises(AuthenticationError):
            await c.chat().user("hi").execute()
    stats = collector.get_snapshot().labels[GPT]
    assert stats.requests == 4 and stats.successes == 3
    assert stats.errors == {"authentication": 1}
    assert (stats.tokens_in, stats.tokens_out) == (24, 6)
    assert stats.retries == 1 and stats.fallbacks == 0 and stats.hedges == 0
    assert stats.cost > 0  # gpt-4o is priced in its manifest
    _, ttfts = collector.series_latencies(GPT)
    assert len(ttfts) == 1  # the stream's


@pytest.mark.anyio
async def test_fallbacks_hedges_and_circuits_are_counted(mock: MockProvider) -> None:
    collector = MetricsCollector()
    mock.enqueue(
        Reply.error(503, "overloaded", type="server_error"),
        ScriptedReply(content="fallback"),
        ScriptedReply(content="slow", delay_before_headers=30),
        ScriptedReply(content="fast"),
    )

    def mini() -> Any:
        return open_client("openai/gpt-4o-mini", api_key=KEY, base_url=mock.openai_base_url)

    breaker = CircuitBreakerConfig(failure_threshold=1, cooldown_seconds=60)
    with anyio.fail_after(10):
        async with client(
            mock, collector, max_retries=0, fallbacks=[mini()], circuit_breaker=breaker
        ) as c:
            assert (await c.chat().user("hi").execute()).content == "fallback"
            snapshot = collector.get_snapshot()
        async with client(
            mock, collector, max_retries=0, fallbacks=[mini()], hedge=HedgeConfig(delay=0.1)
        ) as c:
            assert (await c.chat().user("hi").execute()).content == "fast"
    stats = collector.get_snapshot().labels[GPT]
    assert (stats.fallbacks, stats.hedges) == (1, 1)
    assert snapshot.circuits["openai/gpt-4o"] == ("open", 1)


@pytest.mark.anyio
async def test_prometheus_exposition_parses(mock: MockProvider) -> None:
    collector = MetricsCollector()
    mock.enqueue(ScriptedReply(content="ok", usage=(10, 4)), Reply.error(429, "slow down"))
    before = set(REGISTRY._names_to_collectors)
    async with client(mock, collector, max_retries=0) as c:
        await c.chat().user("hi").execute()
        with pytest.raises(Exception, match="slow down"):
            await c.chat().user("hi").execute()
    text = collector.to_prometheus()
    assert set(REGISTRY._names_to_collectors) == before  # the global registry is untouched
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families.values()
        for s in family.samples
    }
    base = (("model", "gpt-4o"), ("provider", "openai"))
    assert samples[("ailib_requests_total", (*base, ("status", "success")))] == 1
    assert samples[("ailib_requests_total", (*base, ("status", "error")))] == 1
    assert samples[("ailib_errors_total", (("kind", "rate_limited"), *base))] == 1
    assert samples[("ailib_tokens_total", (("direction", "input"), *base))] == 10
    assert samples[("ailib_request_latency_seconds_count", base)] == 2
    assert families["ailib_request_latency_seconds"].type == "summary"
