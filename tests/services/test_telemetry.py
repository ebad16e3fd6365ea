"""OpenTelemetry tracing and GenAI metrics, end to end against the loopback mock provider on
asyncio and trio, recorded by the OpenTelemetry SDK's in-memory exporter and reader: a
chat, a stream, a retried call, a fallback, a hedge, errors and cancellation; content
capture (off by default); the semantic-conventions opt-in; nesting under concurrency; and
that nothing of it is installed or imported without opentelemetry.

Under trio the clock is virtual (hedge delays and backoffs cost nothing); under asyncio the
waits are real and short.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import trio.testing
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from ailib_anyio import (
    Client,
    ContentDelta,
    HedgeConfig,
    Middleware,
    MiddlewareError,
    RetryConfig,
    ServerError,
    TransportError,
    open_client,
)
from ailib_anyio._client._targetstream import TargetStream
from ailib_anyio._services._telemetry import _install
from ailib_anyio._services._telemetry._otel import OpenTelemetryMiddleware
from ailib_anyio.telemetry import NoopSpan, Tracer
from ailib_anyio.testing import MockProvider, Reply, ScriptedReply

pytestmark = pytest.mark.anyio

KEY = "sk-telemetry-secret-7731"
FAST_RETRY = RetryConfig(max_retries=3, min_delay=0.01, max_delay=0.05)


@pytest.fixture(
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param(
            ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0.05)}), id="trio"
        ),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> object:
    return request.param


class Otel:
    """An SDK tracer provider with an in-memory exporter and a meter provider with an
    in-memory reader, handed to clients as settings."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    @property
    def settings(self) -> dict[str, Any]:
        return {"tracer_provider": self.tracer_provider, "meter_provider": self.meter_provider}

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def calls(self) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.name.startswith("chat ")]

    def attempts_of(self, call: ReadableSpan) -> list[ReadableSpan]:
        found = [
            s
            for s in self.spans()
            if s.parent is not None and s.parent.span_id == call.context.span_id
        ]
        return sorted(found, key=lambda s: s.attributes["ailib.attempt.number"])

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        if data is None:
            return []
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


@pytest.fixture
def otel() -> Iterator[Otel]:
    found = Otel()
    yield found
    found.tracer_provider.shutdown()
    found.meter_provider.shutdown()


def client_for(mock: MockProvider, otel: Otel, model: str = "openai/gpt-4o", **kw: Any) -> Client:
    return open_client(model, api_key=KEY, base_url=mock.openai_base_url, **otel.settings, **kw)


def fallback(mock: MockProvider, model: str = "openai/gpt-4o-mini") -> Client:
    return Client(model, api_key=KEY, base_url=mock.openai_base_url, telemetry=False)


def attributes(span: ReadableSpan) -> dict[str, Any]:
    assert span.attributes is not None
    return dict(span.attributes)


# ------------------------------------------------------------------ spans


async def test_a_chat_is_a_client_span_with_the_genai_attributes(
    mock: MockProvider, otel: Otel
) -> None:
    mock.enqueue(ScriptedReply(content="It is four.", usage=(12, 3)))
    async with client_for(mock, otel) as client:
        reply = (
            await client.chat().user("2+2?").temperature(0.2).max_tokens(50).top_p(0.9).execute()
        )
    [call] = otel.calls()
    assert call.name == "chat gpt-4o"
    assert call.kind is SpanKind.CLIENT
    assert call.parent is None
    assert call.status.status_code is StatusCode.UNSET
    assert attributes(call) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 50,
        "gen_ai.request.top_p": 0.9,
        "server.address": "127.0.0.1",
        "server.port": mock.port,
        "gen_ai.response.model": "gpt-4o",
        "gen_ai.response.id": "chatcmpl-mock-1",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 3,
    }
    assert reply.response_id == "chatcmpl-mock-1"
    assert not call.events  # no content unless asked for
    [attempt] = otel.attempts_of(call)
    assert attempt.name == "attempt openai/gpt-4o"
    assert attempt.kind is SpanKind.INTERNAL
    assert attempt.context.trace_id == call.context.trace_id
    assert attributes(attempt) == {
        "ailib.attempt.number": 1,
        "ailib.attempt.target": 0,
        "ailib.attempt.outcome": "ok",
    }
    assert len(otel.spans()) == 2


async def test_a_stream_span_ends_when_the_stream_closes_with_what_it_delivered(
    mock: MockProvider, otel: Otel
) -> None:
    mock.enqueue(ScriptedReply(content="once upon a time", chunk_size=4, usage=(5, 4)))
    async with client_for(mock, otel) as client:
        async with client.chat().user("a story").stream() as stream:
            first = await stream.__anext__()
            assert otel.spans() == []  # open, not ended
            text = [first.text] if isinstance(first, ContentDelta) else []
            text += [e.text async for e in stream if isinstance(e, ContentDelta)]
        assert "".join(text) == "once upon a time"
    [call] = otel.calls()
    found = attributes(call)
    assert found["gen_ai.request.stream"] is True
    assert found["gen_ai.usage.input_tokens"] == 5
    assert found["gen_ai.usage.output_tokens"] == 4
    assert found["gen_ai.response.finish_reasons"] == ("stop",)
    assert found["gen_ai.response.id"] == "chatcmpl-mock-1"
    ttft = found["gen_ai.response.time_to_first_chunk"]
    assert 0 < ttft <= (call.end_time - call.start_time) / 1e9  # type: ignore[operator]
    [attempt] = otel.attempts_of(call)
    assert attempt.end_time is not None and call.end_time is not None
    assert attempt.end_time <= call.end_time  # both end at close, the attempt first
    assert attributes(attempt)["ailib.attempt.outcome"] == "ok"


async def test_a_stream_left_early_ends_its_span_at_once(mock: MockProvider, otel: Otel) -> None:
    mock.enqueue(ScriptedReply(content="x" * 200, chunk_size=2, delay_between_chunks=0.01))
    async with client_for(mock, otel) as client:
        async with client.chat().user("go").stream() as stream:
            async for _ in stream:
                break
        [call] = otel.calls()  # ended when the block was left, not at the end of the body
    assert call.status.status_code is StatusCode.UNSET
    assert attributes(otel.attempts_of(call)[0])["ailib.attempt.outcome"] == "ok"


async def test_a_stream_cut_mid_way_records_the_error(mock: MockProvider, otel: Otel) -> None:
    mock.enqueue(ScriptedReply(content="x" * 400, chunk_size=4, close_after_bytes=1500))
    async with client_for(mock, otel) as client:
        with pytest.raises(TransportError):
            async with client.chat().user("go").stream() as stream:
                async for _ in stream:
                    pass
    [call] = otel.calls()
    assert attributes(call)["error.type"] == "TransportError"
    assert call.status.status_code is StatusCode.ERROR
    [attempt] = otel.attempts_of(call)
    assert attributes(attempt)["ailib.attempt.outcome"] == "error"
    assert attributes(attempt)["error.type"] == "TransportError"
    [duration] = otel.points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == "TransportError"


async def test_retries_are_sibling_attempt_spans(mock: MockProvider, otel: Otel) -> None:
    mock.enqueue(
        Reply.error(500, "boom", type="server_error"),
        Reply.error(502, "bad gateway", type="server_error"),
        ScriptedReply(content="ok"),
    )
    async with client_for(mock, otel, retry=FAST_RETRY) as client:
        await client.chat().user("hi").execute()
    [call] = otel.calls()
    attempts = otel.attempts_of(call)
    assert [attributes(a)["ailib.attempt.number"] for a in attempts] == [1, 2, 3]
    assert [attributes(a)["ailib.attempt.outcome"] for a in attempts] == ["error", "error", "ok"]
    assert [attributes(a).get("error.type") for a in attempts] == [
        "ServerError",
        "ServerError",
        None,
    ]
    assert [a.status.status_code for a in attempts] == [
        StatusCode.ERROR,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    assert attempts[0].events[0].name == "exception"
    assert call.status.status_code is StatusCode.UNSET
    assert "error.type" not in attributes(call)


async def test_a_fallback_is_a_sibling_attempt_on_the_next_target(
    mock: MockProvider, otel: Otel
) -> None:
    mock.enqueue(Reply.error(500, "boom", type="server_error"), ScriptedReply(content="saved"))
    async with client_for(mock, otel, max_retries=0, fallbacks=[fallback(mock)]) as client:
        reply = await client.chat().user("hi").execute()
    assert reply.content == "saved"
    [call] = otel.calls()
    first, second = otel.attempts_of(call)
    assert (first.name, second.name) == ("attempt openai/gpt-4o", "attempt openai/gpt-4o-mini")
    assert [attributes(a)["ailib.attempt.target"] for a in (first, second)] == [0, 1]
    assert attributes(first)["error.type"] == "ServerError"
    assert attributes(call)["gen_ai.response.model"] == "gpt-4o-mini"


async def test_the_losing_hedge_is_ended_as_cancelled(mock: MockProvider, otel: Otel) -> None:
    mock.enqueue(
        ScriptedReply(content="slow", delay_before_headers=30), ScriptedReply(content="fast")
    )
    async with client_for(
        mock, otel, max_retries=0, fallbacks=[fallback(mock)], hedge=HedgeConfig(delay=0.2)
    ) as client:
        reply = await client.chat().user("hi").execute()
        with anyio.fail_after(5):
            await mock.requests[0].wait_disconnected()
    assert reply.content == "fast"
    [call] = otel.calls()
    slow, fast = otel.attempts_of(call)
    assert attributes(slow)["ailib.attempt.outcome"] == "cancelled"
    assert attributes(slow)["ailib.attempt.target"] == 0
    assert slow.status.status_code is StatusCode.UNSET  # losing a race is no error
    assert attributes(fast)["ailib.attempt.outcome"] == "ok"
    assert attributes(fast)["ailib.attempt.target"] == 1
    assert call.status.status_code is StatusCode.UNSET


async def test_a_hedged_stream_keeps_the_winner_open_and_the_loser_cancelled(
    mock: MockProvider, otel: Otel
) -> None:
    mock.enqueue(
        ScriptedReply(content="slow", delay_before_headers=30),
        ScriptedReply(content="fast stream", chunk_size=3),
    )
    async with client_for(
        mock, otel, max_retries=0, fallbacks=[fallback(mock)], hedge=HedgeConfig(delay=0.1)
    ) as client:
        async with client.chat().user("hi").stream() as stream:
            text = "".join([e.text async for e in stream if isinstance(e, ContentDelta)])
        with anyio.fail_after(5):
            await mock.requests[0].wait_disconnected()
    assert text == "fast stream"
    [call] = otel.calls()
    slow, fast = otel.attempts_of(call)
    assert attributes(slow)["ailib.attempt.outcome"] == "cancelled"
    assert attributes(fast)["ailib.attempt.outcome"] == "ok"
    assert fast.end_time is not None and slow.end_time is not None
    assert fast.end_time > slow.end_time  # the winner ended with the stream


async def test_a_failed_call_has_its_error_type(mock: MockProvider, otel: Otel) -> None:
    mock.enqueue(Reply.error(500, "boom", type="server_error"))
    async with client_for(mock, otel, max_retries=0) as client:
        with pytest.raises(ServerError):
            await client.chat().user("hi").execute()
    [call] = otel.calls()
    assert attributes(call)["error.type"] == "ServerError"
    assert call.status.status_code is StatusCode.ERROR
    assert KEY not in repr([s.to_json() for s in otel.spans()])


async def test_a_cancelled_call_is_ended_as_cancelled(mock: MockProvider, otel: Otel) -> None:
    mock.enqueue(ScriptedReply(content="late", delay_before_headers=30))
    async with client_for(mock, otel, max_retries=0) as client:
        with anyio.move_on_after(0.2):
            await client.chat().user("hi").execute()
    [call] = otel.calls()
    assert attributes(call)["error.type"] == "cancelled"
    assert attributes(otel.attempts_of(call)[0])["ailib.attempt.outcome"] == "cancelled"
    [duration] = otel.points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == "cancelled"


async def test_spans_nest_under_concurrency(mock: MockProvider, otel: Otel) -> None:
    outer = Tracer("svc", tracer_provider=otel.tracer_provider)

    async def one(client: Client, n: int) -> None:
        with outer.span(f"job {n}"):
            if n % 2:
                async with client.chat().user(f"q{n}").stream() as stream:
                    async for _ in stream:
                        await anyio.lowlevel.checkpoint()
            else:
                await client.chat().user(f"q{n}").execute()

    async with client_for(mock, otel) as client, anyio.create_task_group() as tg:
        for n in range(20):
            tg.start_soon(one, client, n)
    spans = otel.spans()
    jobs = {s.context.span_id: s for s in spans if s.name.startswith("job ")}
    calls = otel.calls()
    assert len(jobs) == len(calls) == 20
    for call in calls:
        assert call.parent is not None
        job = jobs[call.parent.span_id]  # each call under the job that made it
        assert call.context.trace_id == job.context.trace_id
        [attempt] = otel.attempts_of(call)  # and exactly its own attempt under it
        assert attempt.context.trace_id == call.context.trace_id
    assert len(spans) == 60


# ------------------------------------------------------------------ content capture


async def test_content_is_captured_only_when_asked(mock: MockProvider, otel: Otel) -> None:
    async with client_for(mock, otel) as client:
        await client.chat().system("Be brief.").user("hello").execute()
    async with client_for(mock, otel, capture_content=True) as client:
        await client.chat().system("Be brief.").user(f"my key is {KEY}").execute()
    silent, captured = otel.calls()
    assert not silent.events
    assert [s for s in otel.spans() if s.events] == [captured]  # never on attempts
    prompt, completion = captured.events
    assert prompt.name == "gen_ai.content.prompt"
    assert prompt.attributes is not None and completion.attributes is not None
    assert json.loads(str(prompt.attributes["gen_ai.prompt"])) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "my key is <redacted>"},
    ]
    assert completion.name == "gen_ai.content.completion"
    [message] = json.loads(str(completion.attributes["gen_ai.completion"]))
    assert message["role"] == "assistant" and message["finish_reason"] == "stop"
    assert message["content"].startswith("Mock reply to:")
    assert KEY not in repr([s.to_json() for s in otel.spans()])


async def test_the_environment_opts_in_to_content(
    mock: MockProvider, otel: Otel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    async with client_for(mock, otel) as client:
        await client.chat().user("hello").execute()
    async with client_for(mock, otel, capture_content=False) as client:
        await client.chat().user("hello").execute()
    captured, silent = otel.calls()
    assert [e.name for e in captured.events] == [
        "gen_ai.content.prompt",
        "gen_ai.content.completion",
    ]
    assert not silent.events


async def test_the_latest_conventions_on_opt_in(
    mock: MockProvider, otel: Otel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http, gen_ai_latest_experimental")
    mock.enqueue(ScriptedReply(content="sunny", tool_calls=[("weather", {"city": "Paris"})]))
    async with client_for(mock, otel, capture_content=True) as client:
        await client.chat().user("weather?").execute()
    [call] = otel.calls()
    found = attributes(call)
    assert found["gen_ai.provider.name"] == "openai"
    assert "gen_ai.system" not in found
    assert not call.events
    assert json.loads(str(found["gen_ai.input.messages"])) == [
        {"role": "user", "parts": [{"type": "text", "content": "weather?"}]}
    ]
    [output] = json.loads(str(found["gen_ai.output.messages"]))
    assert output["role"] == "assistant"
    assert output["finish_reason"] == "tool_call"
    assert output["parts"][0] == {"type": "text", "content": "sunny"}
    assert output["parts"][1]["type"] == "tool_call"
    assert output["parts"][1]["name"] == "weather"
    assert output["parts"][1]["arguments"] == {"city": "Paris"}
    [duration] = otel.points("gen_ai.client.operation.duration")
    assert duration.attributes["gen_ai.provider.name"] == "openai"
    assert "gen_ai.system" not in duration.attributes


# ------------------------------------------------------------------ metrics


async def test_genai_client_metrics(mock: MockProvider, otel: Otel) -> None:
    mock.enqueue(
        ScriptedReply(content="a", usage=(10, 2)), ScriptedReply(content="b", usage=(7, 3))
    )
    async with client_for(mock, otel) as client:
        await client.chat().user("one").execute()
        async with client.chat().user("two").stream() as stream:
            async for _ in stream:
                pass
    [duration] = otel.points("gen_ai.client.operation.duration")
    assert duration.count == 2
    assert dict(duration.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o",
        "server.address": "127.0.0.1",
        "server.port": mock.port,
    }
    assert tuple(duration.explicit_bounds)[:3] == (0.01, 0.02, 0.04)
    tokens = {
        p.attributes["gen_ai.token.type"]: p for p in otel.points("gen_ai.client.token.usage")
    }
    assert (tokens["input"].count, tokens["input"].sum) == (2, 17)
    assert (tokens["output"].count, tokens["output"].sum) == (2, 5)
    [first] = otel.points("gen_ai.client.operation.time_to_first_chunk")
    assert first.count == 1  # streams only, once each
    assert 0 < first.sum < duration.sum


# ------------------------------------------------------------------ installation


async def test_installed_by_default_and_off_on_request(mock: MockProvider, otel: Otel) -> None:
    async with client_for(mock, otel) as client:
        [(name, _)] = client.middleware.call_hooks
        assert name == "OpenTelemetryMiddleware"
    async with client_for(mock, otel, telemetry=False) as client:
        assert not client.middleware
        await client.chat().user("hi").execute()
    assert otel.spans() == []


async def test_a_users_middleware_runs_inside_the_call_span(mock: MockProvider, otel: Otel) -> None:
    seen: list[bool] = []

    class Probe(Middleware):
        async def on_call(self, call: Any, next: Any) -> Any:
            from opentelemetry import trace

            seen.append(trace.get_current_span().is_recording())
            return await next(call)

    async with client_for(mock, otel, middleware=[Probe()]) as client:
        await client.chat().user("hi").execute()
    assert seen == [True]


async def test_nothing_is_installed_without_opentelemetry(
    mock: MockProvider, otel: Otel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_install, "_available", False)
    async with client_for(mock, otel) as client:
        assert not client.middleware
        await client.chat().user("hi").execute()
    assert otel.spans() == []
    tracer = Tracer("svc")
    assert tracer.tracer is None
    with tracer.span("work") as span:
        assert isinstance(span, NoopSpan)
        span.set_attribute("model", "gpt-4o")


def test_importing_the_package_does_not_import_opentelemetry() -> None:
    code = textwrap.dedent(
        """
        import sys
        import ailib_anyio, ailib_anyio.telemetry, ailib_anyio.sync
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_without_opentelemetry_a_client_runs_without_middleware(backend: str) -> None:
    # ``opentelemetry`` made unimportable, as if it were not installed
    code = textwrap.dedent(
        """
        import sys
        sys.modules["opentelemetry"] = None
        import anyio
        from ailib_anyio import open_client
        from ailib_anyio.telemetry import Tracer
        from ailib_anyio.testing import MockProvider

        async def main():
            async with MockProvider() as mock:
                url = mock.openai_base_url
                async with open_client("openai/gpt-4o", api_key="k", base_url=url) as c:
                    assert not c.middleware
                    with Tracer("svc").span("x") as span:
                        span.set_attribute("a", 1)
                        print((await c.chat().user("hi").execute()).content)

        anyio.run(main, backend=sys.argv[1])
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code, backend], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "Mock reply to: hi"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_spans_go_to_the_global_providers_once_they_are_set(backend: str) -> None:
    # In a fresh process (the global providers can be set once): until an SDK is set the
    # calls pass straight through; once it is, with no other opt-in, they are traced.
    code = textwrap.dedent(
        """
        import sys
        import anyio
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )
        from ailib_anyio import open_client
        from ailib_anyio.testing import MockProvider

        exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()

        async def main():
            async with MockProvider() as mock:
                url = mock.openai_base_url
                async with open_client("openai/gpt-4o", api_key="k", base_url=url) as c:
                    await c.chat().user("before").execute()
                    provider = TracerProvider()
                    provider.add_span_processor(SimpleSpanProcessor(exporter))
                    trace.set_tracer_provider(provider)
                    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
                    await c.chat().user("after").execute()

        anyio.run(main, backend=sys.argv[1])
        names = sorted(span.name for span in exporter.get_finished_spans())
        data = reader.get_metrics_data()
        measured = sorted(
            m.name for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics
        )
        print(names, measured)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code, backend], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == (
        "['attempt openai/gpt-4o', 'chat gpt-4o']"
        " ['gen_ai.client.operation.duration', 'gen_ai.client.token.usage']"
    )


def test_tracer_span_is_a_current_opentelemetry_span(otel: Otel) -> None:
    tracer = Tracer("my_service", tracer_provider=otel.tracer_provider)
    with tracer.span("api_call", attributes={"tenant": "acme"}) as span:
        span.set_attribute("model", "gpt-4o")
        with tracer.span("inner"):
            pass
    with pytest.raises(ValueError, match="bad"), tracer.span("fails"):
        raise ValueError("bad")
    inner, outer, failed = otel.spans()
    assert outer.name == "api_call"
    assert attributes(outer) == {"tenant": "acme", "model": "gpt-4o"}
    assert outer.instrumentation_scope is not None
    assert outer.instrumentation_scope.name == "my_service"
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id
    assert failed.status.status_code is StatusCode.ERROR


async def test_a_failing_stream_close_callback_is_a_middleware_error(
    mock: MockProvider, otel: Otel
) -> None:
    class Broken(Middleware):
        async def on_call(self, call: Any, next: Any) -> Any:
            stream: TargetStream = await next(call)
            stream.on_close(self.closed)
            return stream

        def closed(self, stream: TargetStream) -> None:
            raise RuntimeError("oops")

    async with client_for(mock, otel, middleware=[Broken()]) as client:
        with pytest.raises(MiddlewareError, match="middleware Broken failed in on_close") as info:
            async with client.chat().user("hi").stream() as stream:
                async for _ in stream:
                    pass
        assert info.value.middleware == "Broken"
        assert client.current_inflight == 0
    [call] = otel.calls()  # the other callbacks still ran
    assert call.end_time is not None


async def test_a_telemetry_failure_never_fails_the_call(
    mock: MockProvider,
    otel: Otel,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(OpenTelemetryMiddleware, "_record_call", broken)
    async with client_for(mock, otel) as client:
        reply = await client.chat().user("hi").execute()
        async with client.chat().user("hi").stream() as stream:
            async for _ in stream:
                pass
    assert reply.content == "Mock reply to: hi"
    assert len(otel.calls()) == 2  # still ended
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "telemetry: recording a call failed"
    ] * 2


def test_the_middleware_reads_the_conventions_when_made(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    latest = OpenTelemetryMiddleware()
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai")
    old = OpenTelemetryMiddleware()
    assert latest._conventions.provider == "gen_ai.provider.name"
    assert old._conventions.provider == "gen_ai.system"
