"""User feedback: the four kinds and their checks, the process-wide sink, and the memory,
JSONL, composite and OpenTelemetry sinks (the SDK's in-memory exporter), on asyncio and
trio."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ailib_anyio import ConfigurationError
from ailib_anyio.feedback import (
    ChoiceSelectionFeedback,
    CompositeFeedbackSink,
    Feedback,
    FeedbackSink,
    InMemoryFeedbackSink,
    JsonlFeedbackSink,
    NoopFeedbackSink,
    OtelFeedbackSink,
    RatingFeedback,
    TextFeedback,
    ThumbsFeedback,
    current_traceparent,
    feedback_from_dict,
    get_events,
    get_events_by_request,
    get_feedback_sink,
    report_feedback,
    set_feedback_sink,
)

pytestmark = pytest.mark.anyio

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture(autouse=True)
def restore_sink() -> Iterator[None]:
    """Each test starts with the default sink; the process's sink is given back after."""
    previous = set_feedback_sink(NoopFeedbackSink())
    yield
    set_feedback_sink(previous)


def examples() -> list[Feedback]:
    stamp = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    return [
        RatingFeedback(
            request_id="req-1",
            rating=5,
            category="helpfulness",
            comment="Great response!",
            user_id="u1",
            session_id="s1",
            metadata={"ui": "web", "tags": ["a", "b"], "n": 1.5},
            timestamp=stamp,
        ),
        ThumbsFeedback(request_id="req-2", is_positive=False, reason="wrong", timestamp=stamp),
        ChoiceSelectionFeedback(
            request_id="req-3", chosen_index=0, rejected_indices=[1, 2], latency_to_select_ms=1500.0
        ),
        TextFeedback(request_id="req-4", text="Line one\nline two", traceparent=TRACEPARENT),
    ]


# ------------------------------------------------------------------ the events


def test_each_kind_round_trips_through_a_dict() -> None:
    for event in examples():
        data = event.to_dict()
        assert next(iter(data)) == "type"
        assert json.loads(json.dumps(data)) == data  # JSON-ready
        assert feedback_from_dict(data) == event
    rating = examples()[0].to_dict()
    assert rating["type"] == "rating" and rating["timestamp"] == "2025-01-02T03:04:05+02:00"
    assert rating["metadata"] == {"ui": "web", "tags": ["a", "b"], "n": 1.5}


def test_defaults_and_repr() -> None:
    event = ThumbsFeedback(request_id="r", is_positive=True)
    assert event.timestamp.tzinfo is timezone.utc
    assert abs((datetime.now(timezone.utc) - event.timestamp).total_seconds()) < 60
    assert (event.user_id, event.session_id, dict(event.metadata)) == (None, None, {})
    assert repr(event).startswith("ThumbsFeedback(request_id='r', timestamp=")
    assert "metadata={}" in repr(event)
    hash(event)  # usable in sets, metadata aside
    with pytest.raises(TypeError):
        event.metadata["x"] = 1  # type: ignore[index]
    with pytest.raises(TypeError, match="Feedback is the base class"):
        Feedback(request_id="r")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: RatingFeedback(request_id="", rating=3),
            "RatingFeedback.request_id must be a non-empty string, not ''",
        ),
        (
            lambda: RatingFeedback(request_id="r", rating=0),
            "RatingFeedback.rating must be between 1 and max_rating=5, not 0",
        ),
        (
            lambda: RatingFeedback(request_id="r", rating=7, max_rating=10, comment=""),
            "RatingFeedback.comment must be a non-empty string, not ''",
        ),
        (
            lambda: RatingFeedback(request_id="r", rating=4.5),
            "RatingFeedback.rating must be an int, not 4.5",
        ),
        (
            lambda: RatingFeedback(request_id="r", rating=1, max_rating=1),
            "RatingFeedback.max_rating must be an int >= 2, not 1",
        ),
        (
            lambda: ThumbsFeedback(request_id="r", is_positive=1),
            "ThumbsFeedback.is_positive must be True or False, not 1",
        ),
        (
            lambda: ChoiceSelectionFeedback(request_id="r", chosen_index=-1),
            "ChoiceSelectionFeedback.chosen_index must be an int >= 0, not -1",
        ),
        (
            lambda: ChoiceSelectionFeedback(request_id="r", chosen_index=1, rejected_indices=[1]),
            "ChoiceSelectionFeedback.rejected_indices hold the chosen_index 1",
        ),
        (
            lambda: ChoiceSelectionFeedback(
                request_id="r", chosen_index=0, rejected_indices=[2, 2]
            ),
            "ChoiceSelectionFeedback.rejected_indices repeat an index: [2, 2]",
        ),
        (
            lambda: ChoiceSelectionFeedback(request_id="r", chosen_index=0, rejected_indices="12"),
            "ChoiceSelectionFeedback.rejected_indices must be a sequence of ints, not '12'",
        ),
        (
            lambda: ChoiceSelectionFeedback(
                request_id="r", chosen_index=0, rejected_indices=[1, -2]
            ),
            "ChoiceSelectionFeedback.rejected_indices must be ints >= 0, not [1, -2]",
        ),
        (
            lambda: ChoiceSelectionFeedback(
                request_id="r", chosen_index=0, latency_to_select_ms=float("nan")
            ),
            "ChoiceSelectionFeedback.latency_to_select_ms must be a finite number >= 0, not nan",
        ),
        (
            lambda: TextFeedback(request_id="r", text="  "),
            "TextFeedback.text must be a non-empty string, not '  '",
        ),
        (
            lambda: TextFeedback(request_id="r", text="t", timestamp=datetime(2025, 1, 1)),
            "TextFeedback.timestamp must be timezone-aware (datetime.now(timezone.utc)),"
            " not datetime.datetime(2025, 1, 1, 0, 0)",
        ),
        (
            lambda: TextFeedback(request_id="r", text="t", timestamp="2025-01-01"),
            "TextFeedback.timestamp must be a datetime, not str",
        ),
        (
            lambda: TextFeedback(request_id="r", text="t", metadata={"x": {1, 2}}),
            "TextFeedback.metadata must hold JSON values only: Object of type set is not"
            " JSON serializable",
        ),
        (
            lambda: TextFeedback(request_id="r", text="t", metadata={"x": float("inf")}),
            "TextFeedback.metadata must hold JSON values only: Out of range float values are"
            " not JSON compliant",
        ),
        (
            lambda: TextFeedback(request_id="r", text="t", metadata={1: "x"}),
            "TextFeedback.metadata keys must be strings, not 1",
        ),
        (
            lambda: TextFeedback(request_id="r", text="t", metadata=[("a", 1)]),
            "Feedback.metadata must be a mapping, not [('a', 1)]",
        ),
        (
            lambda: TextFeedback(request_id="r", text="t", traceparent="00-abc-def-01"),
            "TextFeedback.traceparent must be a W3C traceparent ('00-<32 hex>-<16 hex>-<2 hex>',"
            " ids not all zero), not '00-abc-def-01'",
        ),
        (
            lambda: TextFeedback(
                request_id="r", text="t", traceparent=f"00-{'0' * 32}-b7ad6b7169203331-01"
            ),
            "TextFeedback.traceparent must be a W3C traceparent",
        ),
    ],
)
def test_bad_fields_are_named(build: Any, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        build()
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"type": "stars", "request_id": "r"}, "unknown feedback type 'stars': expected one of"),
        ({"request_id": "r"}, "unknown feedback type None"),
        (
            {"type": "thumbs", "request_id": "r", "is_positive": True, "x": 1},
            "ThumbsFeedback has no field x",
        ),
        ({"type": "thumbs", "request_id": "r"}, "ThumbsFeedback: "),
        (
            {"type": "text", "request_id": "r", "text": "t", "timestamp": "yesterday"},
            "TextFeedback.timestamp must be an ISO 8601 time, not 'yesterday'",
        ),
        ([1, 2], "a feedback event must be a JSON object, not [1, 2]"),
    ],
)
def test_bad_dicts_are_named(data: Any, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        feedback_from_dict(data)
    assert str(info.value).startswith(message)


# ------------------------------------------------------------------ the process's sink


def test_nothing_is_kept_by_default() -> None:
    code = "import ailib_anyio.feedback as f; print(type(f.get_feedback_sink()).__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "NoopFeedbackSink"


async def test_the_module_level_api() -> None:
    assert isinstance(get_feedback_sink(), NoopFeedbackSink)
    await report_feedback(ThumbsFeedback(request_id="lost", is_positive=True))
    with pytest.raises(ConfigurationError, match="keeps no events to read back"):
        get_events()
    sink = InMemoryFeedbackSink(max_events=1000)
    previous = set_feedback_sink(sink)
    assert isinstance(previous, NoopFeedbackSink) and get_feedback_sink() is sink
    for event in examples():
        await report_feedback(event)
    await report_feedback(RatingFeedback(request_id="req-1", rating=2))
    assert get_events() == sink.get_events()
    assert [e.request_id for e in get_events()] == ["req-1", "req-2", "req-3", "req-4", "req-1"]
    assert [type(e) for e in get_events_by_request("req-1")] == [RatingFeedback] * 2
    assert sink.get_events_by_request("nope") == []
    with pytest.raises(ConfigurationError, match="report_feedback takes a RatingFeedback"):
        await report_feedback({"rating": 5})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="set_feedback_sink takes a FeedbackSink"):
        set_feedback_sink(print)  # type: ignore[arg-type]


async def test_memory_sink_is_bounded() -> None:
    sink = InMemoryFeedbackSink(max_events=3)
    for n in range(5):
        await sink.report(ThumbsFeedback(request_id=f"r{n}", is_positive=n % 2 == 0))
    assert [e.request_id for e in sink.get_events()] == ["r2", "r3", "r4"]  # the oldest gone
    assert (len(sink), sink.dropped) == (3, 2)
    assert repr(sink) == "<InMemoryFeedbackSink 3/3 events>"
    sink.clear()
    assert sink.get_events() == []
    for bad in (0, True, 2.5):
        with pytest.raises(ConfigurationError, match=r"InMemoryFeedbackSink\.max_events must be"):
            InMemoryFeedbackSink(max_events=bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------ JSONL


async def test_jsonl_lines_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    sinks = [JsonlFeedbackSink(path), JsonlFeedbackSink(str(path))]  # two sinks, one file
    comment = "x" * 20_000  # long lines: a torn write would show

    async def reporter(n: int) -> None:
        event = RatingFeedback(request_id=f"req-{n}", rating=1 + n % 5, comment=f"{n}{comment}")
        await sinks[n % 2].report(event)

    async with anyio.create_task_group() as group:
        for n in range(200):
            group.start_soon(reporter, n)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 200
    seen = {json.loads(line)["request_id"] for line in lines}
    assert seen == {f"req-{n}" for n in range(200)}
    events = await sinks[0].read_events()
    assert sorted(e.request_id for e in events) == sorted(seen)
    assert all(isinstance(e, RatingFeedback) and e.comment for e in events)


async def test_jsonl_writes_off_the_event_loop(tmp_path: Path, monkeypatch: Any) -> None:
    threads: list[int] = []
    append = JsonlFeedbackSink._append

    def spy(self: JsonlFeedbackSink, line: str) -> None:
        threads.append(threading.get_ident())
        append(self, line)

    monkeypatch.setattr(JsonlFeedbackSink, "_append", spy)
    sink = JsonlFeedbackSink(tmp_path / "f.jsonl")
    set_feedback_sink(sink)
    events = examples()
    for event in events:
        await report_feedback(event)
    assert threads and threading.get_ident() not in threads
    assert await sink.read_events() == events  # in order, and whole
    lines = (tmp_path / "f.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4  # the newline inside the text stays escaped in its line
    assert json.loads(lines[3])["text"] == "Line one\nline two"
    assert repr(sink) == f"<JsonlFeedbackSink {str(tmp_path / 'f.jsonl')!r}>"
    with pytest.raises(ConfigurationError, match="keeps no events to read back"):
        get_events()


async def test_jsonl_errors(tmp_path: Path) -> None:
    assert await JsonlFeedbackSink(tmp_path / "none.jsonl").read_events() == []
    with pytest.raises(FileNotFoundError):
        await JsonlFeedbackSink(tmp_path / "no" / "dir.jsonl").report(examples()[1])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(examples()[1].to_dict()) + "\n\n{not json\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"bad\.jsonl:3: not a feedback event"):
        await JsonlFeedbackSink(bad).read_events()
    for path in (3, ""):
        with pytest.raises(ConfigurationError, match=r"JsonlFeedbackSink\.path must be a file"):
            JsonlFeedbackSink(path)  # type: ignore[arg-type]


# ------------------------------------------------------------------ composite


class Broken(FeedbackSink):
    async def report(self, feedback: Feedback) -> None:
        raise OSError("disk full")


async def test_composite_reports_to_every_sink(tmp_path: Path) -> None:
    memory = InMemoryFeedbackSink()
    jsonl = JsonlFeedbackSink(tmp_path / "f.jsonl")
    composite = CompositeFeedbackSink(Broken(), jsonl, memory)
    set_feedback_sink(composite)
    with pytest.raises(OSError, match="disk full"):
        await report_feedback(examples()[0])
    assert get_events() == [examples()[0]] == await jsonl.read_events()  # both still got it
    assert get_events_by_request("req-1") == memory.get_events()
    await composite.aclose()
    nested = CompositeFeedbackSink(jsonl, CompositeFeedbackSink(NoopFeedbackSink(), memory))
    assert nested.get_events() == memory.get_events()
    with pytest.raises(ConfigurationError, match="keeps no events"):
        CompositeFeedbackSink(jsonl).get_events()
    with pytest.raises(ConfigurationError, match="CompositeFeedbackSink takes FeedbackSink"):
        CompositeFeedbackSink(memory, [])  # type: ignore[arg-type]


# ------------------------------------------------------------------ OpenTelemetry


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


async def test_otel_event_on_the_current_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    set_feedback_sink(OtelFeedbackSink(tracer_provider=provider))
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("handle feedback"):
        await report_feedback(examples()[0])
        await anyio.sleep(0.01)  # the context survives a real wait on either backend
        await report_feedback(examples()[2])
    (span,) = exporter.get_finished_spans()
    assert span.name == "handle feedback"
    first, second = span.events
    assert first.name == "ailib.feedback"
    assert dict(first.attributes or {}) == {
        "ailib.feedback.type": "rating",
        "ailib.feedback.request_id": "req-1",
        "ailib.feedback.user_id": "u1",
        "ailib.feedback.session_id": "s1",
        "ailib.feedback.metadata.ui": "web",
        "ailib.feedback.metadata.n": 1.5,
        "ailib.feedback.rating": 5,
        "ailib.feedback.max_rating": 5,
        "ailib.feedback.category": "helpfulness",
    }  # no comment: user text only with include_text=True
    assert first.timestamp == int(examples()[0].timestamp.timestamp() * 1e9)
    assert dict(second.attributes or {}) == {
        "ailib.feedback.type": "choice_selection",
        "ailib.feedback.request_id": "req-3",
        "ailib.feedback.chosen_index": 0,
        "ailib.feedback.rejected_indices": (1, 2),
        "ailib.feedback.latency_to_select_ms": 1500.0,
    }


async def test_otel_span_linked_to_the_request(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    sink = OtelFeedbackSink(tracer_provider=provider, include_text=True)
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("handler") as handler:
        await sink.report(examples()[3])  # carries a traceparent
    linked, parent = exporter.get_finished_spans()
    assert linked.name == "ailib.feedback" and parent.name == "handler"
    assert linked.parent is not None and linked.parent.span_id == handler.get_span_context().span_id
    (link,) = linked.links
    assert link.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert link.context.span_id == 0xB7AD6B7169203331 and link.context.is_remote
    assert linked.attributes is not None and linked.attributes["ailib.feedback.text"] == (
        "Line one\nline two"
    )
    assert linked.start_time == linked.end_time  # at the feedback's time, no duration


async def test_otel_span_context_from_a_resolver(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("chat") as request_span:
        traceparent = current_traceparent()
    spans: dict[str, trace.SpanContext] = {"req-2": request_span.get_span_context()}
    context = request_span.get_span_context()
    flags = int(context.trace_flags)
    assert flags & 1  # sampled
    assert traceparent == f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}"
    assert current_traceparent() is None  # outside any span
    sink = OtelFeedbackSink(tracer_provider=provider, span_context_for=spans.get)
    await sink.report(examples()[1])  # req-2: linked through the resolver
    await sink.report(ThumbsFeedback(request_id="req-9", is_positive=True))  # no link, no span
    _, linked, alone = exporter.get_finished_spans()
    assert [link.context for link in linked.links] == [request_span.get_span_context()]
    assert linked.parent is None and "ailib.feedback.reason" not in (linked.attributes or {})
    assert alone.links == () or list(alone.links) == []
    assert alone.attributes is not None and alone.attributes["ailib.feedback.is_positive"] is True


def test_otel_sink_settings_and_without_opentelemetry(monkeypatch: Any) -> None:
    with pytest.raises(ConfigurationError, match="span_context_for must be a function"):
        OtelFeedbackSink(span_context_for="req")  # type: ignore[arg-type]
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # as if not installed
    with pytest.raises(ConfigurationError) as info:
        OtelFeedbackSink()
    assert str(info.value) == (
        "OtelFeedbackSink needs the OpenTelemetry API, which is not installed:"
        " pip install 'ailib-anyio[otel]'"
    )
    assert current_traceparent() is None
