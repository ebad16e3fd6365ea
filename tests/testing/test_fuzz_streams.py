"""Stream decoding, fuzzed: split invariance and round trips through every manifest.

- split invariance: any chunking of a body (valid, or corrupted in any way) gives the
  same events and the same error as the body in one piece;
- round trip: events a server of the manifest's API family can send -> its wire bytes
  (the dialect encoder of ``ailib_anyio.testing``) -> the manifest's decoder -> the same
  events; streamed and non-streamed, for every manifest in ``protocols/`` and for
  manifests generated from them (respelled in every equivalent way the loader accepts).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fuzzing import fast
from hypothesis import given
from hypothesis import strategies as st

from ailib_anyio._core._types import (
    ContentDelta,
    ReasoningDelta,
    RefusalDelta,
    StreamingEvent,
    ToolCallDelta,
    ToolCallStarted,
)
from ailib_anyio._protocol._loader import load_manifest_text
from ailib_anyio._protocol._models import ProviderManifest
from ailib_anyio._protocol._registry import ProtocolRegistry
from ailib_anyio.testing import Decoded, decode_stream, wire_stream
from ailib_anyio.testing import strategies as ast
from ailib_anyio.testing._check import response_round_trip, stream_round_trip

REGISTRY = ProtocolRegistry()
MANIFESTS = {provider: REGISTRY.get(provider) for provider in REGISTRY.providers()}


def outcome(decoded: Decoded) -> tuple[Any, ...]:
    """What a consumer sees: the events, then the error (its class and message)."""
    error = decoded.error
    failure = None if error is None else (type(error).__name__, str(error))
    return decoded.events, failure, decoded.truncated


def streams_of(manifest: ProviderManifest) -> st.SearchStrategy[bytes]:
    """Bodies a manifest meets: valid streams of its family, corrupted ones, any bytes."""
    valid = ast.dialect_streams(manifest.api_family, ast.stream_features(manifest)).map(
        lambda stream: stream[1]
    )
    return valid | valid.flatmap(ast.corruptions) | st.binary(max_size=300)


@pytest.mark.parametrize("provider", sorted(MANIFESTS))
@fast(40)
@given(data=st.data())
def test_any_chunking_gives_the_same_events_as_one_chunk(provider: str, data: Any) -> None:
    manifest = MANIFESTS[provider]
    body = data.draw(streams_of(manifest), label="body")
    chunks = data.draw(ast.chunkings(body), label="chunks")
    assert b"".join(chunks) == body
    assert outcome(decode_stream(manifest, chunks)) == outcome(decode_stream(manifest, [body]))


@pytest.mark.parametrize("provider", sorted(MANIFESTS))
@fast(40)
@given(data=st.data())
def test_stream_round_trip(provider: str, data: Any) -> None:
    manifest = MANIFESTS[provider]
    features = ast.stream_features(manifest)
    events, body = data.draw(ast.dialect_streams(manifest.api_family, features), label="stream")
    chunks = data.draw(ast.chunkings(body), label="chunks")
    assert stream_round_trip(manifest, events, chunks) is None


@pytest.mark.parametrize("provider", sorted(MANIFESTS))
@fast(40)
@given(data=st.data())
def test_response_round_trip(provider: str, data: Any) -> None:
    manifest = MANIFESTS[provider]
    features = ast.response_features(manifest)
    events = data.draw(ast.stream_events(manifest.api_family, features), label="events")
    assert response_round_trip(manifest, events) is None


@fast(40)
@given(text=ast.manifest_texts(), data=st.data())
def test_respelled_manifests_decode_like_the_manifest_they_came_from(text: str, data: Any) -> None:
    manifest = load_manifest_text(text, source="generated.yaml", strict=True)
    assert manifest.api_family in ast.API_FAMILIES
    features = ast.stream_features(manifest)
    events, body = data.draw(ast.dialect_streams(manifest.api_family, features), label="stream")
    assert stream_round_trip(manifest, events, [body]) is None
    events = data.draw(ast.stream_events(manifest.api_family, ast.response_features(manifest)))
    assert response_round_trip(manifest, events) is None


def test_every_shipped_manifest_is_checked_for_what_its_family_sends() -> None:
    # the round trips above exercise these; a manifest that stopped decoding content
    # (say) would silently narrow them
    for provider, manifest in MANIFESTS.items():
        features = ast.stream_features(manifest)
        assert features.content, provider
        assert features.tool_calls, provider
        assert features.usage, provider
        assert features.finish, provider


@pytest.mark.parametrize(
    ("family", "events", "message"),
    [
        ("anthropic_messages", [RefusalDelta("no")], "the messages dialect cannot carry"),
        ("gemini_generate", [RefusalDelta("no")], "the generate_content dialect cannot carry"),
        (
            "openai_chat",
            [ReasoningDelta("", signature="sig")],
            "the chat_completions dialect cannot carry",
        ),
        (
            "anthropic_messages",
            [ToolCallStarted(0, "a", "f"), ContentDelta("x"), ToolCallDelta(0, "{}")],
            "outside its tool call's block",
        ),
        (
            "gemini_generate",
            [ToolCallStarted(0, None, "f"), ToolCallDelta(0, "[1]")],
            "(not an object)",
        ),
        ("bedrock_converse", [], "no wire encoder for API family 'bedrock_converse'"),
    ],
)
def test_encoders_refuse_what_the_dialect_cannot_carry(
    family: str, events: list[StreamingEvent], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        wire_stream(family, events)
