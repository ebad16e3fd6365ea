"""Bytes and events for tests: encode unified events as an API family's servers send
them, and decode a body with a manifest exactly as the client does.

``wire_stream``/``wire_response`` are the dialect encoders of ``_dialects`` keyed by the
API family a manifest names; ``decode_stream``/``decode_response`` run the sans-IO core
(decoder, the manifest's rules, error classification) without any I/O. Together they make
round trips (events -> bytes -> events) that the hypothesis strategies fuzz. Nothing here
imports hypothesis.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import attrs

from .._core._classify import classify_error
from .._core._mapping import DecodeFailure, EventMapper, StreamFailure, StreamPipeline
from .._errors import (
    AiLibError,
    MalformedResponseError,
    error_class_for_kind,
)
from .._protocol._models import ProviderManifest
from .._types import StreamingEvent
from ._dialects import dialect_of, dumps, encode_response, encode_stream

__all__ = ["Decoded", "decode_response", "decode_stream", "wire_response", "wire_stream"]


def wire_stream(api_family: str, events: Iterable[StreamingEvent]) -> bytes:
    """The streamed body a server of ``api_family`` sends for ``events``.

    ``api_family`` is what a manifest's chat endpoint names (``openai_chat``,
    ``anthropic_messages``, ``gemini_generate``; ``manifest.api_family``)::

        stop = Finished(FinishReason("stop", "stop"))
        body = wire_stream("openai_chat", [ContentDelta("Hi"), stop])
    """
    return b"".join(encode_stream(dialect_of(api_family), events))


def wire_response(api_family: str, events: Iterable[StreamingEvent]) -> bytes:
    """The non-streaming JSON body a server of ``api_family`` sends for ``events``."""
    return dumps(encode_response(dialect_of(api_family), events)).encode()


@attrs.frozen
class Decoded:
    """What the client makes of a body: the events it yields, then the error it raises.

    ``error`` is the first failure (bytes that are not the protocol, or an error event the
    manifest's error rules classify); ``events`` are those before it. ``truncated`` is true
    when a stream ended with neither its done signal nor a finish reason (the client raises
    a ``TransportError`` then).
    """

    events: tuple[StreamingEvent, ...]
    error: AiLibError | None = None
    truncated: bool = False


def _classified(manifest: ProviderManifest, body: Any, *, mid_stream: bool) -> AiLibError:
    info = classify_error(manifest.error_classification, 200, {}, body, mid_stream=mid_stream)
    cls = error_class_for_kind(info.kind, context_length=info.context_length)
    return cls(info.message, status_code=info.status, retryable=info.retryable)


def _decoded(
    manifest: ProviderManifest,
    items: Iterable[StreamingEvent | StreamFailure | DecodeFailure],
    *,
    mid_stream: bool,
    truncated: bool = False,
) -> Decoded:
    events: list[StreamingEvent] = []
    for item in items:
        if isinstance(item, DecodeFailure):
            return Decoded(tuple(events), item.error)
        if isinstance(item, StreamFailure):
            return Decoded(tuple(events), _classified(manifest, item.body, mid_stream=mid_stream))
        events.append(item)
    return Decoded(tuple(events), truncated=truncated)


def decode_stream(manifest: ProviderManifest, chunks: Iterable[bytes]) -> Decoded:
    """Decode a streamed body, fed in ``chunks``, with the manifest's streaming rules."""
    streaming = manifest.streaming
    if streaming is None or not streaming.event_map:
        raise ValueError(f"manifest {manifest.id!r} has no streaming rules")
    pipe = StreamPipeline(
        streaming.event_map,
        decoder_format=streaming.decoder.format,
        done_signal=streaming.decoder.done_signal,
        termination=manifest.termination_mapping,
        generate_ids=manifest.generate_tool_call_ids,
    )
    items: list[StreamingEvent | StreamFailure | DecodeFailure] = []
    for chunk in chunks:
        pipe.feed(chunk, items)
    items.extend(pipe.close())
    return _decoded(manifest, items, mid_stream=True, truncated=pipe.truncated)


def decode_response(manifest: ProviderManifest, body: bytes) -> Decoded:
    """Decode a non-streaming body with the manifest's response rules."""
    rules = manifest.response.event_map if manifest.response is not None else ()
    if not rules:
        raise ValueError(f"manifest {manifest.id!r} has no response rules")
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError) as exc:
        error = MalformedResponseError(f"response body is not valid JSON ({exc})")
        return Decoded((), error)
    mapper = EventMapper(
        rules,
        termination=manifest.termination_mapping,
        generate_ids=manifest.generate_tool_call_ids,
    )
    return _decoded(manifest, [*mapper.map_object(obj), *mapper.finish()], mid_stream=False)
