"""The one decoder: ``stream_pipeline``/``response_decoder`` build the client's decoders from
a manifest, the core decides truncation in ``StreamPipeline.close()``, ``error_from_info``
is the one ``ErrorInfo -> exception``, and an unknown ``streaming.decoder.format`` is a
located load error (not silently SSE)."""

from __future__ import annotations

import doctest
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ailib_anyio import (
    ConfigurationError,
    ContentDelta,
    Finished,
    MalformedResponseError,
    ProtocolError,
    RateLimitedError,
    RemoteContextLengthExceededError,
    RemoteError,
    ServerError,
    TransportError,
    Usage,
    open_client,
)
from ailib_anyio._core._classify import ErrorInfo, error_from_info
from ailib_anyio._core._mapping import (
    DECODER_FORMATS,
    DecodeFailure,
    ResponseDecoder,
    StreamFailure,
    StreamPipeline,
)
from ailib_anyio._core._ndjson import NDJSONDecoder
from ailib_anyio._core._sse import SSEDecoder
from ailib_anyio._core._types import RateLimitSnapshot
from ailib_anyio._protocol._decoding import response_decoder, stream_pipeline
from ailib_anyio._protocol._loader import load_manifest_text
from ailib_anyio._protocol._registry import ProtocolRegistry, builtin_protocol_dir
from ailib_anyio.testing import MockProvider, Reply, decode_response, decode_stream

HEAD = 'id: demo\nprotocol_version: "2.0"\nendpoint:\n  base_url: https://api.example.com/v1\n'
RULES = "  event_map:\n    - emit: ContentDelta\n      extract:\n        text: $.t\n"


def at(text: str, needle: str) -> str:
    pos = text.index(needle)
    return f"{text.count(chr(10), 0, pos) + 1}:{pos - (text.rfind(chr(10), 0, pos) + 1) + 1}"


def sse(*frames: Any, done: bool = False) -> bytes:
    out = b"".join(b"data: " + json.dumps(f).encode() + b"\n\n" for f in frames)
    return out + (b"data: [DONE]\n\n" if done else b"")


def chunk(content: str | None = None, finish: str | None = None) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


# -- the decoder format is validated at load time ------------------------------------------


@pytest.mark.parametrize("fmt", ["xml", "SSE", "websocket"])
def test_unknown_decoder_format_is_a_located_protocol_error(fmt: str) -> None:
    text = HEAD + f"streaming:\n  decoder:\n    format: {fmt}\n" + RULES
    with pytest.raises(ProtocolError) as info:
        load_manifest_text(text, source="m.yaml")
    assert info.value.issues == [
        f"m.yaml:{at(text, fmt)}: $.streaming.decoder.format: unknown decoder format"
        f" {fmt!r} (known: anthropic_sse, gemini_sse, json_lines, ndjson, sse)"
    ]
    assert at(text, fmt) == "7:13"


def test_decoder_format_errors_are_reported_with_the_others() -> None:
    text = HEAD + "streaming:\n  decoder:\n    format: xml\n  event_map:\n    - emit: Bogus\n"
    with pytest.raises(ProtocolError) as info:
        load_manifest_text(text, source="m.yaml")
    assert [issue.split(": ")[1] for issue in info.value.issues] == [
        "$.streaming.decoder.format",
        "$.streaming.event_map[0].emit",
    ]


@pytest.mark.parametrize(
    ("fmt", "framing", "decoder"),
    [
        ("sse", "sse", SSEDecoder),
        ("anthropic_sse", "sse", SSEDecoder),
        ("gemini_sse", "sse", SSEDecoder),
        ("ndjson", "ndjson", NDJSONDecoder),
        ("json_lines", "ndjson", NDJSONDecoder),
    ],
)
def test_known_decoder_formats_load_and_pick_their_framing(
    fmt: str, framing: str, decoder: type
) -> None:
    manifest = load_manifest_text(HEAD + f"streaming:\n  decoder:\n    format: {fmt}\n" + RULES)
    pipe = stream_pipeline(manifest)
    assert DECODER_FORMATS[fmt] == framing
    assert pipe.framing == framing
    assert type(pipe.decoder) is decoder


def test_core_refuses_an_unknown_format_instead_of_reading_sse() -> None:
    with pytest.raises(ConfigurationError) as info:
        StreamPipeline((), decoder_format="xml")
    assert info.value.message == (
        "unknown stream decoder format 'xml'"
        " (known: anthropic_sse, gemini_sse, json_lines, ndjson, sse)"
    )


# -- truncation is decided in the core -------------------------------------------------------


def test_close_reports_a_cut_off_body_itself() -> None:
    pipe = stream_pipeline(ProtocolRegistry().get("openai"))
    assert pipe.feed(sse(chunk("Hel"), chunk("lo"))) == [ContentDelta("Hel"), ContentDelta("lo")]
    (cut,) = pipe.close()
    assert pipe.truncated is True
    assert type(cut) is DecodeFailure
    assert cut.truncated is True
    assert type(cut.error) is TransportError
    assert cut.error.message == "the stream ended before the provider finished the response"


@pytest.mark.parametrize(
    "body",
    [sse(chunk("x"), done=True), sse(chunk("x"), chunk(finish="stop"))],
    ids=["done-signal", "finish-reason"],
)
def test_close_of_a_complete_body_reports_no_failure(body: bytes) -> None:
    pipe = stream_pipeline(ProtocolRegistry().get("openai"))
    events = [*pipe.feed(body), *pipe.close()]
    assert pipe.truncated is False
    assert not any(isinstance(e, DecodeFailure) for e in events)


def test_undecodable_tail_is_reported_instead_of_truncation() -> None:
    pipe = stream_pipeline(ProtocolRegistry().get("openai"))
    pipe.feed(b"data: {not json")
    (failure,) = pipe.close()
    assert type(failure) is DecodeFailure and not failure.truncated
    assert isinstance(failure.error, MalformedResponseError)


def test_testing_decoder_tells_truncation_apart_from_errors() -> None:
    manifest = ProtocolRegistry().get("openai")
    cut = decode_stream(manifest, [sse(chunk("a"))])
    assert (cut.events, cut.error, cut.truncated) == ((ContentDelta("a"),), None, True)
    whole = decode_stream(manifest, [sse(chunk("a"), done=True)])
    assert (whole.events, whole.error, whole.truncated) == ((ContentDelta("a"),), None, False)


# -- stream errors ---------------------------------------------------------------------------


def test_stream_error_event_is_classified_by_the_manifest_rules() -> None:
    pipe = stream_pipeline(ProtocolRegistry().get("openai"))
    out = pipe.feed(sse(chunk("a"), {"error": {"message": "slow", "code": "rate_limit_exceeded"}}))
    assert out[0] == ContentDelta("a")
    failure = out[1]
    assert type(failure) is StreamFailure
    limits = RateLimitSnapshot(requests_remaining=0)
    error = pipe.error(
        failure, request_id="req-1", rate_limits=limits, provider="openai", model="gpt-4o"
    )
    assert isinstance(error, RemoteError)
    assert type(error) is RateLimitedError
    assert error.message == "rate_limited (in the stream): slow"
    assert (error.provider, error.model, error.request_id) == ("openai", "gpt-4o", "req-1")
    assert error.rate_limits is limits
    # the testing decoder raises the same error, built by the same call
    decoded = decode_stream(ProtocolRegistry().get("openai"), [sse(chunk("a"), failure.body)])
    assert decoded.events == (ContentDelta("a"),)
    assert decoded.error is not None
    assert type(decoded.error) is type(error)
    assert decoded.error.message == error.message


# -- the response decoder ----------------------------------------------------------------------

COMPLETION = {
    "id": "c1",
    "model": "gpt-4o-2024-08-06",
    "choices": [{"message": {"content": "Hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1},
}


def test_response_decoder_builds_the_response() -> None:
    decoder = response_decoder(ProtocolRegistry().get("openai"))
    events: list[Any] = []
    response = decoder.decode(COMPLETION, request_id="r", model="gpt-4o", events=events)
    assert response.content == "Hi"
    assert response.finish_reason is not None and response.finish_reason.normalized == "stop"
    assert response.usage == Usage(input_tokens=3, output_tokens=1)
    assert response.model == "gpt-4o-2024-08-06"  # the body's model wins
    assert response.request_id == "r"
    assert response.raw is COMPLETION
    assert [type(e) for e in events] == [ContentDelta, Usage, Finished]


@pytest.mark.parametrize(
    "body", [{}, {"id": "x"}, [1, 2], {"usage": {"prompt_tokens": 1}}], ids=str
)
def test_response_with_nothing_found_is_malformed(body: Any) -> None:
    decoder = response_decoder(ProtocolRegistry().get("openai"))
    with pytest.raises(MalformedResponseError) as info:
        decoder.decode(body, status=200, request_id="r", provider="openai", model="m")
    assert info.value.message == (
        "the response has no choice, candidate or content the manifest can find: "
        + json.dumps(body)
    )
    assert (info.value.status_code, info.value.request_id) == (200, "r")
    assert (info.value.provider, info.value.model) == ("openai", "m")
    # and the testing decoder says the same
    decoded = decode_response(ProtocolRegistry().get("openai"), json.dumps(body).encode())
    assert isinstance(decoded.error, MalformedResponseError)
    assert decoded.error.message == info.value.message


def test_error_object_in_a_200_body_is_the_classified_remote_error() -> None:
    body = {"error": {"message": "boom", "type": "server_error", "status_code": 500}}
    decoder = response_decoder(ProtocolRegistry().get("deepseek"))
    with pytest.raises(ServerError) as info:
        decoder.decode(body, status=200, headers={"x-should-retry": "false"}, model="m")
    assert info.value.message == "server_error: boom"
    assert info.value.retryable is False  # the headers reach the classification
    assert info.value.model == "m"


def test_factories_refuse_a_manifest_without_rules() -> None:
    bare = load_manifest_text(HEAD)
    with pytest.raises(ConfigurationError) as info:
        stream_pipeline(bare, provider="demo", model="m")
    assert str(info.value) == "manifest 'demo' has no streaming rules (demo/m)"
    with pytest.raises(ConfigurationError) as info:
        response_decoder(bare)
    assert str(info.value) == "manifest 'demo' has no 'response' rules for non-streaming chat"


def test_response_decoder_is_stateless() -> None:
    decoder = response_decoder(ProtocolRegistry().get("openai"))
    assert isinstance(decoder, ResponseDecoder)
    first = decoder.decode(COMPLETION)
    second = decoder.decode(COMPLETION)
    assert first == second
    assert first.content == "Hi"


# -- one ErrorInfo -> exception --------------------------------------------------------------


def test_error_from_info_builds_the_complete_error() -> None:
    info = ErrorInfo(
        kind="rate_limited",
        message="slow down",
        status=429,
        code="rate_limit_exceeded",
        retryable=True,
        retry_after=2.0,
    )
    limits = RateLimitSnapshot(requests_remaining=0)
    error = error_from_info(
        info,
        body={"error": {}},
        request_id="req-9",
        provider="openai",
        model="gpt-4o",
        rate_limits=limits,
    )
    assert type(error) is RateLimitedError
    assert str(error) == "rate_limited: slow down (status=429, openai/gpt-4o, request_id=req-9)"
    assert (error.retryable, error.retry_after, error.code) == (True, 2.0, "rate_limit_exceeded")
    assert error.body == {"error": {}}
    assert error.rate_limits is limits
    assert error.response is None


def test_error_from_info_mid_stream_and_context_length() -> None:
    info = ErrorInfo(kind="request_too_large", message="too long", status=400, context_length=True)
    error = error_from_info(info, mid_stream=True)
    assert type(error) is RemoteContextLengthExceededError
    assert error.message == "request_too_large (in the stream): too long"


def test_doctests() -> None:
    from ailib_anyio._core import _classify

    result = doctest.testmod(_classify, raise_on_error=False)
    assert result.attempted > 0
    assert result.failed == 0


# -- the client decodes with the same pipeline -------------------------------------------------


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    async with MockProvider() as server:
        yield server


def _acme(tmp_path: Path, fmt: str) -> None:
    source = builtin_protocol_dir() / "openai-compatible.yaml"
    text = (
        source.read_text()
        .replace("id: openai-compatible", "id: acme")
        .replace("aliases: [vllm, ollama, llamacpp, lmstudio]", "aliases: []")
        .replace("format: sse", f"format: {fmt}")
    )
    assert f"format: {fmt}" in text
    (tmp_path / "acme.yaml").write_text(text)


@pytest.mark.anyio
async def test_client_raises_the_truncation_the_core_decides(
    mock: MockProvider, tmp_path: Path
) -> None:
    _acme(tmp_path, "sse")
    mock.enqueue(Reply(headers={"content-type": "text/event-stream"}, body=sse(chunk("par"))))
    async with open_client(
        "acme/m1", api_key="k", base_url=mock.openai_base_url, protocol_path=tmp_path
    ) as client:
        with pytest.raises(TransportError) as info:
            async with client.chat().user("hi").stream() as stream:
                async for _ in stream:
                    pass
    assert info.value.message == "the stream ended before the provider finished the response"
    assert info.value.response is not None
    assert info.value.response.content == "par"
    assert (info.value.provider, info.value.model) == ("acme", "m1")


@pytest.mark.anyio
async def test_an_sse_alias_format_is_read_as_sse_by_the_client(
    mock: MockProvider, tmp_path: Path
) -> None:
    _acme(tmp_path, "gemini_sse")  # any SSE spelling: a JSON answer is not a stream
    mock.enqueue(Reply(headers={"content-type": "application/json"}, body=b"{}"))
    async with open_client(
        "acme/m1", api_key="k", base_url=mock.openai_base_url, protocol_path=tmp_path
    ) as client:
        with pytest.raises(MalformedResponseError) as info:
            async with client.chat().user("hi").stream():
                pass
    assert info.value.message == (
        "the provider answered a stream request with 'application/json', not a stream"
    )
