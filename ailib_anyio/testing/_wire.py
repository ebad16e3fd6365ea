"""Bytes and events for tests: encode unified events as an API family's servers send
them, and decode a body with a manifest exactly as the client does.

``wire_stream``/``wire_response`` are the dialect encoders of ``_dialects`` keyed by the
API family a manifest names; ``decode_stream``/``decode_response`` run the client's own
decoders (``_protocol/_decoding``: the manifest's decoder, rules and error
classification) without any I/O. Together they make
round trips (events -> bytes -> events) that the hypothesis strategies fuzz. Nothing here
imports hypothesis.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import attrs

from .._core._errors import AiLibError, MalformedResponseError
from .._core._mapping import DecodeFailure, StreamFailure
from .._core._types import StreamingEvent
from .._protocol._decoding import response_decoder, stream_pipeline
from .._protocol._models import ProviderManifest
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

    ``error`` is the first failure (bytes that are not the protocol, an error event the
    manifest's error rules classify, a non-streaming body in which the rules find nothing);
    ``events`` are those before it. ``truncated`` is true when a stream ended with neither
    its done signal nor a finish reason (the client raises a ``TransportError`` then; it is
    not in ``error``, which holds what is wrong with the bytes received).
    """

    events: tuple[StreamingEvent, ...]
    error: AiLibError | None = None
    truncated: bool = False


def decode_stream(manifest: ProviderManifest, chunks: Iterable[bytes]) -> Decoded:
    """Decode a streamed body, fed in ``chunks``, with the manifest's streaming rules
    (the client's own pipeline: ``ConfigurationError``, a ``ValueError``, if it has none)."""
    pipe = stream_pipeline(manifest)
    items: list[StreamingEvent | StreamFailure | DecodeFailure] = []
    for chunk in chunks:
        pipe.feed(chunk, items)
    items.extend(pipe.close())
    events: list[StreamingEvent] = []
    for item in items:
        cls = type(item)
        if cls is DecodeFailure:
            if item.truncated:  # type: ignore[union-attr]
                break
            return Decoded(tuple(events), item.error)  # type: ignore[union-attr]
        if cls is StreamFailure:
            return Decoded(tuple(events), pipe.error(item))  # type: ignore[arg-type]
        events.append(item)  # type: ignore[arg-type]
    return Decoded(tuple(events), truncated=pipe.truncated)


def decode_response(manifest: ProviderManifest, body: bytes) -> Decoded:
    """Decode a non-streaming body with the manifest's response rules (the client's own
    decoder: ``ConfigurationError``, a ``ValueError``, if it has none)."""
    decoder = response_decoder(manifest)
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError) as exc:
        error = MalformedResponseError(f"response body is not valid JSON ({exc})")
        return Decoded((), error)
    events: list[StreamingEvent] = []
    try:
        decoder.decode(obj, events=events)
    except AiLibError as exc:
        return Decoded(tuple(events), exc)
    return Decoded(tuple(events))
