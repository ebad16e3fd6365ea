"""Hypothesis strategies for fuzzing manifests, stream decoders and request encoders.

They generate what the library consumes and what providers send:

- **stream events and their wire bytes**: ``stream_events(api_family, features)`` draws
  the unified events a provider of the family can send, in the order a decoder yields
  them; ``wire_stream`` (in ``ailib_anyio.testing``) encodes them; ``dialect_streams``
  draws both at once. A manifest that decodes the bytes back to the same events is right
  for everything drawn; ``stream_features(manifest)`` says what that is;
- **chunkings and corruptions** of any body: ``chunkings(data)`` cuts bytes at arbitrary
  points, ``corruptions(data)`` truncates them, breaks UTF-8 or JSON, adds unknown
  events and huge fields;
- **JSON**: ``json_values``, ``provider_frames`` (JSON shaped like provider frames, so
  rules get deep before meeting the unexpected) and ``error_bodies``;
- **requests**: ``chat_requests(api_family)``, unified requests an encoder must accept;
- **manifests**: ``manifest_documents``/``manifest_texts`` (valid: the shipped manifests
  respelled in the equivalent ways the loader accepts, with varied optional sections),
  ``broken_manifests`` (one located mistake each) and ``yaml_texts`` (anything).

A round trip against your own manifest::

    from hypothesis import given
    from ailib_anyio import load_manifest
    from ailib_anyio.testing import decode_stream
    from ailib_anyio.testing import strategies as ast

    manifest = load_manifest("my-provider.yaml")

    @given(ast.dialect_streams(manifest.api_family, ast.stream_features(manifest)))
    def test_my_manifest_decodes_what_the_server_sends(stream):
        events, body = stream
        assert decode_stream(manifest, [body]).events == tuple(events)

Importing this module imports hypothesis, a test dependency; ``ailib_anyio.testing``
itself does not.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import string
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any, TypeVar

import attrs
from hypothesis import strategies as st

from .._core._rules import EMIT_ALIASES, FIELD_ALIASES, EmitKind, EventRule
from .._core._types import (
    ChatRequest,
    ContentBlock,
    ContentDelta,
    Finished,
    FinishReason,
    Message,
    NormalizedFinish,
    ReasoningDelta,
    RefusalDelta,
    StreamingEvent,
    ToolCall,
    ToolCallCompleted,
    ToolCallDelta,
    ToolCallStarted,
    ToolDefinition,
    Usage,
)
from .._protocol._models import ProviderManifest
from .._protocol._registry import builtin_protocol_dir
from ._dialects import FAMILY_DIALECTS, dialect_of, dumps
from ._wire import wire_stream

__all__ = [
    "API_FAMILIES",
    "BrokenManifest",
    "StreamFeatures",
    "broken_manifests",
    "chat_requests",
    "chunkings",
    "corruptions",
    "dialect_streams",
    "error_bodies",
    "json_values",
    "manifest_documents",
    "manifest_texts",
    "provider_frames",
    "response_features",
    "stream_events",
    "stream_features",
    "yaml_texts",
]

T = TypeVar("T")

#: the API families with a wire encoder (each manifest's ``api_family`` is one of these)
API_FAMILIES: tuple[str, ...] = tuple(FAMILY_DIALECTS)


def _check_family(api_family: str) -> str:
    dialect_of(api_family)  # ValueError for a family without an encoder
    return api_family


# ---------------------------------------------------------------------------- JSON


def json_values(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """Any JSON value (no NaN or infinities, which JSON cannot write)."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=8)
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=max_leaves,
    )


#: keys the shipped manifests' rules read, so generated frames reach deep into them
FRAME_KEYS: tuple[str, ...] = (
    "choices",
    "delta",
    "content",
    "message",
    "tool_calls",
    "function",
    "arguments",
    "name",
    "index",
    "id",
    "type",
    "usage",
    "candidates",
    "parts",
    "text",
    "thought",
    "thoughtSignature",
    "functionCall",
    "args",
    "usageMetadata",
    "promptTokenCount",
    "error",
    "finish_reason",
    "finishReason",
    "stop_reason",
    "content_block",
    "partial_json",
    "thinking",
    "signature",
    "x_groq",
    "prompt_tokens",
    "reasoning_content",
    "refusal",
    "status",
    "code",
)


def provider_frames(max_leaves: int = 30) -> st.SearchStrategy[Any]:
    """JSON shaped like provider frames: provider keys, small numbers, familiar strings."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-5, 5)
        | st.sampled_from(["", "x", "tool_use", "text", "text_delta", "error", "message_start"])
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from(FRAME_KEYS), inner, max_size=5)
        ),
        max_leaves=max_leaves,
    )


_STATUSES = st.sampled_from([400, 401, 402, 403, 404, 408, 409, 413, 422, 429, 500, 503, 529])
_CODES = st.sampled_from(
    [
        "context_length_exceeded",
        "insufficient_quota",
        "invalid_api_key",
        "rate_limit_exceeded",
        "API_KEY_INVALID",
        "RESOURCE_EXHAUSTED",
        "UNAVAILABLE",
        "Throttling.RateQuota",
    ]
)
_TYPES = st.sampled_from(
    ["invalid_request_error", "rate_limit_error", "overloaded_error", "api_error", "error"]
)
_MESSAGES = st.sampled_from(
    ["", "Rate limit reached", "prompt is too long: 250000 tokens", "maximum context length"]
)
_ANY = json_values(max_leaves=6)


def error_bodies() -> st.SearchStrategy[Any]:
    """Error bodies as OpenAI, Anthropic and Gemini write them, with any value anywhere,
    and anything else a server may send with an error status (any JSON, any text)."""
    text = _MESSAGES | st.text(max_size=30)
    code = _CODES | _ANY
    openai = st.fixed_dictionaries(
        {"error": st.fixed_dictionaries({"message": text, "type": _TYPES | _ANY, "code": code})},
        optional={"status_code": _STATUSES | _ANY},
    )
    anthropic = st.fixed_dictionaries(
        {
            "type": st.just("error"),
            "error": st.fixed_dictionaries({"type": _TYPES | _ANY, "message": text}),
        }
    )
    detail = st.fixed_dictionaries(
        {},
        optional={
            "@type": st.just("type.googleapis.com/google.rpc.RetryInfo"),
            "retryDelay": st.sampled_from(["2s", "1.5s", "500ms", "-1s", "9" * 40 + "h"]) | _ANY,
            "reason": code,
        },
    )
    gemini = st.fixed_dictionaries(
        {
            "error": st.fixed_dictionaries(
                {
                    "code": _STATUSES | _ANY,
                    "message": text,
                    "status": _CODES | _ANY,
                    "details": st.lists(detail, max_size=3) | _ANY,
                }
            )
        }
    )
    return openai | anthropic | gemini | provider_frames() | _ANY | st.text(max_size=60)


# ----------------------------------------------------------------- stream events


@attrs.frozen
class StreamFeatures:
    """What a generated stream may contain: what a dialect carries and a manifest reads.

    ``stream_features(manifest)`` derives it from a manifest's rules;
    ``StreamFeatures.for_family(api_family)`` is everything a dialect carries.
    """

    content: bool = True
    reasoning: bool = True
    refusal: bool = False
    #: reasoning signatures (``ReasoningDelta(signature=...)``)
    signatures: bool = False
    tool_calls: bool = True
    #: signatures on tool calls (Gemini ``thoughtSignature``)
    tool_signatures: bool = False
    #: tool calls may come without an id (else every call has one)
    optional_tool_ids: bool = False
    usage: bool = True
    cached_tokens: bool = False
    reasoning_tokens: bool = False
    finish: bool = True

    @classmethod
    def for_family(cls, api_family: str) -> StreamFeatures:
        """Everything the API family's wire format carries."""
        return _FAMILY_FEATURES[_check_family(api_family)]

    def names(self) -> list[str]:
        """The features switched on, by name."""
        return [a.name for a in attrs.fields(StreamFeatures) if getattr(self, a.name)]


_FAMILY_FEATURES: Mapping[str, StreamFeatures] = {
    "openai_chat": StreamFeatures(refusal=True, cached_tokens=True, reasoning_tokens=True),
    "anthropic_messages": StreamFeatures(signatures=True, cached_tokens=True),
    "gemini_generate": StreamFeatures(
        signatures=True,
        tool_signatures=True,
        optional_tool_ids=True,
        cached_tokens=True,
        reasoning_tokens=True,
    ),
}

#: finish reasons each family's servers send -> the normalized value they mean
#: (from the providers' API references: OpenAI finish_reason, Anthropic stop_reason,
#: Gemini FinishReason); the one a decoder must report, but ``stop`` becomes
#: ``tool_calls`` when the response calls tools.
FINISH_REASONS: Mapping[str, Mapping[str, NormalizedFinish]] = {
    "openai_chat": {
        "stop": "stop",
        "length": "length",
        "tool_calls": "tool_calls",
        "content_filter": "content_filter",
    },
    "anthropic_messages": {
        "end_turn": "stop",
        "stop_sequence": "stop",
        "pause_turn": "stop",
        "max_tokens": "length",
        "model_context_window_exceeded": "length",
        "tool_use": "tool_calls",
        "refusal": "content_filter",
    },
    "gemini_generate": {
        "STOP": "stop",
        "MAX_TOKENS": "length",
        "SAFETY": "content_filter",
        "RECITATION": "content_filter",
        "BLOCKLIST": "content_filter",
        "PROHIBITED_CONTENT": "content_filter",
        "SPII": "content_filter",
        "MALFORMED_FUNCTION_CALL": "other",
        "OTHER": "other",
    },
}


def _features_from_rules(
    api_family: str, rules: Sequence[EventRule], manifest: ProviderManifest
) -> StreamFeatures:
    carried = StreamFeatures.for_family(api_family)
    kinds = {rule.emit for rule in rules}
    fields: dict[EmitKind, set[str]] = {}
    for rule in rules:
        fields.setdefault(rule.emit, set()).update(rule.fields)
    reasoning = fields.get(EmitKind.REASONING, set())
    usage = fields.get(EmitKind.USAGE, set())
    return StreamFeatures(
        content=EmitKind.CONTENT in kinds,
        reasoning="text" in reasoning,
        refusal=carried.refusal and EmitKind.REFUSAL in kinds,
        signatures=carried.signatures and "signature" in reasoning,
        tool_calls=EmitKind.TOOL_CALL in kinds,
        tool_signatures=carried.tool_signatures
        and "signature" in fields.get(EmitKind.TOOL_CALL, set()),
        # generated ids would make a round trip differ: calls then always have theirs
        optional_tool_ids=carried.optional_tool_ids and not manifest.generate_tool_call_ids,
        usage=EmitKind.USAGE in kinds,
        cached_tokens=carried.cached_tokens and "cached_input_tokens" in usage,
        reasoning_tokens=carried.reasoning_tokens and "reasoning_tokens" in usage,
        finish=EmitKind.FINISH in kinds,
    )


def stream_features(manifest: ProviderManifest) -> StreamFeatures:
    """What ``manifest``'s streaming rules decode, of what its API family carries.

    A manifest with no rule for refusals is not asked to decode them, but one with a
    content rule must decode content right.
    """
    rules = manifest.streaming.event_map if manifest.streaming is not None else ()
    return _features_from_rules(manifest.api_family, rules, manifest)


def response_features(manifest: ProviderManifest) -> StreamFeatures:
    """What ``manifest``'s non-streaming response rules decode (see ``stream_features``)."""
    rules = manifest.response.event_map if manifest.response is not None else ()
    return _features_from_rules(manifest.api_family, rules, manifest)


_texts = st.text(min_size=1, max_size=12)
_ids = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=16)
_names = st.text(min_size=1, max_size=16)
_arguments = st.dictionaries(st.text(max_size=8), json_values(max_leaves=8), max_size=4)


@st.composite
def _fragments(draw: st.DrawFn, text: str) -> list[str]:
    """``text`` cut into non-empty pieces at arbitrary points."""
    if not text:
        return []
    cuts = draw(st.sets(st.integers(1, len(text) - 1), max_size=6)) if len(text) > 1 else set()
    bounds = [0, *sorted(cuts), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@st.composite
def _segment(draw: st.DrawFn, features: StreamFeatures) -> tuple[Any, ...]:
    kinds = [
        kind
        for kind, on in (
            ("content", features.content),
            ("reasoning", features.reasoning),
            ("signature", features.signatures),
            ("refusal", features.refusal),
            ("tool", features.tool_calls),
        )
        if on
    ]
    kind = draw(st.sampled_from(kinds))
    if kind == "signature":
        return (kind, draw(_ids))
    if kind != "tool":
        return (kind, draw(st.lists(_texts, min_size=1, max_size=4)))
    call_id = draw(st.none() | _ids) if features.optional_tool_ids else draw(_ids)
    signature = draw(st.none() | _ids) if features.tool_signatures else None
    arguments = draw(_arguments)
    indent = draw(st.sampled_from([None, None, 1]))
    text = json.dumps(arguments, ensure_ascii=False, indent=indent) if arguments else ""
    if not arguments and draw(st.booleans()):
        text = "{}"
    return (kind, call_id, draw(_names), arguments, draw(_fragments(text)), signature)


def _text_event(kind: str, text: str) -> StreamingEvent:
    if kind == "content":
        return ContentDelta(text)
    if kind == "reasoning":
        return ReasoningDelta(text)
    return RefusalDelta(text)


@attrs.frozen
class _Layout:
    """How a family's decoder orders and numbers what its servers send."""

    #: tool calls are numbered by content block, and complete at their block's end
    #: (Anthropic); else numbered in order, and complete at the end of the response
    block_indexed: bool = False
    #: calls come whole, their arguments one compact JSON object (Gemini)
    whole_calls: bool = False


_LAYOUTS: Mapping[str, _Layout] = {
    "openai_chat": _Layout(),
    "anthropic_messages": _Layout(block_indexed=True),
    "gemini_generate": _Layout(whole_calls=True),
}


def _lay_out(api_family: str, segments: list[tuple[Any, ...]]) -> list[StreamingEvent]:
    """The events a decoder of the family yields for ``segments``, in its order."""
    layout = _LAYOUTS[api_family]
    events: list[StreamingEvent] = []
    completed: list[ToolCallCompleted] = []
    tools = 0
    blocks = 0  # Anthropic numbers content blocks, and tool calls by their block
    block: str | None = None
    for segment in segments:
        kind = segment[0]
        if kind == "tool":
            _, call_id, name, arguments, fragments, signature = segment
            index = blocks if layout.block_indexed else tools
            tools += 1
            blocks += 1
            block = None
            if layout.whole_calls:
                # whole calls: the decoder re-encodes the arguments object compactly
                raw = dumps(arguments) if arguments else ""
                fragments = [raw] if raw else []
            else:
                raw = "".join(fragments)
            events.append(ToolCallStarted(index, call_id, name))
            events += [ToolCallDelta(index, fragment) for fragment in fragments]
            call = ToolCall(call_id, name, arguments, raw, None, signature)
            done = ToolCallCompleted(index, call)
            if layout.block_indexed:
                events.append(done)  # at the block's end
            else:
                completed.append(done)  # at the end of the response
            continue
        wanted = "thinking" if kind in ("reasoning", "signature") else "text"
        if block != wanted:
            blocks += 1
            block = wanted
        if kind == "signature":
            events.append(ReasoningDelta("", signature=segment[1]))
        else:
            events += [_text_event(kind, text) for text in segment[1]]
    events.extend(completed)
    return events


@st.composite
def _usage(draw: st.DrawFn, features: StreamFeatures) -> Usage:
    counts = st.integers(0, 10**6)
    input_tokens, output_tokens = draw(counts), draw(counts)
    cached = draw(st.none() | st.integers(0, input_tokens)) if features.cached_tokens else None
    reasoning = (
        draw(st.none() | st.integers(0, output_tokens)) if features.reasoning_tokens else None
    )
    return Usage(input_tokens, output_tokens, cached, reasoning)


@st.composite
def _stream_events(draw: st.DrawFn, api_family: str, features: StreamFeatures) -> Any:
    has_segments = any(
        (features.content, features.reasoning, features.refusal, features.tool_calls)
    )
    segments = draw(st.lists(_segment(features), max_size=6)) if has_segments else []
    events = _lay_out(api_family, segments)
    if features.usage and draw(st.integers(0, 3)):
        events.append(draw(_usage(features)))
    if features.finish and draw(st.integers(0, 5)):
        raw, normalized = draw(st.sampled_from(sorted(FINISH_REASONS[api_family].items())))
        has_calls = any(isinstance(event, ToolCallStarted) for event in events)
        if normalized == "stop" and has_calls:
            normalized = "tool_calls"
        events.append(Finished(FinishReason(normalized, raw)))
    return events


def stream_events(
    api_family: str, features: StreamFeatures | None = None
) -> st.SearchStrategy[list[StreamingEvent]]:
    """Unified events a server of ``api_family`` can send, as its decoder yields them.

    Text, reasoning, refusal and signature deltas and whole tool calls come in any order;
    a call's ``ToolCallCompleted`` follows it (Anthropic: at its block's end) or comes at
    the end (the others), then ``Usage`` and ``Finished`` (each usually there). Anthropic
    tool-call indices are content-block numbers; Gemini calls carry their arguments in
    one ``ToolCallDelta``, compact JSON. Only ``features`` (default: all the family
    carries) are drawn.
    """
    chosen = StreamFeatures.for_family(api_family) if features is None else features
    _check_family(api_family)
    return _stream_events(api_family, chosen)


def dialect_streams(
    api_family: str, features: StreamFeatures | None = None
) -> st.SearchStrategy[tuple[list[StreamingEvent], bytes]]:
    """``(events, body)``: ``stream_events`` and the bytes a server of the family sends."""
    return stream_events(api_family, features).map(
        lambda events: (events, wire_stream(api_family, events))
    )


# ------------------------------------------------------ chunkings and corruptions


@st.composite
def _chunkings(draw: st.DrawFn, data: bytes) -> list[bytes]:
    if len(data) < 2:
        return [data]
    style = draw(st.sampled_from(["points", "points", "bytes", "whole"]))
    if style == "whole":
        return [data]
    if style == "bytes":
        return [data[i : i + 1] for i in range(len(data))]
    cuts = sorted(draw(st.sets(st.integers(1, len(data) - 1), max_size=min(len(data), 24))))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def chunkings(data: bytes) -> st.SearchStrategy[list[bytes]]:
    """``data`` cut into pieces at arbitrary points (whole, byte by byte, or anywhere);
    the pieces always join back to ``data``."""
    return _chunkings(data)


_UNKNOWN_EVENTS = (
    b"event: mystery_event\ndata: {}\n\n",
    b'event: content_block_delta\ndata: {"type": "mystery_delta", "index": 0}\n\n',
    b'data: {"type": "mystery", "delta": {"type": "mystery"}}\n\n',
    b"retry: 100\nid: 7\n: a comment\n\n",
    b"data: \n\n",
    b"data: [DONE]\n\n",
)


_DEEP_FRAMES = (
    b"NESTED",
    b'{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c","type":"function",'
    b'"function":{"name":"f","arguments":"NESTED"}}]}}]}',
    b'{"type":"content_block_start","index":0,"content_block":{"type":"tool_use",'
    b'"id":"c","name":"f","input":{}}}\n\ndata: {"type":"content_block_delta",'
    b'"index":0,"delta":{"type":"input_json_delta","partial_json":"NESTED"}}',
)


@st.composite
def _corruption(draw: st.DrawFn, data: bytes) -> bytes:
    at = draw(st.integers(0, len(data)))
    how = draw(
        st.sampled_from(
            [
                "truncate",
                "invalid_utf8",
                "broken_json",
                "unknown_event",
                "huge_field",
                "deep_nesting",
                "random_bytes",
            ]
        )
    )
    if how == "truncate":
        return data[:at]
    if how == "invalid_utf8":
        bad = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xe2\x82", b"\x80"]))
        return data[:at] + bad + data[at:]
    if how == "broken_json":
        # drop or double a structural character of the JSON
        spots = [i for i, byte in enumerate(data) if byte in b'{}[]":,']
        if not spots:
            return data[:at] + b"{" + data[at:]
        spot = draw(st.sampled_from(spots))
        if draw(st.booleans()):
            return data[:spot] + data[spot + 1 :]
        return data[: spot + 1] + data[spot:]
    if how == "unknown_event":
        line = data.rfind(b"\n\n", 0, at)
        cut = 0 if line < 0 else line + 2
        return data[:cut] + draw(st.sampled_from(_UNKNOWN_EVENTS)) + data[cut:]
    if how == "huge_field":
        size = draw(st.sampled_from([10_000, 100_000, 1_000_000]))
        field = b'{"choices":[{"delta":{"content":"' + b"x" * size + b'"}}]}'
        return data[:at] + b"data: " + field + b"\n\n" + data[at:]
    if how == "deep_nesting":
        depth = draw(st.sampled_from([100, 5_000, 50_000]))
        nested = b"[" * depth + b"]" * depth
        # a frame nested that deep, or tool-call arguments (a JSON string) that are
        frame = draw(st.sampled_from(_DEEP_FRAMES)).replace(b"NESTED", nested)
        return data[:at] + b"data: " + frame + b"\n\n" + data[at:]
    return data[:at] + draw(st.binary(max_size=16)) + data[at:]


def corruptions(data: bytes) -> st.SearchStrategy[bytes]:
    """``data`` damaged once or twice: truncated, invalid UTF-8, broken JSON, unknown or
    empty events, a huge field, very deep JSON nesting, random bytes."""
    return _corruption(data).flatmap(
        lambda once: st.one_of(st.just(once), _corruption(once)),
    )


# ------------------------------------------------------------------------ requests

_HTTPS = st.builds(
    lambda host, name, ext: f"https://{host}.example/{name}.{ext}",
    st.text(string.ascii_lowercase, min_size=1, max_size=8),
    st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8),
    st.sampled_from(["png", "jpg", "webp", "gif"]),
)
_BASE64 = st.binary(min_size=1, max_size=24).map(lambda b: base64.b64encode(b).decode())
_IMAGE_TYPES = st.sampled_from(["image/png", "image/jpeg", "image/webp", "image/gif"])


@attrs.frozen
class _Expressible:
    """What a family's requests can carry, of what ``chat_requests`` draws."""

    audio: bool = True
    max_temperature: float = 2.0


_EXPRESSIBLE: Mapping[str | None, _Expressible] = {
    # any family: temperatures every family takes
    None: _Expressible(max_temperature=1.0),
    "openai_chat": _Expressible(),
    # Anthropic takes no audio (structured output goes as a forced tool call), and
    # temperatures up to 1
    "anthropic_messages": _Expressible(audio=False, max_temperature=1.0),
    "gemini_generate": _Expressible(),
}


def _blocks(api_family: str | None) -> st.SearchStrategy[ContentBlock]:
    text = st.builds(ContentBlock.from_text, _texts)
    image = st.builds(ContentBlock.image_url, _HTTPS) | st.builds(
        ContentBlock.image_base64, _BASE64, _IMAGE_TYPES
    )
    pdf = st.builds(
        ContentBlock.document_base64,
        _BASE64,
        st.just("application/pdf"),
        st.none() | st.text(string.ascii_letters, min_size=1, max_size=8).map(lambda s: s + ".pdf"),
    )
    audio_types = st.sampled_from(["audio/wav", "audio/mp3"])
    audio = st.builds(ContentBlock.audio_base64, _BASE64, audio_types)
    blocks = text | image | pdf
    return blocks | audio if _EXPRESSIBLE[api_family].audio else blocks


def _user_content(api_family: str | None) -> st.SearchStrategy[str | list[ContentBlock]]:
    return _texts | st.lists(_blocks(api_family), min_size=1, max_size=3).filter(
        lambda blocks: any(b.type != "text" or b.text for b in blocks)
    )


@st.composite
def _conversation(draw: st.DrawFn, api_family: str | None) -> list[Message]:
    messages: list[Message] = [Message.system(text) for text in draw(st.lists(_texts, max_size=2))]
    for _ in range(draw(st.integers(1, 3))):
        messages.append(Message.user(draw(_user_content(api_family))))
        if not draw(st.booleans()):
            continue
        # an assistant turn: text, signed reasoning, tool calls answered by tool messages
        calls = [
            ToolCall(draw(_ids), draw(_names), draw(_arguments))
            for _ in range(draw(st.integers(0, 2)))
        ]
        signature = draw(st.none() | _ids)
        reasoning = draw(_texts) if signature is not None else None
        messages.append(
            Message.assistant(
                draw(st.none() | _texts),
                calls,
                reasoning=reasoning,
                reasoning_signature=signature,
            )
        )
        for call in calls:
            messages.append(Message.tool(call.id or "", draw(_texts), name=call.name))
    return messages


_SCHEMA = st.fixed_dictionaries(
    {
        "type": st.just("object"),
        "properties": st.dictionaries(
            st.text(string.ascii_letters, min_size=1, max_size=8),
            st.fixed_dictionaries({"type": st.sampled_from(["string", "integer", "boolean"])}),
            max_size=3,
        ),
    }
)
_TOOLS = st.lists(
    st.builds(
        ToolDefinition,
        st.text(string.ascii_letters + "_", min_size=1, max_size=16),
        st.none() | _texts,
        _SCHEMA,
        st.none() | st.booleans(),
    ),
    max_size=3,
    unique_by=lambda tool: tool.name,
)


@st.composite
def _chat_request(draw: st.DrawFn, api_family: str | None) -> ChatRequest:
    tools = draw(_TOOLS)
    formats: list[Mapping[str, Any] | None] = [
        None,
        {"type": "text"},
        {"type": "json_object"},
        {"type": "json_schema", "json_schema": {"name": "out", "schema": draw(_SCHEMA)}},
    ]
    response_format = draw(st.sampled_from(formats))
    if response_format is not None and response_format["type"] != "text":
        # A JSON reply may go as a forced call of a reply tool (as the manifest's
        # structured_output says): no tool may have its name, and tool_choice can only
        # leave the choice open.
        tools = [tool for tool in tools if tool.name not in ("out", "json_response")]
        choices = ["auto", "required"]
    else:
        choices = ["auto", "none", "required", *(tool.name for tool in tools)]
    return ChatRequest(
        model=draw(st.text(string.ascii_lowercase + string.digits + ".-", min_size=1, max_size=12)),
        messages=draw(_conversation(api_family)),
        temperature=draw(st.none() | st.floats(0, _EXPRESSIBLE[api_family].max_temperature)),
        max_tokens=draw(st.none() | st.integers(1, 100_000)),
        top_p=draw(st.none() | st.floats(0, 1)),
        stop=draw(st.lists(_texts, max_size=3)),
        tools=tools,
        tool_choice=draw(st.none() | st.sampled_from(choices)) if tools else None,
        response_format=response_format,
        stream=draw(st.booleans()),
    )


def chat_requests(api_family: str | None = None) -> st.SearchStrategy[ChatRequest]:
    """Unified chat requests: system, user (text, images, documents, audio), assistant
    (text, signed reasoning, tool calls) and tool-result turns, tools, tool choice,
    sampling parameters, stop sequences, response formats, streaming or not.

    With ``api_family`` only what that family can express is drawn, so its encoder must
    accept every request; without, some requests are for other families.
    """
    if api_family is not None:
        _check_family(api_family)
    return _chat_request(api_family)


# ----------------------------------------------------------------------- manifests


@cache
def _shipped() -> dict[str, dict[str, Any]]:
    """The shipped manifests as plain data, by file name."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    out = {}
    for path in sorted(builtin_protocol_dir().glob("*.yaml")):
        out[path.stem] = yaml.load(path.read_text(encoding="utf-8"))
    return out


def _family_of(document: Mapping[str, Any]) -> str:
    adapter = document.get("endpoints", {}).get("chat", {}).get("adapter", "openai_chat")
    return str(adapter)


def _spellings() -> tuple[dict[EmitKind, list[str]], dict[tuple[EmitKind, str], list[str]]]:
    """Equivalent spellings: emit names by kind, field names by (kind, canonical name)."""
    emits: dict[EmitKind, list[str]] = {}
    for name, kind in EMIT_ALIASES.items():
        emits.setdefault(kind, []).append(name)
    fields: dict[tuple[EmitKind, str], list[str]] = {}
    for kind, aliases in FIELD_ALIASES.items():
        for name, canonical in aliases.items():
            fields.setdefault((kind, canonical), []).append(name)
    return emits, fields


_EMIT_SPELLINGS, _FIELD_SPELLINGS = _spellings()


@st.composite
def _respelled_rule(draw: st.DrawFn, rule: Mapping[str, Any]) -> dict[str, Any]:
    """The same rule in another of the spellings the loader accepts."""
    kind = EMIT_ALIASES[rule["emit"]]
    out = dict(rule)
    out["emit"] = draw(st.sampled_from(_EMIT_SPELLINGS[kind]))
    key = "extract" if "extract" in rule else "fields"
    fields = rule.get(key)
    if isinstance(fields, Mapping):
        respelled: dict[str, Any] = {}
        for name, path in fields.items():
            canonical = FIELD_ALIASES[kind].get(name, name)
            spellings = _FIELD_SPELLINGS.get((kind, canonical), [name])
            choice = draw(st.sampled_from(spellings))
            if choice in respelled:
                choice = name
            if isinstance(path, str) and draw(st.booleans()):
                path = [path]  # one path or a list of one
            respelled[choice] = path
        del out[key]
        out[draw(st.sampled_from(["extract", "fields"]))] = respelled
    keys = list(out)
    order = draw(st.permutations(keys))
    return {k: out[k] for k in order}


@st.composite
def _manifest_document(draw: st.DrawFn, api_family: str | None) -> dict[str, Any]:
    seeds = {
        name: doc
        for name, doc in _shipped().items()
        if api_family is None or _family_of(doc) == api_family
    }
    seed = json.loads(json.dumps(seeds[draw(st.sampled_from(sorted(seeds)))]))
    doc: dict[str, Any] = dict(seed)
    doc["id"] = draw(st.from_regex(r"[a-z0-9][a-z0-9_-]{1,20}", fullmatch=True))
    # (not any text: ruamel writes some plain scalars, like `?0`, that it cannot read back
    # in flow style)
    doc["name"] = draw(st.from_regex(r"[A-Za-z][A-Za-z0-9 ._()-]{0,19}", fullmatch=True))
    host = draw(st.text(string.ascii_lowercase, min_size=1, max_size=10))
    doc["endpoint"] = {**doc["endpoint"], "base_url": f"https://{host}.example/v1"}
    for section in ("streaming", "response"):
        spec = doc.get(section)
        if isinstance(spec, dict) and spec.get("event_map"):
            spec["event_map"] = [draw(_respelled_rule(rule)) for rule in spec["event_map"]]
    # optional sections: dropped, or given other valid values
    for optional in ("metadata", "rate_limit_headers", "capabilities", "$schema"):
        if optional in doc and draw(st.booleans()):
            del doc[optional]
    if draw(st.booleans()):
        doc["retry_policy"] = {
            "max_retries": draw(st.integers(0, 10)),
            "min_delay_ms": draw(st.integers(0, 5000)),
            "max_delay_ms": draw(st.integers(5000, 60000)),
            "retry_on_http_status": draw(st.lists(_STATUSES, max_size=4, unique=True)),
        }
    if draw(st.booleans()):
        low = draw(st.floats(0, 1))
        doc["parameters"] = {
            **doc.get("parameters", {}),
            "temperature": {"type": "float", "range": [low, low + draw(st.floats(0, 2))]},
        }
    return doc


def manifest_documents(api_family: str | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """Valid manifests as plain data: a shipped manifest (of ``api_family``, if given)
    with a new id, name and base URL, its rules respelled in equivalent ways (emit and
    field aliases, ``extract`` or ``fields``, a path or a list of one, any key order),
    optional sections dropped or varied. Each decodes exactly as the manifest it came
    from, and loads in strict mode."""
    if api_family is not None:
        _check_family(api_family)
    return _manifest_document(api_family)


def _to_yaml(document: Any, flow: bool) -> str:
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = flow
    yaml.width = 4096
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue()


def manifest_texts(api_family: str | None = None) -> st.SearchStrategy[str]:
    """``manifest_documents`` written as YAML (block or flow style)."""
    return st.builds(_to_yaml, manifest_documents(api_family), st.booleans())


@attrs.frozen
class BrokenManifest:
    """A manifest with one mistake: its YAML ``text``, and the JSONPath of the mistake
    (``$.streaming.event_map[2].emit``; ``$`` for a YAML syntax error) that the
    loader's report must name."""

    text: str
    path: str
    mistake: str


def _rule_paths(doc: Mapping[str, Any]) -> list[tuple[str | int, ...]]:
    return [
        (section, "event_map", i)
        for section in ("streaming", "response")
        if isinstance(doc.get(section), Mapping)
        for i in range(len(doc[section].get("event_map") or ()))
    ]


@st.composite
def _broken(draw: st.DrawFn) -> BrokenManifest:
    from .._protocol._loader import format_path

    doc = draw(manifest_documents())
    rules = _rule_paths(doc)
    mistakes: dict[str, Callable[[], tuple[tuple[Any, ...], Any]]] = {
        "bad id": lambda: (("id",), draw(st.sampled_from(["Bad Id", "x", "-a", "é"]))),
        "id not a string": lambda: (("id",), draw(st.sampled_from([[1], {"a": 1}]))),
        "base_url not http": lambda: (("endpoint", "base_url"), "ftp://host/v1"),
        "endpoint not a mapping": lambda: (("endpoint",), draw(st.sampled_from([[1], 3]))),
        "unknown emit": lambda: ((*draw(st.sampled_from(rules)), "emit"), "Bogus"),
        "bad match": lambda: (
            (*draw(st.sampled_from(rules)), "match"),
            draw(st.sampled_from(["$.a ==", "exists(", "$.a == 'x", "$..[?"])),
        ),
        "bad each": lambda: ((*draw(st.sampled_from(rules)), "each"), "$.a[*"),
        "event_map not a list": lambda: (("streaming", "event_map"), {"emit": "Usage"}),
        "bad range": lambda: (("parameters", "temperature", "range"), [0, "x"]),
        "bad status key": lambda: (("error_classification", "by_http_status"), {"abc": "x"}),
        "bad max_retries": lambda: (("retry_policy", "max_retries"), "many"),
        "bad auth type": lambda: (("endpoint", "auth", "type"), "bogus"),
    }
    if not rules:
        for name in ("unknown emit", "bad match", "bad each"):
            del mistakes[name]
    name = draw(st.sampled_from(sorted(mistakes)))
    path, value = mistakes[name]()
    target: Any = doc  # Any: a path mixes keys and list indices
    for part in path[:-1]:  # a section that is absent is added, holding the mistake
        inner: Any = target[part] if isinstance(target, list) else target.get(part)
        if not isinstance(inner, dict | list):
            inner = target[part] = {}
        target = inner
    target[path[-1]] = value
    return BrokenManifest(_to_yaml(doc, draw(st.booleans())), format_path(path), name)


@st.composite
def _syntax_error(draw: st.DrawFn) -> BrokenManifest:
    # block style: a line boundary is never inside a (flow-style) quoted scalar, so an
    # unclosed flow collection put there swallows the next lines, which cannot close it
    lines = _to_yaml(draw(manifest_documents()), flow=False).splitlines(keepends=True)
    at = draw(st.integers(0, len(lines)))
    bad = draw(st.sampled_from(["key: [unclosed\n", "key: {a: 1\n"]))
    return BrokenManifest("".join(lines[:at]) + bad + "".join(lines[at:]), "$", "YAML syntax")


def broken_manifests() -> st.SearchStrategy[BrokenManifest]:
    """Valid manifests with one mistake each (a bad id, an unknown emit, an invalid
    JSONPath or match expression, a section of the wrong shape, a YAML syntax error...)."""
    return _broken() | _syntax_error()


_YAML_PIECES = st.sampled_from(
    [
        "a: 1",
        "- x",
        "? [a, b]\n: c",
        "&anchor {a: *anchor}",
        "&a [*a]",
        "*undefined",
        "!!binary aGVsbG8=",
        "!!timestamp 2001-13-45",
        "!!python/object:os.system {}",
        "!custom {x: 1}",
        "!!set {a, b}",
        "!!omap [a: 1, a: 2]",
        "<<: {a: 1}",
        "<<: [1, 2]",
        "%YAML 1.1\n---",
        "--- a\n--- b",
        "...",
        "'unterminated",
        '"\\x"',
        "|\n  block",
        "key: 2001-12-14t21:59:43.10-05:00",
        "key: .inf",
        "key: 0o17",
        "key: 1_000",
        "\t",
        "\ufeff",
        "[" * 200,
        "{a: " * 60,
        "- " * 200 + "x",
        "id: demo\nprotocol_version: '2.0'\nendpoint: {base_url: https://x.example}",
    ]
)


def yaml_texts() -> st.SearchStrategy[str]:
    """Any text a manifest file may hold: random text, YAML oddities (anchors, aliases,
    tags, merge keys, complex keys, several documents), and valid manifests with random
    characters inserted, deleted or replaced."""
    oddities = st.lists(_YAML_PIECES | st.text(max_size=10), min_size=1, max_size=6).map("\n".join)

    @st.composite
    def damaged(draw: st.DrawFn) -> str:
        text = draw(manifest_texts())
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(text)))
            piece = draw(st.sampled_from(list(":-[]{}&*!|>'\"%@`#\t\n ,?")) | _YAML_PIECES)
            cut = draw(st.integers(0, 3))
            text = text[:at] + piece + text[at + cut :]
        return text

    return st.text() | oddities | damaged()
