"""Telemetry: OpenTelemetry traces and GenAI metrics of every call, and ``Tracer``.

When ``opentelemetry-api`` is installed (``pip install 'ailib-anyio[otel]'``), every client
traces each call (a ``chat {model}`` span, a child span per attempt: retries, fallbacks and
hedges side by side) and records the GenAI client metrics
(``gen_ai.client.operation.duration``, ``gen_ai.client.token.usage``,
``gen_ai.client.operation.time_to_first_chunk``), following the OpenTelemetry GenAI
semantic conventions, to the global providers, or to those given to the client::

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    async with open_client("openai/gpt-4o", tracer_provider=tp) as c:
        await c.chat().user("hi").execute()
    assert exporter.get_finished_spans()[-1].name == "chat gpt-4o"

``telemetry=False`` turns it off for a client; ``capture_content=True`` records the
messages (off by default); ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``
selects the latest names of the conventions. Without opentelemetry-api nothing is
installed and nothing is imported.

``Tracer("svc").span("name")`` is a thin convenience over the OpenTelemetry API.

Metrics of your own: ``MetricsCollector`` (``open_client(..., metrics=collector)``)
records requests, latency percentiles, time to first token, tokens, cost, errors by kind,
retries, fallbacks, hedges and circuits per provider and model; ``to_prometheus()``.

Health (``HealthChecker``, also ``ailib_anyio.health``) and user feedback (the
``*Feedback`` events, sinks and ``report_feedback``, also ``ailib_anyio.feedback``) are
re-exported here, as the reference library groups them.

Logging: ``get_logger(name)`` gives a logger taking structured keyword fields
(``logger.info("Request started", model="gpt-4o", tokens=100)``) whose records are masked
like the library's own (see ``ailib_anyio._core._logging``).
"""

from ._core._logging import AiLibLogger as AiLibLogger
from ._core._logging import get_logger as get_logger
from ._services._metrics import LabelStats as LabelStats
from ._services._metrics import MetricLabels as MetricLabels
from ._services._metrics import MetricsCollector as MetricsCollector
from ._services._metrics import MetricsSnapshot as MetricsSnapshot
from ._services._telemetry._tracer import NoopSpan as NoopSpan
from ._services._telemetry._tracer import Tracer as Tracer
from .feedback import ChoiceSelectionFeedback as ChoiceSelectionFeedback
from .feedback import FeedbackSink as FeedbackSink
from .feedback import InMemoryFeedbackSink as InMemoryFeedbackSink
from .feedback import JsonlFeedbackSink as JsonlFeedbackSink
from .feedback import RatingFeedback as RatingFeedback
from .feedback import TextFeedback as TextFeedback
from .feedback import ThumbsFeedback as ThumbsFeedback
from .feedback import get_events as get_events
from .feedback import get_events_by_request as get_events_by_request
from .feedback import report_feedback as report_feedback
from .feedback import set_feedback_sink as set_feedback_sink
from .health import HealthChecker as HealthChecker

__all__ = [
    "AiLibLogger",
    "ChoiceSelectionFeedback",
    "FeedbackSink",
    "HealthChecker",
    "InMemoryFeedbackSink",
    "JsonlFeedbackSink",
    "LabelStats",
    "MetricLabels",
    "MetricsCollector",
    "MetricsSnapshot",
    "NoopSpan",
    "RatingFeedback",
    "TextFeedback",
    "ThumbsFeedback",
    "Tracer",
    "get_events",
    "get_events_by_request",
    "get_logger",
    "report_feedback",
    "set_feedback_sink",
]

# Named after this module in tracebacks and reprs; the health and feedback names keep their
# own public modules' (ailib_anyio.health, ailib_anyio.feedback).
for _name in ("AiLibLogger", "LabelStats", "MetricLabels", "MetricsCollector"):
    globals()[_name].__module__ = __name__
for _name in ("MetricsSnapshot", "NoopSpan", "Tracer", "get_logger"):
    globals()[_name].__module__ = __name__
del _name
