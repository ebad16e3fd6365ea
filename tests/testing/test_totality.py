"""Any bytes or JSON from a server give events or a typed failure, never another exception:
every shipped manifest's stream, response and error rules, on arbitrary input (random
bytes and JSON, provider-shaped frames, corrupted streams, error bodies)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fuzzing import fast
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ailib_anyio._core._mapping import (
    DecodeFailure,
    EventMapper,
    ResponseAccumulator,
    StreamFailure,
    StreamPipeline,
)
from ailib_anyio._core._types import ChatResponse, ToolCallCompleted
from ailib_anyio._protocol._registry import ProtocolRegistry
from ailib_anyio.testing import strategies as ast
from ailib_anyio.testing._check import error_totality, response_totality, stream_totality

REGISTRY = ProtocolRegistry()
PROVIDERS = REGISTRY.providers()

json_values = ast.json_values()
shaped = ast.provider_frames()


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


@pytest.mark.parametrize("provider", PROVIDERS)
@fast(40)
@given(data=st.data())
def test_stream_is_total_on_corrupted_streams(provider: str, data: Any) -> None:
    manifest = REGISTRY.get(provider)
    features = ast.stream_features(manifest)
    _, body = data.draw(ast.dialect_streams(manifest.api_family, features), label="stream")
    damaged = data.draw(ast.corruptions(body), label="damaged")
    chunks = data.draw(ast.chunkings(damaged), label="chunks")
    assert stream_totality(manifest, chunks) is None


@pytest.mark.parametrize("provider", PROVIDERS)
@fast(40)
@given(body=st.binary(max_size=200) | (shaped | json_values).map(lambda v: json.dumps(v).encode()))
def test_response_body_is_total_on_any_bytes(provider: str, body: bytes) -> None:
    assert response_totality(REGISTRY.get(provider), body) is None


HEADERS = st.dictionaries(
    st.sampled_from(["retry-after", "retry-after-ms", "x-should-retry"]),
    st.sampled_from(["1", "2.5", "-1", "1e999", "nan", "Wed, 21 Oct 2015 07:28:00 GMT"])
    | st.text(max_size=12),
)


@pytest.mark.parametrize("provider", PROVIDERS)
@fast(40)
@given(status=st.integers(100, 599), headers=HEADERS, body=ast.error_bodies())
def test_error_classification_is_total(
    provider: str, status: int, headers: dict[str, str], body: Any
) -> None:
    """Any error body (as JSON or text), with any status and retry headers, classifies."""
    assert error_totality(REGISTRY.get(provider), status, headers, body) is None


# -- regressions found by fuzzing


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_frame_nested_past_the_json_parser_depth_is_a_decode_failure(provider: str) -> None:
    """json.loads raises RecursionError (not ValueError) past its nesting depth; the
    mapper let it escape the pipeline."""
    deep = b"data: " + b"[" * 100_000 + b"]" * 100_000 + b"\n\n"
    pipe = _pipeline(provider)
    failures = [e for e in pipe.feed(deep) if isinstance(e, DecodeFailure)]
    assert len(failures) == 1
    assert "not valid JSON" in str(failures[0].error)


def test_tool_arguments_nested_past_the_json_parser_depth_are_a_parse_error() -> None:
    """The same for a tool call's arguments, parsed when the call completes."""
    nested = "[" * 100_000 + "]" * 100_000
    frame = {
        "choices": [
            {
                "delta": {
                    "tool_calls": [
                        {"index": 0, "id": "c", "function": {"name": "f", "arguments": nested}}
                    ]
                }
            }
        ]
    }
    pipe = _pipeline("openai")
    events = [*pipe.feed(f"data: {json.dumps(frame)}\n\n".encode()), *pipe.close()]
    (done,) = [e for e in events if isinstance(e, ToolCallCompleted)]
    assert done.tool_call.arguments == {}
    assert done.tool_call.parse_error is not None
    assert done.tool_call.raw_arguments == nested


def _pipeline(provider: str) -> StreamPipeline:
    manifest = REGISTRY.get(provider)
    assert manifest.streaming is not None
    return StreamPipeline(
        manifest.streaming.event_map,
        decoder_format=manifest.streaming.decoder.format,
        done_signal=manifest.streaming.decoder.done_signal,
    )
