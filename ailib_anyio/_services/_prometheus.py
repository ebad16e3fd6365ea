"""A ``MetricsCollector``'s figures in the Prometheus text format, built with
``prometheus_client`` (extra ``prometheus``) on a registry of its own: nothing is added to
the global registry, which an application may expose with its own metrics."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .._core._errors import ConfigurationError

if TYPE_CHECKING:
    from ._metrics import MetricsCollector, MetricsSnapshot

__all__ = ["exposition"]

_QUANTILES = (0.5, 0.95, 0.99)


def _quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return math.nan
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def exposition(collector: MetricsCollector, snapshot: MetricsSnapshot, prefix: str) -> str:
    try:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            Metric,
        )
    except ImportError as exc:
        raise ConfigurationError(
            "to_prometheus() needs prometheus_client: pip install 'ailib-anyio[prometheus]'"
        ) from exc

    class _Figures:
        def collect(self) -> Iterator[Any]:
            labels = ["provider", "model"]
            requests = CounterMetricFamily(
                f"{prefix}_requests", "Calls by outcome.", labels=[*labels, "status"]
            )
            errors = CounterMetricFamily(
                f"{prefix}_errors", "Failed calls by error kind.", labels=[*labels, "kind"]
            )
            tokens = CounterMetricFamily(
                f"{prefix}_tokens", "Tokens by direction.", labels=[*labels, "direction"]
            )
            cost = CounterMetricFamily(
                f"{prefix}_cost", "Cost of the calls at the manifests' prices.", labels=labels
            )
            resilience = CounterMetricFamily(
                f"{prefix}_resilience_events",
                "Retries, fallbacks and hedges inside calls.",
                labels=[*labels, "event"],
            )
            latency = Metric(
                f"{prefix}_request_latency_seconds",
                "Call latency (until the response, or until a stream closed).",
                "summary",
            )
            ttft = Metric(
                f"{prefix}_time_to_first_token_seconds", "Streams' time to first event.", "summary"
            )
            for label, stats in snapshot.labels.items():
                values = [label.provider, label.model]
                requests.add_metric([*values, "success"], stats.successes)
                requests.add_metric([*values, "error"], stats.requests - stats.successes)
                for kind, count in sorted(stats.errors.items()):
                    errors.add_metric([*values, kind], count)
                tokens.add_metric([*values, "input"], stats.tokens_in)
                tokens.add_metric([*values, "output"], stats.tokens_out)
                cost.add_metric(values, float(stats.cost))
                resilience.add_metric([*values, "retry"], stats.retries)
                resilience.add_metric([*values, "fallback"], stats.fallbacks)
                resilience.add_metric([*values, "hedge"], stats.hedges)
                samples = collector.series_latencies(label)
                for metric, found in ((latency, samples[0]), (ttft, samples[1])):
                    base = {"provider": label.provider, "model": label.model}
                    for q in _QUANTILES:
                        metric.add_sample(
                            metric.name, {**base, "quantile": str(q)}, _quantile(found, q)
                        )
                    metric.add_sample(f"{metric.name}_count", base, float(len(found)))
                    metric.add_sample(f"{metric.name}_sum", base, float(sum(found)))
            circuit = GaugeMetricFamily(
                f"{prefix}_circuit_open",
                "1 while a target's circuit is open or half-open.",
                labels=["target"],
            )
            opened = CounterMetricFamily(
                f"{prefix}_circuit_opened",
                "How often a target's circuit opened.",
                labels=["target"],
            )
            for target, (state, times) in sorted(snapshot.circuits.items()):
                circuit.add_metric([target], 0.0 if state == "closed" else 1.0)
                opened.add_metric([target], times)
            yield from (requests, errors, tokens, cost, resilience, latency, ttft)
            yield from (circuit, opened)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Figures())
    return generate_latest(registry).decode("utf-8")
