"""Whether a client gets the OpenTelemetry middleware: only when ``opentelemetry-api`` is
installed (checked once, without importing it) and its ``telemetry`` setting is on.

Without the API nothing is installed, so a client runs exactly the code it runs without
middleware; ``import ailib_anyio`` never imports opentelemetry either way.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..._client._client import Client
    from ._otel import OpenTelemetryMiddleware

__all__ = ["opentelemetry_available", "telemetry_middleware"]

_available: bool | None = None


def opentelemetry_available() -> bool:
    """Whether the OpenTelemetry API can be imported (looked up once per process)."""
    global _available
    if _available is None:
        if "opentelemetry.trace" in sys.modules:
            _available = True
        else:
            import importlib.util  # here: ``import ailib_anyio`` does not need it

            try:
                found = importlib.util.find_spec("opentelemetry.trace") is not None
                found = found and importlib.util.find_spec("opentelemetry.metrics") is not None
            except (ImportError, ValueError):  # no ``opentelemetry`` package at all
                found = False
            _available = found
    return _available


def telemetry_middleware(client: Client) -> OpenTelemetryMiddleware | None:
    """The OpenTelemetry middleware for ``client``, or None (not installed, or off)."""
    if not client.config.telemetry or not opentelemetry_available():
        return None
    from ._otel import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware.for_client(client)
