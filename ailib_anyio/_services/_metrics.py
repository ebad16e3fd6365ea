"""``MetricsCollector``: request metrics per provider and model, filled by the client.

::

    collector = MetricsCollector()
    async with open_client("openai/gpt-4o", metrics=collector) as client:
        await client.chat().user("hi").execute()
    snapshot = collector.get_snapshot()
    assert snapshot.total_requests == 1
    text = collector.to_prometheus()  # the Prometheus text format (prometheus_client)

Installed on a client (``metrics=``), it stands around every call on the middleware seam
and records, per ``MetricLabels(provider, model)`` of the client's primary target: calls
and their outcome, latency (until the response, or until a stream closed), time to first
token of streams, input and output tokens, cost (``ChatResponse.cost``), errors by kind,
and the retries, fallbacks and hedges inside each call (seen from its attempts); the state
of each target's circuit breaker and how often it opened are read from the clients when a
snapshot is taken. ``record_request(...)`` records by hand, as the reference library's
collector does.

Latency percentiles come from the last ``max_samples`` samples of each label (a sliding
window, 10,000 by default). Nothing here blocks or awaits: recording is a few list and
dict updates.
"""

from __future__ import annotations

import contextvars
import math
import weakref
from collections import deque
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from .._client._middleware import Call, Middleware, Next
from .._core._errors import AiLibError, ConfigurationError
from .._core._types import ChatResponse

if TYPE_CHECKING:
    from .._client._client import Client

__all__ = ["MetricLabels", "MetricsCollector", "MetricsSnapshot", "LabelStats"]


@attrs.frozen
class MetricLabels:
    """What a series is keyed by."""

    provider: str
    model: str


@attrs.frozen
class LabelStats:
    """One label's figures (latencies in milliseconds)."""

    requests: int
    successes: int
    errors: dict[str, int]
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    ttft_p50_ms: float
    ttft_p95_ms: float
    tokens_in: int
    tokens_out: int
    cost: Decimal
    retries: int
    fallbacks: int
    hedges: int


@attrs.frozen
class MetricsSnapshot:
    """Every label's figures and their totals, and the circuits of the watched clients
    (``"provider/model"`` -> state and times opened)."""

    labels: dict[MetricLabels, LabelStats]
    total_requests: int
    total_errors: int
    total_tokens_in: int
    total_tokens_out: int
    total_cost: Decimal
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    circuits: dict[str, tuple[str, int]]


def _percentile(samples: Iterable[float], q: float) -> float:
    """The ``q`` quantile (0..1) by the nearest-rank method; NaN with no samples."""
    ordered = sorted(samples)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


class _Series:
    __slots__ = (
        "cost",
        "errors",
        "fallbacks",
        "hedges",
        "latencies",
        "requests",
        "retries",
        "successes",
        "tokens_in",
        "tokens_out",
        "ttfts",
    )

    def __init__(self, max_samples: int) -> None:
        self.requests = 0
        self.successes = 0
        self.errors: dict[str, int] = {}
        self.latencies: deque[float] = deque(maxlen=max_samples)
        self.ttfts: deque[float] = deque(maxlen=max_samples)
        self.tokens_in = 0
        self.tokens_out = 0
        self.cost = Decimal(0)
        self.retries = 0
        self.fallbacks = 0
        self.hedges = 0

    def stats(self) -> LabelStats:
        latencies = [s * 1000 for s in self.latencies]
        ttfts = [s * 1000 for s in self.ttfts]
        return LabelStats(
            requests=self.requests,
            successes=self.successes,
            errors=dict(self.errors),
            latency_p50_ms=_percentile(latencies, 0.50),
            latency_p95_ms=_percentile(latencies, 0.95),
            latency_p99_ms=_percentile(latencies, 0.99),
            ttft_p50_ms=_percentile(ttfts, 0.50),
            ttft_p95_ms=_percentile(ttfts, 0.95),
            tokens_in=self.tokens_in,
            tokens_out=self.tokens_out,
            cost=self.cost,
            retries=self.retries,
            fallbacks=self.fallbacks,
            hedges=self.hedges,
        )


@attrs.define(eq=False)
class _CallRecord:
    """The attempts of one call, seen by its attempt hooks (through a context variable:
    attempt tasks are started inside the call, so they inherit it)."""

    targets: set[int] = attrs.field(factory=set)
    running: int = 0
    retries: int = 0
    fallbacks: int = 0
    hedges: int = 0


_CURRENT: contextvars.ContextVar[_CallRecord | None] = contextvars.ContextVar(
    "ailib_anyio_metrics_call", default=None
)


class MetricsCollector(Middleware):
    """Request metrics; see the module docstring. One collector may serve many clients."""

    def __init__(self, *, max_samples: int = 10_000) -> None:
        if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1:
            raise ConfigurationError(f"max_samples must be a positive integer, got {max_samples!r}")
        self.max_samples = max_samples
        self._series: dict[MetricLabels, _Series] = {}
        self._clients: weakref.WeakSet[Client] = weakref.WeakSet()

    def __repr__(self) -> str:
        return f"<MetricsCollector labels={len(self._series)}>"

    def middleware_for(self, client: Client) -> MetricsCollector:
        """What ``open_client(..., metrics=collector)`` installs: the collector itself,
        watching ``client``'s circuits."""
        self._clients.add(client)
        return self

    # ------------------------------------------------------------ recording

    def _get(self, labels: MetricLabels) -> _Series:
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = _Series(self.max_samples)
        return series

    def record_request(
        self,
        labels: MetricLabels,
        *,
        latency: float,
        status: str = "success",
        tokens_in: int = 0,
        tokens_out: int = 0,
        cost: Decimal | float | None = None,
        ttft: float | None = None,
        error_kind: str | None = None,
    ) -> None:
        """Record one request by hand: ``latency`` and ``ttft`` in seconds; ``status``
        ``"success"`` or ``"error"`` (``error_kind`` names the kind, default
        ``"unknown"``)."""
        if status not in ("success", "error"):
            raise ConfigurationError(f"status must be 'success' or 'error', got {status!r}")
        series = self._get(labels)
        series.requests += 1
        series.latencies.append(latency)
        if ttft is not None:
            series.ttfts.append(ttft)
        if status == "success":
            series.successes += 1
        else:
            kind = error_kind or "unknown"
            series.errors[kind] = series.errors.get(kind, 0) + 1
        series.tokens_in += tokens_in
        series.tokens_out += tokens_out
        if cost is not None:
            series.cost += Decimal(str(cost))

    def _finish(
        self,
        call: Call,
        record: _CallRecord,
        started: float,
        response: ChatResponse | None,
        error: BaseException | None,
        ttft: float | None = None,
    ) -> None:
        labels = MetricLabels(call.provider, call.model)
        usage = response.usage if response is not None else None
        cost = response.cost if response is not None else None
        kind = None
        if error is not None:
            kind = error.kind if isinstance(error, AiLibError) else type(error).__name__
        self.record_request(
            labels,
            latency=anyio.current_time() - started,
            status="success" if error is None else "error",
            tokens_in=usage.input_tokens if usage is not None else 0,
            tokens_out=usage.output_tokens if usage is not None else 0,
            cost=cost.total_cost if cost is not None else None,
            ttft=ttft,
            error_kind=kind,
        )
        series = self._get(labels)
        series.retries += record.retries
        series.fallbacks += record.fallbacks
        series.hedges += record.hedges

    # ------------------------------------------------------------ the middleware

    async def on_call(self, call: Call, next: Next) -> Any:
        record = _CallRecord()
        token = _CURRENT.set(record)
        started = anyio.current_time()
        try:
            result = await next(call)
        except anyio.get_cancelled_exc_class():
            raise  # the caller's own cancellation is no request outcome
        except Exception as exc:
            self._finish(call, record, started, None, exc)
            raise
        finally:
            _CURRENT.reset(token)
        if not call.stream:
            self._finish(call, record, started, result, None)
            return result
        ttft = anyio.current_time() - started  # a stream opens at its first event
        on_close = getattr(result, "on_close", None)
        if on_close is None:
            self._finish(call, record, started, None, None, ttft)
            return result

        def closed(stream: Any) -> None:
            error = stream.error
            self._finish(call, record, started, stream.response, error, ttft)

        on_close(closed)
        return result

    async def on_attempt(self, call: Call, next: Next) -> Any:
        record = _CURRENT.get()
        if record is None:  # an attempt outside a call of this collector
            return await next(call)
        if call.target in record.targets:
            record.retries += 1
        elif record.targets:
            if record.running:
                record.hedges += 1
            else:
                record.fallbacks += 1
        record.targets.add(call.target)
        record.running += 1
        try:
            return await next(call)
        finally:
            record.running -= 1

    # ------------------------------------------------------------ reading

    def get_snapshot(self) -> MetricsSnapshot:
        labels = {label: series.stats() for label, series in self._series.items()}
        every = [s * 1000 for series in self._series.values() for s in series.latencies]
        circuits: dict[str, tuple[str, int]] = {}
        for client in list(self._clients):
            for name, circuit in client.get_resilience_stats().circuits.items():
                circuits[name] = (circuit.state.value, circuit.times_opened)
        return MetricsSnapshot(
            labels=labels,
            total_requests=sum(s.requests for s in labels.values()),
            total_errors=sum(sum(s.errors.values()) for s in labels.values()),
            total_tokens_in=sum(s.tokens_in for s in labels.values()),
            total_tokens_out=sum(s.tokens_out for s in labels.values()),
            total_cost=sum((s.cost for s in labels.values()), Decimal(0)),
            latency_p50_ms=_percentile(every, 0.50),
            latency_p95_ms=_percentile(every, 0.95),
            latency_p99_ms=_percentile(every, 0.99),
            circuits=circuits,
        )

    def reset(self) -> None:
        """Forget every figure (the watched clients stay watched)."""
        self._series.clear()

    def to_prometheus(self, *, prefix: str = "ailib") -> str:
        """The figures in the Prometheus text exposition format, through
        ``prometheus_client`` (extra ``prometheus``) on a registry of its own."""
        from ._prometheus import exposition

        return exposition(self, self.get_snapshot(), prefix)

    def series_latencies(self, labels: MetricLabels) -> tuple[list[float], list[float]]:
        """The latency and time-to-first-token samples of ``labels``, in seconds."""
        series = self._series.get(labels)
        if series is None:
            return [], []
        return list(series.latencies), list(series.ttfts)
