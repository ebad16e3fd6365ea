"""``Tracer("svc").span("name")``: the reference README's tracing helper, a thin convenience
over the OpenTelemetry API (not a second tracing system).

With ``opentelemetry-api`` installed, ``span()`` is the named tracer's
``start_as_current_span``: the span goes to the global tracer provider (or the one given),
becomes the current span of the block, and the library's own spans started inside it are
its children. Without it, ``span()`` yields a span that records nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from ._install import opentelemetry_available

__all__ = ["NoopSpan", "Tracer"]


class NoopSpan:
    """What ``Tracer.span`` yields without OpenTelemetry: every method does nothing."""

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        pass

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None) -> None:
        pass

    def record_exception(self, exception: BaseException, **kwargs: Any) -> None:
        pass

    def set_status(self, status: Any, description: str | None = None) -> None:
        pass

    def update_name(self, name: str) -> None:
        pass

    def is_recording(self) -> bool:
        return False

    def end(self, end_time: int | None = None) -> None:
        pass


class Tracer:
    """A named tracer::

        tracer = Tracer("my_service")
        with tracer.span("api_call", attributes={"tenant": "acme"}) as span:
            span.set_attribute("model", "gpt-4o")
            reply = await client.chat().user("hi").execute()  # its spans nest here

    ``version`` and ``tracer_provider`` are passed to ``opentelemetry.trace.get_tracer``;
    ``tracer`` is the OpenTelemetry tracer itself (None without opentelemetry-api).
    """

    def __init__(
        self, name: str, version: str | None = None, *, tracer_provider: Any = None
    ) -> None:
        self.name = name
        self.tracer: Any = None
        if opentelemetry_available():
            from opentelemetry import trace

            self.tracer = trace.get_tracer(name, version, tracer_provider=tracer_provider)

    def __repr__(self) -> str:
        return f"<Tracer {self.name!r}{'' if self.tracer is not None else ' (no-op)'}>"

    def span(
        self, name: str, *, attributes: Mapping[str, Any] | None = None, **options: Any
    ) -> contextlib.AbstractContextManager[Any]:
        """A span around a block, current inside it (``with tracer.span(name) as span``).
        ``options`` go to ``start_as_current_span`` (``kind``, ``links``...); an exception
        leaving the block is recorded on the span and sets its status to error."""
        if self.tracer is None:
            return _noop()
        return self.tracer.start_as_current_span(  # type: ignore[no-any-return]
            name, attributes=attributes, **options
        )


@contextlib.contextmanager
def _noop() -> Iterator[NoopSpan]:
    yield NoopSpan()
