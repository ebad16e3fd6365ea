"""User feedback: typed events about a response, reported to a sink.

::

    reply = await client.chat().user("2+2?").execute()
    previous = set_feedback_sink(InMemoryFeedbackSink(max_events=1000))
    await report_feedback(RatingFeedback(request_id=reply.request_id, rating=5))
    await report_feedback(ThumbsFeedback(request_id="req-456", is_positive=True))
    get_events_by_request("req-456")          # [ThumbsFeedback(...)]
    set_feedback_sink(previous)               # the sink is the process's: give it back

Four kinds of feedback (``RatingFeedback``, ``ThumbsFeedback``,
``ChoiceSelectionFeedback``, ``TextFeedback``), each with ``request_id``, a UTC
``timestamp``, and optional ``user_id``, ``session_id``, ``metadata`` (JSON values) and
``traceparent`` (the W3C trace context of the request's span, to link to it). Each is
checked when built: a bad field is a ``ConfigurationError`` naming it.

Sinks: ``InMemoryFeedbackSink`` (bounded: the oldest events are dropped),
``JsonlFeedbackSink`` (one JSON line per event, appended from a worker thread),
``OtelFeedbackSink`` (OpenTelemetry: an event on the current span, or a span linked to
the request's), ``CompositeFeedbackSink`` (several at once) and ``NoopFeedbackSink``
(the default: nothing is kept until a sink is set). None blocks the event loop. Write
your own by subclassing ``FeedbackSink``.
"""

from __future__ import annotations

import abc
import json
import math
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
import anyio.lowlevel
import anyio.to_thread
import attrs

from .._core._errors import ConfigurationError
from .._version import __version__

if TYPE_CHECKING:
    from opentelemetry.trace import SpanContext, TracerProvider
    from opentelemetry.util.types import AttributeValue

__all__ = [
    "ChoiceSelectionFeedback",
    "CompositeFeedbackSink",
    "Feedback",
    "FeedbackSink",
    "InMemoryFeedbackSink",
    "JsonlFeedbackSink",
    "NoopFeedbackSink",
    "OtelFeedbackSink",
    "RatingFeedback",
    "TextFeedback",
    "ThumbsFeedback",
    "current_traceparent",
    "feedback_from_dict",
    "get_events",
    "get_events_by_request",
    "get_feedback_sink",
    "report_feedback",
    "set_feedback_sink",
]

_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


# --------------------------------------------------------------------- validators


def _owner(instance: object) -> str:
    return type(instance).__name__


def _text(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(
            f"{_owner(instance)}.{attribute.name} must be a non-empty string, not {value!r}"
        )


def _optional_text(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _text(instance, attribute, value)


def _timestamp(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, datetime):
        raise ConfigurationError(
            f"{_owner(instance)}.timestamp must be a datetime, not {type(value).__name__}"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise ConfigurationError(
            f"{_owner(instance)}.timestamp must be timezone-aware"
            f" (datetime.now(timezone.utc)), not {value!r}"
        )


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _frozen_metadata(value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"Feedback.metadata must be a mapping, not {value!r}")
    return MappingProxyType(dict(value))


def _metadata(instance: object, attribute: attrs.Attribute[Any], value: Mapping[str, Any]) -> None:
    bad = [key for key in value if not isinstance(key, str)]
    if bad:
        raise ConfigurationError(
            f"{_owner(instance)}.metadata keys must be strings, not {bad[0]!r}"
        )
    try:
        json.dumps(dict(value), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ConfigurationError(
            f"{_owner(instance)}.metadata must hold JSON values only: {exc}"
        ) from None


def _traceparent(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    match = _TRACEPARENT.fullmatch(value) if isinstance(value, str) else None
    if match is None or set(match[1]) == {"0"} or set(match[2]) == {"0"}:
        raise ConfigurationError(
            f"{_owner(instance)}.traceparent must be a W3C traceparent"
            f" ('00-<32 hex>-<16 hex>-<2 hex>', ids not all zero), not {value!r}"
        )


def _int(instance: object, name: str, value: object, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigurationError(
            f"{_owner(instance)}.{name} must be an int >= {low}, not {value!r}"
        )
    return value


# ----------------------------------------------------------------------- feedback


@attrs.frozen(kw_only=True)
class Feedback:
    """What every kind of feedback carries (see the module docstring)."""

    #: the kind's name in ``to_dict()`` (``"type"``) and in telemetry
    feedback_type: ClassVar[str] = "feedback"

    request_id: str = attrs.field(validator=_text)
    timestamp: datetime = attrs.field(factory=_now, validator=_timestamp)
    user_id: str | None = attrs.field(default=None, validator=_optional_text)
    session_id: str | None = attrs.field(default=None, validator=_optional_text)
    metadata: Mapping[str, Any] = attrs.field(
        factory=dict,
        converter=_frozen_metadata,
        validator=_metadata,
        hash=False,
        repr=lambda value: repr(dict(value)),
    )
    traceparent: str | None = attrs.field(default=None, validator=_traceparent)

    def __attrs_pre_init__(self) -> None:
        if type(self) is Feedback:
            raise TypeError(
                "Feedback is the base class: report a RatingFeedback, ThumbsFeedback,"
                " ChoiceSelectionFeedback or TextFeedback"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``type`` first, the timestamp in ISO 8601;
        ``feedback_from_dict`` reads it back."""
        data: dict[str, Any] = {"type": self.feedback_type}
        for field in attrs.fields(type(self)):
            value = getattr(self, field.name)
            if field.name == "timestamp":
                value = value.isoformat()
            elif field.name == "metadata":
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            data[field.name] = value
        return data


@attrs.frozen(kw_only=True)
class RatingFeedback(Feedback):
    """A rating from 1 to ``max_rating`` (5), of one ``category`` (helpfulness,
    accuracy...) if given, with an optional ``comment``."""

    feedback_type: ClassVar[str] = "rating"

    rating: int
    max_rating: int = 5
    category: str | None = attrs.field(default=None, validator=_optional_text)
    comment: str | None = attrs.field(default=None, validator=_optional_text)

    def __attrs_post_init__(self) -> None:
        _int(self, "max_rating", self.max_rating, low=2)
        rating = self.rating
        if isinstance(rating, bool) or not isinstance(rating, int):
            raise ConfigurationError(f"RatingFeedback.rating must be an int, not {rating!r}")
        if not 1 <= rating <= self.max_rating:
            raise ConfigurationError(
                f"RatingFeedback.rating must be between 1 and max_rating={self.max_rating},"
                f" not {rating}"
            )


@attrs.frozen(kw_only=True)
class ThumbsFeedback(Feedback):
    """Thumbs up (``is_positive=True``) or down, with an optional ``reason``."""

    feedback_type: ClassVar[str] = "thumbs"

    is_positive: bool
    reason: str | None = attrs.field(default=None, validator=_optional_text)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.is_positive, bool):
            raise ConfigurationError(
                f"ThumbsFeedback.is_positive must be True or False, not {self.is_positive!r}"
            )


def _indices(value: object) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigurationError(
            f"ChoiceSelectionFeedback.rejected_indices must be a sequence of ints, not {value!r}"
        )
    return tuple(value)


@attrs.frozen(kw_only=True)
class ChoiceSelectionFeedback(Feedback):
    """Which of several candidates the user chose (A/B tests, best-of-n): the index of
    the chosen one, those of the ones rejected (distinct, without the chosen one), and
    how long the user took to choose, in milliseconds."""

    feedback_type: ClassVar[str] = "choice_selection"

    chosen_index: int
    rejected_indices: tuple[int, ...] = attrs.field(default=(), converter=_indices)
    latency_to_select_ms: float | None = None

    def __attrs_post_init__(self) -> None:
        _int(self, "chosen_index", self.chosen_index, low=0)
        bad = [i for i in self.rejected_indices if isinstance(i, bool) or not isinstance(i, int)]
        if bad or any(i < 0 for i in self.rejected_indices):
            raise ConfigurationError(
                f"ChoiceSelectionFeedback.rejected_indices must be ints >= 0,"
                f" not {list(self.rejected_indices)!r}"
            )
        if len(set(self.rejected_indices)) != len(self.rejected_indices):
            raise ConfigurationError(
                f"ChoiceSelectionFeedback.rejected_indices repeat an index:"
                f" {list(self.rejected_indices)}"
            )
        if self.chosen_index in self.rejected_indices:
            raise ConfigurationError(
                f"ChoiceSelectionFeedback.rejected_indices hold the chosen_index"
                f" {self.chosen_index}"
            )
        latency = self.latency_to_select_ms
        if latency is not None and (
            isinstance(latency, bool)
            or not isinstance(latency, (int, float))
            or not 0 <= latency < math.inf
        ):
            raise ConfigurationError(
                f"ChoiceSelectionFeedback.latency_to_select_ms must be a finite number >= 0,"
                f" not {latency!r}"
            )


@attrs.frozen(kw_only=True)
class TextFeedback(Feedback):
    """Free text from the user (a correction, a complaint), of an optional ``category``."""

    feedback_type: ClassVar[str] = "text"

    text: str = attrs.field(validator=_text)
    category: str | None = attrs.field(default=None, validator=_optional_text)


_KINDS: Mapping[str, type[Feedback]] = {
    cls.feedback_type: cls
    for cls in (RatingFeedback, ThumbsFeedback, ChoiceSelectionFeedback, TextFeedback)
}


def feedback_from_dict(data: Mapping[str, Any]) -> Feedback:
    """The feedback ``Feedback.to_dict()`` gave (a line of a ``JsonlFeedbackSink``)."""
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"a feedback event must be a JSON object, not {data!r}")
    fields = dict(data)
    kind = fields.pop("type", None)
    cls = _KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ConfigurationError(
            f"unknown feedback type {kind!r}: expected one of {', '.join(sorted(_KINDS))}"
        )
    names = {field.name for field in attrs.fields(cls)}
    unknown = sorted(set(fields) - names)
    if unknown:
        raise ConfigurationError(f"{cls.__name__} has no field {', '.join(unknown)}")
    stamp = fields.get("timestamp")
    if isinstance(stamp, str):
        try:
            fields["timestamp"] = datetime.fromisoformat(stamp)
        except ValueError:
            raise ConfigurationError(
                f"{cls.__name__}.timestamp must be an ISO 8601 time, not {stamp!r}"
            ) from None
    try:
        return cls(**fields)
    except TypeError as exc:  # a required field is missing
        raise ConfigurationError(f"{cls.__name__}: {exc}") from None


# -------------------------------------------------------------------------- sinks


class FeedbackSink(abc.ABC):
    """Where reported feedback goes. ``report`` must not block the event loop (hand
    blocking work to a thread); ``aclose`` releases what the sink holds (nothing, by
    default)."""

    @abc.abstractmethod
    async def report(self, feedback: Feedback) -> None:
        """Take one event."""

    async def aclose(self) -> None:  # noqa: B027 - optional: most sinks hold nothing
        """Release what the sink holds; idempotent."""


class _KeepsEvents(abc.ABC):
    """A sink that can give its events back."""

    @abc.abstractmethod
    def get_events(self) -> list[Feedback]: ...

    def get_events_by_request(self, request_id: str) -> list[Feedback]:
        """The events about one request, oldest first."""
        return [event for event in self.get_events() if event.request_id == request_id]


class NoopFeedbackSink(FeedbackSink):
    """Drops every event (the default sink)."""

    async def report(self, feedback: Feedback) -> None:
        await anyio.lowlevel.checkpoint()


class InMemoryFeedbackSink(FeedbackSink, _KeepsEvents):
    """The last ``max_events`` events in memory (the oldest dropped first; ``dropped``
    counts them)."""

    def __init__(self, max_events: int = 1000) -> None:
        if isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 1:
            raise ConfigurationError(
                f"InMemoryFeedbackSink.max_events must be an int >= 1, not {max_events!r}"
            )
        self.max_events = max_events
        self._events: deque[Feedback] = deque(maxlen=max_events)
        #: events dropped to keep within ``max_events``
        self.dropped = 0

    def __repr__(self) -> str:
        return f"<InMemoryFeedbackSink {len(self._events)}/{self.max_events} events>"

    def __len__(self) -> int:
        return len(self._events)

    async def report(self, feedback: Feedback) -> None:
        await anyio.lowlevel.checkpoint()
        if len(self._events) == self.max_events:
            self.dropped += 1
        self._events.append(feedback)

    def get_events(self) -> list[Feedback]:
        """Every event kept, oldest first."""
        return list(self._events)

    def clear(self) -> None:
        self._events.clear()


#: one lock per file, shared by every sink of the process writing it, held by the worker
#: thread while it writes: lines never interleave, whatever event loops the sinks run in
_FILE_LOCKS: dict[str, threading.Lock] = {}
_FILE_LOCKS_LOCK = threading.Lock()


def _file_lock(path: str) -> threading.Lock:
    with _FILE_LOCKS_LOCK:
        lock = _FILE_LOCKS.get(path)
        if lock is None:
            lock = _FILE_LOCKS[path] = threading.Lock()
        return lock


class JsonlFeedbackSink(FeedbackSink):
    """Appends one JSON line per event (``Feedback.to_dict()``) to ``path``, creating the
    file if needed (not its directory).

    The write runs in a worker thread (``anyio.to_thread``), under a lock per file shared
    by every sink of the process, so concurrent reporters never interleave lines; the
    file is opened for each write (a rotated file is simply created again). A report
    cancelled while its line is being written returns once the whole line is written.
    An ``OSError`` (no such directory, disk full) propagates from ``report_feedback``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
            raise ConfigurationError(
                f"JsonlFeedbackSink.path must be a file path (str or os.PathLike), not {path!r}"
            )
        self.path = os.fspath(path)
        self._lock = _file_lock(os.path.abspath(self.path))

    def __repr__(self) -> str:
        return f"<JsonlFeedbackSink {self.path!r}>"

    async def report(self, feedback: Feedback) -> None:
        line = json.dumps(feedback.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n"
        await anyio.to_thread.run_sync(self._append, line)

    def _append(self, line: str) -> None:
        with self._lock, open(self.path, "a", encoding="utf-8") as file:
            file.write(line)

    async def read_events(self) -> list[Feedback]:
        """Every event in the file, oldest first (read in a worker thread; no file: [])."""
        text = await anyio.to_thread.run_sync(self._read)
        events = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                events.append(feedback_from_dict(json.loads(line)))
            except (ValueError, RecursionError, ConfigurationError) as exc:
                raise ConfigurationError(
                    f"{self.path}:{number}: not a feedback event: {exc}"
                ) from None
        return events

    def _read(self) -> str:
        with self._lock:
            try:
                with open(self.path, encoding="utf-8") as file:
                    return file.read()
            except FileNotFoundError:
                return ""


class CompositeFeedbackSink(FeedbackSink, _KeepsEvents):
    """Reports each event to every sink, in order; every sink is tried even when one
    fails, then the first error is raised. ``get_events`` reads the first sink that
    keeps events (an ``InMemoryFeedbackSink``)."""

    def __init__(self, *sinks: FeedbackSink) -> None:
        for sink in sinks:
            if not isinstance(sink, FeedbackSink):
                raise ConfigurationError(
                    f"CompositeFeedbackSink takes FeedbackSink objects, not {sink!r}"
                )
        self.sinks = sinks

    def __repr__(self) -> str:
        return f"<CompositeFeedbackSink {list(self.sinks)!r}>"

    async def report(self, feedback: Feedback) -> None:
        error: Exception | None = None
        for sink in self.sinks:
            try:
                await sink.report(feedback)
            except Exception as exc:  # noqa: BLE001 - the others still get the event
                error = error or exc
        if error is not None:
            raise error

    async def aclose(self) -> None:
        for sink in self.sinks:
            await sink.aclose()

    def get_events(self) -> list[Feedback]:
        return _keeper(self).get_events()


def _keeper(sink: FeedbackSink) -> _KeepsEvents:
    """The sink (or first sink of a composite) that keeps events."""
    if isinstance(sink, CompositeFeedbackSink):
        for inner in sink.sinks:
            try:
                return _keeper(inner)
            except ConfigurationError:
                continue
    elif isinstance(sink, _KeepsEvents):
        return sink
    raise ConfigurationError(
        f"the feedback sink {sink!r} keeps no events to read back: set an"
        f" InMemoryFeedbackSink (alone or in a CompositeFeedbackSink)"
    )


# ------------------------------------------------------------------ OpenTelemetry

#: the name of the span event (or span) a feedback becomes, and its attributes' prefix
OTEL_EVENT_NAME = "ailib.feedback"
OTEL_PREFIX = "ailib.feedback."
#: fields of user-written text, sent only with ``include_text=True``
_TEXT_FIELDS = frozenset({"comment", "reason", "text"})


def _otel_trace() -> Any:
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    return trace


def _span_context(traceparent: str) -> SpanContext:
    from opentelemetry.trace import SpanContext, TraceFlags

    match = _TRACEPARENT.fullmatch(traceparent)
    assert match is not None  # checked when the feedback was built
    return SpanContext(
        trace_id=int(match[1], 16),
        span_id=int(match[2], 16),
        is_remote=True,
        trace_flags=TraceFlags(int(match[3], 16)),
    )


def current_traceparent() -> str | None:
    """The W3C traceparent of the current OpenTelemetry span (None without a valid span
    or without OpenTelemetry): keep it with a response to link its feedback later::

        reply = await client.chat().user("hi").execute()
        traceparent = current_traceparent()        # inside the request's span
    """
    trace = _otel_trace()
    if trace is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def _attribute(value: Any) -> AttributeValue | None:
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, int) for v in value):
        return list(value)
    return None


class OtelFeedbackSink(FeedbackSink):
    """Feedback into OpenTelemetry traces, through the OpenTelemetry API only (extra
    ``otel``; the SDK and exporters are the application's).

    - a feedback linked to its request — a ``traceparent`` on it, or else a span
      context that ``span_context_for(request_id)`` returns — becomes a span of its own
      (``ailib.feedback``, no duration, at the feedback's time) under the current span,
      with a link to the request's span;
    - otherwise it becomes an event ``ailib.feedback`` on the current span when that
      span records, else a span of its own.

    Attributes are ``ailib.feedback.<field>`` (``type``, ``request_id``, ``rating``,
    ``is_positive``...; ``metadata.<key>`` for each metadata value that is a plain
    value). User-written text (``comment``, ``reason``, ``text``) is sent only with
    ``include_text=True``. The spans come from ``tracer_provider`` (default: the global
    one). Constructing it without OpenTelemetry installed raises ``ConfigurationError``.
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        span_context_for: Callable[[str], SpanContext | None] | None = None,
        include_text: bool = False,
    ) -> None:
        trace = _otel_trace()
        if trace is None:
            raise ConfigurationError(
                "OtelFeedbackSink needs the OpenTelemetry API, which is not installed:"
                " pip install 'ailib-anyio[otel]'"
            )
        if span_context_for is not None and not callable(span_context_for):
            raise ConfigurationError(
                f"OtelFeedbackSink.span_context_for must be a function of a request id,"
                f" not {span_context_for!r}"
            )
        self._trace = trace
        self._tracer = trace.get_tracer("ailib_anyio", __version__, tracer_provider=tracer_provider)
        self._span_context_for = span_context_for
        self.include_text = include_text

    def attributes(self, feedback: Feedback) -> dict[str, AttributeValue]:
        """The attributes ``feedback`` is recorded with."""
        found: dict[str, AttributeValue] = {}
        for name, value in feedback.to_dict().items():
            if name in ("timestamp", "traceparent") or value is None:
                continue
            if name in _TEXT_FIELDS and not self.include_text:
                continue
            if name == "metadata":
                for key, item in value.items():
                    plain = _attribute(item)
                    if plain is not None:
                        found[f"{OTEL_PREFIX}metadata.{key}"] = plain
                continue
            plain = _attribute(value)
            if plain is not None:
                found[OTEL_PREFIX + name] = plain
        return found

    async def report(self, feedback: Feedback) -> None:
        await anyio.lowlevel.checkpoint()
        attributes = self.attributes(feedback)
        when = int(feedback.timestamp.timestamp() * 1e9)
        linked: SpanContext | None = None
        if feedback.traceparent is not None:
            linked = _span_context(feedback.traceparent)
        elif self._span_context_for is not None:
            linked = self._span_context_for(feedback.request_id)
        trace = self._trace
        if linked is None:
            current = trace.get_current_span()
            if current.is_recording():
                current.add_event(OTEL_EVENT_NAME, attributes, timestamp=when)
                return
        links = [trace.Link(linked)] if linked is not None and linked.is_valid else None
        span = self._tracer.start_span(
            OTEL_EVENT_NAME, attributes=attributes, links=links, start_time=when
        )
        span.end(end_time=when)


# ------------------------------------------------------------- the process's sink

_sink: FeedbackSink = NoopFeedbackSink()


def set_feedback_sink(sink: FeedbackSink) -> FeedbackSink:
    """Send every ``report_feedback`` of the process to ``sink``; returns the sink it
    replaces (to restore it later)."""
    global _sink
    if not isinstance(sink, FeedbackSink):
        raise ConfigurationError(f"set_feedback_sink takes a FeedbackSink, not {sink!r}")
    previous, _sink = _sink, sink
    return previous


def get_feedback_sink() -> FeedbackSink:
    """The sink ``report_feedback`` uses (a ``NoopFeedbackSink`` until one is set)."""
    return _sink


async def report_feedback(feedback: Feedback) -> None:
    """Report ``feedback`` to the process's sink (``set_feedback_sink``)."""
    if not isinstance(feedback, Feedback):
        raise ConfigurationError(
            f"report_feedback takes a RatingFeedback, ThumbsFeedback, ChoiceSelectionFeedback"
            f" or TextFeedback, not {feedback!r}"
        )
    await _sink.report(feedback)


def get_events() -> list[Feedback]:
    """Every event the process's sink keeps, oldest first (an ``InMemoryFeedbackSink``,
    alone or first in a ``CompositeFeedbackSink``; another sink raises
    ``ConfigurationError``)."""
    return _keeper(_sink).get_events()


def get_events_by_request(request_id: str) -> list[Feedback]:
    """The events about one request the process's sink keeps, oldest first."""
    return _keeper(_sink).get_events_by_request(request_id)
