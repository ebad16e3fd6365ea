"""Telemetry services (``ailib_anyio.telemetry``): OpenTelemetry tracing and GenAI metrics
on the middleware seam, and the reference README's ``Tracer``."""
