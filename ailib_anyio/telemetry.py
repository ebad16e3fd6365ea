"""Telemetry: OpenTelemetry traces and GenAI metrics of every call, and ``Tracer``.

When ``opentelemetry-api`` is installed (``pip install 'ailib-anyio[otel]'``), every client
traces each call (a ``chat {model}`` span, a child span per attempt: retries, fallbacks and
hedges side by side) and records the GenAI client metrics
(``gen_ai.client.operation.duration``, ``gen_ai.client.token.usage``,
``gen_ai.client.operation.time_to_first_chunk``), following the OpenTelemetry GenAI
semantic conventions, to the global providers, or to those given to the client::

    async with open_client("openai/gpt-4o", tracer_provider=tp, meter_provider=mp) as c:
        ...

``telemetry=False`` turns it off for a client; ``capture_content=True`` records the
messages (off by default); ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``
selects the latest names of the conventions. Without opentelemetry-api nothing is
installed and nothing is imported.

``Tracer("svc").span("name")`` is a thin convenience over the OpenTelemetry API.
"""

from ._services._telemetry._tracer import NoopSpan as NoopSpan
from ._services._telemetry._tracer import Tracer as Tracer

__all__ = ["NoopSpan", "Tracer"]

for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
