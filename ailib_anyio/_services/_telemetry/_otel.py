"""OpenTelemetry tracing and metrics of every call, through the OpenTelemetry API only.

Imported only when ``opentelemetry-api`` is installed (``_install.py`` checks), and then
installed on every client as its outermost middleware, as natively instrumented libraries
do: spans go to the global tracer provider (or the client's ``tracer_provider``), metrics
to the global meter provider (or ``meter_provider``). While neither global provider has
been set (the API without an SDK), each call passes straight through.

What it emits (names in ``_semconv.py``):

- one span per call, ``chat {model}`` (kind CLIENT), with the GenAI request attributes at
  its start and the response's (model, id, finish reasons, usage) or ``error.type`` at its
  end; a stream's span ends when the stream is closed (not when it opens), with what the
  stream delivered, and carries ``gen_ai.response.time_to_first_chunk``;
- one child span per attempt, ``attempt {provider}/{model}`` (kind INTERNAL), so that
  retries, fallbacks and hedges are sibling attempts under their call; it carries only
  ``ailib.attempt.number``, ``ailib.attempt.target`` and how it ended,
  ``ailib.attempt.outcome`` (ok, error with ``error.type``, cancelled — a hedge that
  lost —, discarded), the GenAI attributes being the call's;
- the histograms ``gen_ai.client.operation.duration`` and ``gen_ai.client.token.usage`` per
  call, and ``gen_ai.client.operation.time_to_first_chunk`` per stream, recorded once when
  its first event is ready: nothing is done per chunk (a stream's end is seen through
  ``TargetStream.on_close``, not an ``on_event`` hook).

Message content is recorded only when asked for (``capture_content=True`` or
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``), with every registered secret
masked. Spans nest through OpenTelemetry's context, a ``contextvars`` variable: each call
and attempt attaches its span in its own task, and the tasks a race starts inherit it, on
asyncio and trio alike.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ..._client._middleware import Call, Middleware, Next
from ..._core._errors import MiddlewareError
from ..._core._secrets import mask_text
from ..._core._types import ChatResponse, ContentBlock, Message, MessageRole
from ..._version import __version__
from . import _semconv as sc

if TYPE_CHECKING:
    from opentelemetry.metrics import Histogram, MeterProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from ..._client._client import Client
    from ..._client._targetstream import TargetStream

__all__ = ["OpenTelemetryMiddleware"]

_log = logging.getLogger(__name__)

_Attributes = dict[str, Any]


class _Instruments:
    """The three histograms of one meter provider."""

    __slots__ = ("duration", "time_to_first_chunk", "tokens")

    def __init__(self, provider: MeterProvider | None) -> None:
        meter = metrics.get_meter(sc.SCOPE, __version__, meter_provider=provider)

        def histogram(
            name: str, unit: str, description: str, buckets: Sequence[float]
        ) -> Histogram:
            try:
                return meter.create_histogram(
                    name, unit, description, explicit_bucket_boundaries_advisory=buckets
                )
            except TypeError:  # an API older than 1.23: the SDK's default buckets
                return meter.create_histogram(name, unit, description)

        self.duration = histogram(
            sc.OPERATION_DURATION, "s", "GenAI operation duration.", sc.DURATION_BUCKETS
        )
        self.tokens = histogram(
            sc.TOKEN_USAGE, "{token}", "Number of input and output tokens used.", sc.TOKEN_BUCKETS
        )
        self.time_to_first_chunk = histogram(
            sc.TIME_TO_FIRST_CHUNK,
            "s",
            "Time to receive the first chunk of a streamed response.",
            sc.DURATION_BUCKETS,
        )


#: instruments per meter provider (None: the global one, through the API's proxy), so
#: that many clients share them instead of registering the same names again
_INSTRUMENTS: dict[int, tuple[object, _Instruments]] = {}


def _instruments(provider: MeterProvider | None) -> _Instruments:
    key = id(provider)
    found = _INSTRUMENTS.get(key)
    if found is None or found[0] is not provider:
        found = _INSTRUMENTS[key] = (provider, _Instruments(provider))
    return found[1]


_ProxyMeters: type | None
try:  # the API's stand-in until a meter provider is set (private: checked defensively)
    from opentelemetry.metrics._internal import _ProxyMeterProvider

    _ProxyMeters = _ProxyMeterProvider
except ImportError:  # pragma: no cover - another API version: always treated as set
    _ProxyMeters = None


_metrics_globals: Any
try:  # the API's module globals of the two global providers (private: read defensively)
    from opentelemetry.metrics import _internal as _metrics_globals
except ImportError:  # pragma: no cover - another API version
    _metrics_globals = None

#: a provider named in the environment is loaded by the API's getters on first use:
#: then the getters are always asked
_ENV_PROVIDERS = (
    "OTEL_PYTHON_TRACER_PROVIDER" in os.environ or "OTEL_PYTHON_METER_PROVIDER" in os.environ
)


def _no_sdk() -> bool:
    """Whether neither global provider has been set (only the API is installed): every
    span would be non-recording and every record a no-op. Asked once per call: while
    neither is set, two module attributes are read (the getters would also look up the
    environment each time)."""
    if (
        not _ENV_PROVIDERS
        and getattr(trace, "_TRACER_PROVIDER", False) is None
        and getattr(_metrics_globals, "_METER_PROVIDER", False) is None
    ):
        return _ProxyMeters is not None
    return isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider) and (
        _ProxyMeters is not None and isinstance(metrics.get_meter_provider(), _ProxyMeters)
    )


class _Base:
    """What the spans and metrics of one target and model share, made once: the
    attributes (operation, provider, model, server), those of a streamed call, the span
    names, and the metric attributes per response model (with the token types)."""

    __slots__ = ("_measured", "attempt_name", "attributes", "call_name", "streamed")

    def __init__(self, call: Call, attributes: _Attributes) -> None:
        self.attributes = attributes
        self.streamed = {**attributes, sc.REQUEST_STREAM: True}
        self.call_name = f"{sc.OPERATION_CHAT} {call.model}"
        self.attempt_name = f"attempt {call.provider}/{call.model}"
        self._measured: dict[str | None, tuple[_Attributes, _Attributes, _Attributes]] = {}

    def measured(self, model: str | None) -> tuple[_Attributes, _Attributes, _Attributes]:
        """The metric attributes of a response of ``model``: the duration's, then the
        input and output tokens'. Never changed by their users."""
        found = self._measured.get(model)
        if found is None:
            if len(self._measured) >= 64:  # a server naming a new model each time
                self._measured.clear()
            measured = {**self.attributes, sc.RESPONSE_MODEL: model} if model else self.attributes
            found = self._measured[model] = (
                measured,
                {**measured, sc.TOKEN_TYPE: sc.TOKEN_INPUT},
                {**measured, sc.TOKEN_TYPE: sc.TOKEN_OUTPUT},
            )
        return found


def _server(base_url: str) -> _Attributes:
    """``server.address`` and ``server.port`` of a base URL."""
    parts = urlsplit(base_url)
    if not parts.hostname:
        return {}
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return {sc.SERVER_ADDRESS: parts.hostname, sc.SERVER_PORT: port}


def _is_cancellation(exc: BaseException) -> bool:
    if isinstance(exc, Exception):
        return False
    try:
        return isinstance(exc, anyio.get_cancelled_exc_class())
    except Exception:  # noqa: BLE001 - outside an event loop: no backend to ask
        return False


def error_type(exc: BaseException) -> str:
    """The ``error.type`` of an exception (see ``_semconv``)."""
    return sc.CANCELLED if _is_cancellation(exc) else type(exc).__qualname__


class OpenTelemetryMiddleware(Middleware):
    """Spans and GenAI metrics for every call and attempt of one client (see the module
    docstring). Made by ``for_client``; the client installs it by default."""

    # its hooks return what ``next`` returned, call it once and never fail the call
    unchecked = True

    def __init__(
        self,
        *,
        base_urls: Sequence[str] = (),
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        capture_content: bool = False,
        conventions: sc.Conventions | None = None,
    ) -> None:
        self._conventions = conventions = conventions or sc.Conventions.from_env()
        self._latest = conventions.latest
        self._provider_key = conventions.provider
        self._tracer: Tracer = trace.get_tracer(
            sc.SCOPE, __version__, tracer_provider=tracer_provider
        )
        self._metrics = _instruments(meter_provider)
        #: with no provider of its own, each call first checks that the global ones have
        #: been set: until they are, it passes straight through
        self._global = tracer_provider is None and meter_provider is None
        self._capture = capture_content
        #: ``server.*`` attributes of each target of the chain, by its place
        self._servers = tuple(_server(url) for url in base_urls)
        self._bases: dict[tuple[int, str, str], _Base] = {}

    @classmethod
    def for_client(cls, client: Client) -> OpenTelemetryMiddleware:
        config = client.config
        capture = config.capture_content
        return cls(
            base_urls=[target.base_url for target in client.targets],
            tracer_provider=config.tracer_provider,
            meter_provider=config.meter_provider,
            capture_content=sc.capture_requested() if capture is None else capture,
        )

    def dormant(self) -> bool:
        """Whether there is nothing to report to (global providers, neither set yet): the
        client then leaves this middleware out of the call."""
        return self._global and _no_sdk()

    # ------------------------------------------------------------ attributes

    def _base(self, call: Call) -> _Base:
        """What the spans and metrics of ``call`` share (see ``_Base``). Made once per
        target and model, then shared: never changed after."""
        key = (call.target, call.provider, call.model)
        found = self._bases.get(key)
        if found is None:
            if len(self._bases) >= 64:  # models replaced per request: keep it bounded
                self._bases.clear()
            attributes = {
                sc.OPERATION_NAME: sc.OPERATION_CHAT,
                self._provider_key: call.provider,
                sc.REQUEST_MODEL: call.model,
            }
            if call.target < len(self._servers):
                attributes.update(self._servers[call.target])
            found = self._bases[key] = _Base(call, attributes)
        return found

    @staticmethod
    def _request_attributes(call: Call, base: _Base) -> _Attributes:
        request = call.request
        if (
            request.temperature is None
            and request.max_tokens is None
            and request.top_p is None
            and not request.stop
        ):
            return base.streamed if request.stream else base.attributes
        found = dict(base.attributes)
        if request.temperature is not None:
            found[sc.REQUEST_TEMPERATURE] = request.temperature
        if request.max_tokens is not None:
            found[sc.REQUEST_MAX_TOKENS] = request.max_tokens
        if request.top_p is not None:
            found[sc.REQUEST_TOP_P] = request.top_p
        if request.stop:
            found[sc.REQUEST_STOP_SEQUENCES] = tuple(request.stop)
        if request.stream:
            found[sc.REQUEST_STREAM] = True
        return found

    @staticmethod
    def _response_attributes(response: ChatResponse) -> _Attributes:
        found: _Attributes = {}
        if response.model:
            found[sc.RESPONSE_MODEL] = response.model
        if response.response_id:
            found[sc.RESPONSE_ID] = response.response_id
        if response.finish_reason is not None:
            found[sc.RESPONSE_FINISH_REASONS] = (response.finish_reason.normalized,)
        usage = response.usage
        if usage is not None:
            found[sc.USAGE_INPUT_TOKENS] = usage.input_tokens
            found[sc.USAGE_OUTPUT_TOKENS] = usage.output_tokens
        return found

    def _failed(self, exc: Exception) -> MiddlewareError:
        """What the chain makes of a middleware's own failure (see ``Middleware.unchecked``)."""
        name = type(self).__name__
        return MiddlewareError(
            f"middleware {name} failed: {type(exc).__name__}: {exc}", middleware=name
        )

    @staticmethod
    def _error(span: Span, exc: BaseException, kind: str) -> None:
        if not span.is_recording():
            return
        span.set_attribute(sc.ERROR_TYPE, kind)
        if isinstance(exc, Exception):
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        else:
            span.set_status(Status(StatusCode.ERROR, kind))

    # ------------------------------------------------------------ the call

    async def on_call(self, call: Call, next: Next) -> Any:
        if self._global and _no_sdk():
            return await next(call)
        try:  # run unchecked by the chain: a failure of its own is reported as it would
            base = self._base(call)
            span = self._tracer.start_span(
                base.call_name,
                kind=SpanKind.CLIENT,
                attributes=self._request_attributes(call, base),
            )
            if self._capture and span.is_recording():
                self._capture_input(span, call.request.messages)
            token = otel_context.attach(trace.set_span_in_context(span))
        except Exception as exc:
            raise self._failed(exc) from exc
        start = perf_counter()
        try:
            result = await next(call)
        except BaseException as exc:
            self._end_call(span, base, start, None, exc)
            raise
        finally:
            otel_context.detach(token)
        if not call.stream:
            self._end_call(span, base, start, result, None)
            return result
        # A stream is open up to its first event: the time to first chunk, recorded once.
        first = perf_counter() - start
        try:
            span.set_attribute(sc.RESPONSE_TIME_TO_FIRST_CHUNK, first)
            self._metrics.time_to_first_chunk.record(first, base.attributes)
        except Exception:  # noqa: BLE001 - telemetry never fails the call it watches
            _log.warning("telemetry: recording a stream's first chunk failed", exc_info=True)
        on_close = getattr(result, "on_close", None)
        if on_close is None:  # not a stream of this library's: nothing to wait for
            self._end_call(span, base, start, None, None)
            return result

        def closed(stream: TargetStream) -> None:
            self._end_call(span, base, start, stream.response, stream.error)

        on_close(closed)
        return result

    def _end_call(
        self,
        span: Span,
        base: _Base,
        start: float,
        response: ChatResponse | None,
        error: BaseException | None,
    ) -> None:
        duration = perf_counter() - start
        try:
            self._record_call(span, base, duration, response, error)
        except Exception:  # noqa: BLE001 - telemetry never fails the call it watches
            _log.warning("telemetry: recording a call failed", exc_info=True)
        finally:
            span.end()

    def _record_call(
        self,
        span: Span,
        base: _Base,
        duration: float,
        response: ChatResponse | None,
        error: BaseException | None,
    ) -> None:
        recording = span.is_recording()
        measured = base.attributes
        if response is not None:
            found = base.measured(response.model)
            measured = found[0]
            usage = response.usage
            if usage is not None:
                tokens = self._metrics.tokens
                tokens.record(usage.input_tokens, found[1])
                tokens.record(usage.output_tokens, found[2])
            if recording:
                span.set_attributes(self._response_attributes(response))
                if self._capture:
                    self._capture_output(span, response)
        if error is not None:
            kind = error_type(error)
            measured = {**measured, sc.ERROR_TYPE: kind}
            if recording:
                self._error(span, error, kind)
        self._metrics.duration.record(duration, measured)

    # ------------------------------------------------------------ each attempt

    async def on_attempt(self, call: Call, next: Next) -> Any:
        if self._global and _no_sdk():
            return await next(call)
        # The GenAI attributes are the call span's; an attempt says which one it was,
        # against which target (its name: the provider and model), and how it ended.
        try:  # run unchecked by the chain: a failure of its own is reported as it would
            span = self._tracer.start_span(
                self._base(call).attempt_name,
                kind=SpanKind.INTERNAL,
                attributes={sc.ATTEMPT_NUMBER: call.attempt, sc.ATTEMPT_TARGET: call.target},
            )
            token = otel_context.attach(trace.set_span_in_context(span))
        except Exception as exc:
            raise self._failed(exc) from exc
        try:
            result = await next(call)
        except BaseException as exc:
            self._end_attempt(span, exc)
            raise
        finally:
            otel_context.detach(token)
        on_close = getattr(result, "on_close", None) if call.stream else None
        if on_close is None:
            self._end_attempt(span, None)
            return result

        def closed(stream: TargetStream) -> None:
            self._end_attempt(span, stream.error, discarded=stream.discarded)

        on_close(closed)
        return result

    def _end_attempt(
        self, span: Span, error: BaseException | None, *, discarded: bool = False
    ) -> None:
        try:
            if error is None:
                span.set_attribute(sc.ATTEMPT_OUTCOME, "discarded" if discarded else "ok")
            elif _is_cancellation(error):
                # a hedge that lost, or the whole call cancelled: no error of the attempt's
                span.set_attribute(sc.ATTEMPT_OUTCOME, sc.CANCELLED)
            else:
                span.set_attribute(sc.ATTEMPT_OUTCOME, "error")
                self._error(span, error, error_type(error))
        except Exception:  # noqa: BLE001 - telemetry never fails the call it watches
            _log.warning("telemetry: recording an attempt failed", exc_info=True)
        finally:
            span.end()

    # ------------------------------------------------------------ content (opt-in)

    def _capture_input(self, span: Span, messages: Sequence[Message]) -> None:
        if self._latest:
            span.set_attribute(sc.INPUT_MESSAGES, _json([_message(m) for m in messages]))
        else:
            prompt = _json([_legacy_message(m) for m in messages])
            span.add_event(sc.PROMPT_EVENT, {sc.PROMPT: prompt})

    def _capture_output(self, span: Span, response: ChatResponse) -> None:
        finish = response.finish_reason.normalized if response.finish_reason else None
        if self._latest:
            message = _message(response.to_message())
            if finish is not None:
                message["finish_reason"] = sc.OUTPUT_FINISH_REASONS.get(finish, finish)
            span.set_attribute(sc.OUTPUT_MESSAGES, _json([message]))
        else:
            completion = _legacy_message(response.to_message())
            if finish is not None:
                completion["finish_reason"] = finish
            span.add_event(sc.COMPLETION_EVENT, {sc.COMPLETION: _json([completion])})


def _json(value: Any) -> str:
    """JSON text with every registered secret masked (a server may echo anything)."""
    return mask_text(json.dumps(value, ensure_ascii=False, default=str))


def _block(block: ContentBlock) -> dict[str, Any]:
    """A content block as a part of the conventions' message schema."""
    if block.type == "text":
        return {"type": "text", "content": block.text or ""}
    part: dict[str, Any] = {"type": "uri" if block.url else "blob", "modality": block.type}
    if block.media_type:
        part["mime_type"] = block.media_type
    if block.url:
        part["uri"] = block.url
    else:
        part["content"] = block.data or ""
    return part


def _text(content: str | Sequence[ContentBlock] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(block.text or "" for block in content if block.type == "text")


def _message(message: Message) -> dict[str, Any]:
    """A message in the latest conventions' schema: ``{"role", "parts": [...]}``."""
    if message.role is MessageRole.TOOL:
        part = {
            "type": "tool_call_response",
            "id": message.tool_call_id,
            "response": _text(message.content),
        }
        return {"role": "tool", "parts": [part]}
    parts: list[dict[str, Any]] = []
    if message.reasoning:
        parts.append({"type": "reasoning", "content": message.reasoning})
    content = message.content
    if isinstance(content, str):
        if content:
            parts.append({"type": "text", "content": content})
    elif content:
        parts.extend(_block(block) for block in content)
    for call in message.tool_calls:
        parts.append(
            {
                "type": "tool_call",
                "id": call.id,
                "name": call.name,
                "arguments": dict(call.arguments),
            }
        )
    return {"role": message.role.value, "parts": parts}


def _legacy_message(message: Message) -> dict[str, Any]:
    """A message as ``gen_ai.prompt`` / ``gen_ai.completion`` hold them (chat-API shape)."""
    found: dict[str, Any] = {"role": message.role.value, "content": _text(message.content)}
    if message.tool_calls:
        found["tool_calls"] = [
            {"id": call.id, "name": call.name, "arguments": dict(call.arguments)}
            for call in message.tool_calls
        ]
    if message.tool_call_id:
        found["tool_call_id"] = message.tool_call_id
    return found
