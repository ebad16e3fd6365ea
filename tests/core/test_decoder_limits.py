"""Edge cases of the sans-IO decoders that a mutation run showed no test would catch:
the SSE and NDJSON buffer caps (long streams cut mid-line, the exact boundary), the order
tool calls complete in, and a ``retry-after-ms`` of zero.

Each test names the code change it is there to catch.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

from ailib_anyio._core._classify import DEFAULT_ERROR_RULES, classify_error, parse_retry_after
from ailib_anyio._core._errors import MalformedResponseError
from ailib_anyio._core._mapping import StreamPipeline
from ailib_anyio._core._ndjson import NDJSONDecoder
from ailib_anyio._core._ratelimit import parse_rate_limits
from ailib_anyio._core._sse import SSEDecoder
from ailib_anyio._core._types import ToolCallCompleted, ToolCallStarted
from ailib_anyio._protocol._models import ProviderManifest
from ailib_anyio._protocol._registry import ProtocolRegistry

# ------------------------------------------------------------------ buffer caps


def cut_mid_line(body: bytes, size: int) -> list[bytes]:
    """``body`` in pieces of ``size`` bytes, so most pieces end inside a line."""
    return [body[i : i + size] for i in range(0, len(body), size)]


@pytest.mark.parametrize("size", [7, 13, 50])
def test_long_sse_stream_cut_mid_line_stays_under_the_cap(size: int) -> None:
    # 500 events of 27 bytes each (13.5 KB) through a 64-byte cap: only the unfinished line
    # counts, never the bytes of lines already ended. Catches a pending-size counter that
    # is not reset when a line end arrives (or that adds the tail to it).
    event = b'data: {"n":"0123456789ab"}\n\n'
    body = event * 500
    decoder = SSEDecoder(max_buffer=64)
    frames = [f for piece in cut_mid_line(body, size) for f in decoder.feed(piece)]
    assert len(frames) == 500
    assert all(f.data == '{"n":"0123456789ab"}' for f in frames)


def test_sse_pieces_ending_with_a_line_end_after_a_mid_line_piece() -> None:
    # A line split in two, then the piece that ends it: the stale size of the first half
    # must not survive into the next line.
    decoder = SSEDecoder(max_buffer=40)
    for _ in range(200):
        assert decoder.feed(b"data: 0123456789") == []
        assert decoder.feed(b"0123456789\n\n") == [(None, "01234567890123456789")]


@pytest.mark.parametrize("size", [5, 11, 64])
def test_long_ndjson_stream_cut_mid_line_stays_under_the_cap(size: int) -> None:
    line = b'{"message":{"content":"abcdefgh"}}\n'  # 36 bytes
    body = line * 400
    decoder = NDJSONDecoder(max_buffer=64)
    frames = [f for piece in cut_mid_line(body, size) for f in decoder.feed(piece)]
    assert len(frames) == 400
    assert all(f.data == line[:-1].decode() for f in frames)


def test_ndjson_pieces_ending_with_a_line_end_after_a_mid_line_piece() -> None:
    decoder = NDJSONDecoder(max_buffer=30)
    for _ in range(200):
        assert decoder.feed(b'{"a":"0123456789') == []
        assert decoder.feed(b'0123456789"}\n') == [(None, '{"a":"01234567890123456789"}')]


def test_sse_cap_holds_exactly_at_max_buffer_for_an_unfinished_line() -> None:
    # Catches `>` turned into `>=` (or an off-by-one) in the no-line-end path.
    ok = SSEDecoder(max_buffer=100)
    assert ok.feed(b"data: " + b"x" * 94) == []  # exactly 100 bytes pending: allowed
    assert ok.feed(b"\n\n") == [(None, "x" * 94)]
    over = SSEDecoder(max_buffer=100)
    over.feed(b"data: " + b"x" * 94)
    with pytest.raises(MalformedResponseError, match=r"101 bytes received .*\(max_buffer is 100\)"):
        over.feed(b"x")


def test_sse_cap_holds_exactly_at_max_buffer_for_a_tail_after_a_line_end() -> None:
    # The tail left by a piece holding a line end is checked too (the other code path).
    ok = SSEDecoder(max_buffer=100)
    assert ok.feed(b"data: a\n\n" + b"data: " + b"y" * 94) == [(None, "a")]
    over = SSEDecoder(max_buffer=100)
    with pytest.raises(MalformedResponseError, match=r"101 bytes received .*\(max_buffer is 100\)"):
        over.feed(b"data: a\n\n" + b"data: " + b"y" * 95)


def test_sse_cap_holds_exactly_at_max_buffer_for_data_lines_of_one_event() -> None:
    # Data lines of an event not yet dispatched count as `data: <value>\n` each.
    ok = SSEDecoder(max_buffer=100)
    assert ok.feed(b"data: " + b"z" * 43 + b"\n" + b"data: " + b"z" * 43 + b"\n") == []
    assert ok.feed(b"\n") == [(None, "z" * 43 + "\n" + "z" * 43)]
    over = SSEDecoder(max_buffer=100)
    with pytest.raises(MalformedResponseError, match=r"101 bytes received .*\(max_buffer is 100\)"):
        over.feed(b"data: " + b"z" * 43 + b"\n" + b"data: " + b"z" * 44 + b"\n")


def test_ndjson_cap_holds_exactly_at_max_buffer() -> None:
    ok = NDJSONDecoder(max_buffer=100)
    assert ok.feed(b"x" * 100) == []  # exactly 100 bytes without a line end: allowed
    assert ok.feed(b"\n") == [(None, "x" * 100)]
    over = NDJSONDecoder(max_buffer=100)
    over.feed(b"x" * 100)
    with pytest.raises(MalformedResponseError, match=r"101 bytes received .*\(max_buffer is 100\)"):
        over.feed(b"x")
    tail_ok = NDJSONDecoder(max_buffer=100)
    assert tail_ok.feed(b"{}\n" + b"y" * 100) == [(None, "{}")]
    tail_over = NDJSONDecoder(max_buffer=100)
    with pytest.raises(MalformedResponseError, match=r"101 bytes received .*\(max_buffer is 100\)"):
        tail_over.feed(b"{}\n" + b"y" * 101)


def test_decoders_recover_nothing_after_an_overflow_but_release_the_buffer() -> None:
    # After an overflow the buffered bytes are dropped (not kept until collection).
    sse = SSEDecoder(max_buffer=10)
    with pytest.raises(MalformedResponseError):
        sse.feed(b"data: " + b"x" * 20)
    assert sse._pending == [] and sse._pending_size == 0
    nd = NDJSONDecoder(max_buffer=10)
    with pytest.raises(MalformedResponseError):
        nd.feed(b"x" * 20)
    assert nd._pending == [] and nd._pending_size == 0


# ------------------------------------------------------------------ tool call order


@functools.cache
def manifest(provider: str) -> ProviderManifest:
    return ProtocolRegistry().get(provider)


def openai_pipeline() -> StreamPipeline:
    m = manifest("openai")
    assert m.streaming is not None
    return StreamPipeline(
        m.streaming.event_map,
        decoder_format=m.streaming.decoder.format,
        done_signal=m.streaming.decoder.done_signal,
        termination=m.termination_mapping,
    )


def tool_chunk(index: int, *, id: str | None = None, name: str | None = None, args: str) -> bytes:
    call: dict[str, Any] = {"index": index, "function": {"arguments": args}}
    if id is not None:
        call["id"] = id
        call["type"] = "function"
        call["function"]["name"] = name
    obj = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}],
    }
    return f"data: {json.dumps(obj)}\n\n".encode()


FINISH = (
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","model":"gpt-4o",'
    b'"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\n\ndata: [DONE]\n\n'
)


def test_tool_calls_complete_in_index_order_not_arrival_order() -> None:
    # Index 2 starts first, then 0, then 1, and their fragments interleave. The calls must
    # complete (and accumulate) as 0, 1, 2: catches `sorted(...)` dropped in `finish`.
    body = b"".join(
        [
            tool_chunk(2, id="call_c", name="third", args='{"n":'),
            tool_chunk(0, id="call_a", name="first", args='{"n":'),
            tool_chunk(1, id="call_b", name="second", args='{"n":'),
            tool_chunk(2, args="3}"),
            tool_chunk(0, args="1}"),
            tool_chunk(1, args="2}"),
            FINISH,
        ]
    )
    pipe = openai_pipeline()
    events = [*pipe.feed(body), *pipe.close()]
    started = [e.index for e in events if isinstance(e, ToolCallStarted)]
    assert started == [2, 0, 1]  # announced as they arrive
    completed = [e for e in events if isinstance(e, ToolCallCompleted)]
    assert [e.index for e in completed] == [0, 1, 2]
    assert [(e.tool_call.name, dict(e.tool_call.arguments)) for e in completed] == [
        ("first", {"n": 1}),
        ("second", {"n": 2}),
        ("third", {"n": 3}),
    ]


def test_partial_tool_calls_are_in_index_order() -> None:
    # A stream cut before the end: the partial response lists its calls by index too.
    pipe = openai_pipeline()
    pipe.feed(tool_chunk(1, id="call_b", name="second", args='{"n":2'))
    pipe.feed(tool_chunk(0, id="call_a", name="first", args='{"n":1'))
    partial = pipe.mapper.partial_tool_calls()
    assert [c.name for c in partial] == ["first", "second"]


# ------------------------------------------------------------------ retry-after-ms: 0


def test_retry_after_ms_zero_is_a_hint_of_zero() -> None:
    # Catches `if ms:` / `0 < value` in place of `ms is not None` / `0 <= value`: a zero
    # would then fall through to `retry-after` (9 s) or to no hint at all.
    assert parse_retry_after({"retry-after-ms": "0"}) == 0.0
    assert parse_retry_after({"retry-after-ms": "0", "retry-after": "9"}) == 0.0
    assert parse_retry_after({"retry-after-ms": "0.0", "retry-after": "9"}) == 0.0


def test_retry_after_ms_zero_reaches_the_error_and_the_snapshot() -> None:
    headers = {"retry-after-ms": "0", "retry-after": "9"}
    info = classify_error(DEFAULT_ERROR_RULES, 429, headers, {"error": {"message": "slow"}})
    assert info.retry_after == 0.0
    snapshot = parse_rate_limits({}, headers)
    assert snapshot is not None and snapshot.retry_after == 0.0
