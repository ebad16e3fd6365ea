"""Any bytes or JSON from a server give events or a typed failure, never another exception:
every shipped manifest's stream and response rules, on arbitrary input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ailib_anyio._core._mapping import (
    DecodeFailure,
    EventMapper,
    ResponseAccumulator,
    StreamFailure,
    StreamPipeline,
)
from ailib_anyio._protocol._registry import ProtocolRegistry
from ailib_anyio._types import ChatResponse

REGISTRY = ProtocolRegistry()
PROVIDERS = REGISTRY.providers()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
# JSON shaped like provider frames, so rules get deep before meeting the unexpected
KEYS = [
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
    "functionCall",
    "args",
    "usageMetadata",
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
]
shaped = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["", "x", "tool_use", "text"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)
    ),
    max_leaves=30,
)


def _run_stream(provider: str, chunks: list[bytes]) -> ChatResponse:
    manifest = REGISTRY.get(provider)
    assert manifest.streaming is not None
    pipe = StreamPipeline(
        manifest.streaming.event_map,
        decoder_format=manifest.streaming.decoder.format,
        done_signal=manifest.streaming.decoder.done_signal,
        termination=manifest.termination_mapping,
        generate_ids=manifest.generate_tool_call_ids,
    )
    acc = ResponseAccumulator()
    for item in [*(e for c in chunks for e in pipe.feed(c)), *pipe.close()]:
        if isinstance(item, (StreamFailure, DecodeFailure)):
            break
        acc.add(item)
    return acc.build(mapper=pipe.mapper)


@pytest.mark.parametrize("provider", PROVIDERS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(shaped | json_values, max_size=6))
def test_stream_rules_are_total_on_any_json(provider: str, frames: list[Any]) -> None:
    body = "".join(f"data: {json.dumps(f)}\n\n" for f in frames).encode()
    assert isinstance(_run_stream(provider, [body]), ChatResponse)


@pytest.mark.parametrize("provider", PROVIDERS)
@settings(max_examples=60, deadline=None)
@given(chunks=st.lists(st.binary(max_size=40), max_size=6))
def test_stream_is_total_on_any_bytes(provider: str, chunks: list[bytes]) -> None:
    assert isinstance(_run_stream(provider, chunks), ChatResponse)


@pytest.mark.parametrize("provider", PROVIDERS)
@settings(max_examples=60, deadline=None)
@given(body=shaped | json_values)
def test_response_rules_are_total_on_any_json(provider: str, body: Any) -> None:
    manifest = REGISTRY.get(provider)
    assert manifest.response is not None
    mapper = EventMapper(manifest.response.event_map, termination=manifest.termination_mapping)
    events = [*mapper.map_object(body), *mapper.finish()]
    assert all(not isinstance(e, DecodeFailure) for e in events)


@pytest.mark.parametrize("provider", PROVIDERS)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(shaped, max_size=6))
def test_grouped_rules_act_exactly_like_plain_rules(provider: str, frames: list[Any]) -> None:
    """Rules grouped by parent object (a speed-up) give the same events and state as the
    same rules run one by one."""
    from ailib_anyio._core import _mapping

    manifest = REGISTRY.get(provider)
    assert manifest.streaming is not None
    rules = tuple(manifest.streaming.event_map)
    grouped = EventMapper(rules, termination=manifest.termination_mapping)
    original = _mapping._guard
    try:
        _mapping._guard = lambda rule: None  # type: ignore[assignment]
        plain = EventMapper(list(rules), termination=manifest.termination_mapping)  # uncached
    finally:
        _mapping._guard = original
    for frame in frames:
        for event in (None, "message_start", "content_block_delta"):
            assert grouped.map_object(frame, event) == plain.map_object(frame, event)
    assert grouped.finish() == plain.finish()
