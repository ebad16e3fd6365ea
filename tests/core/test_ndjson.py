"""Tests for the sans-IO NDJSON decoder: whole, byte by byte and split anywhere agree."""

from __future__ import annotations

import json
from collections.abc import Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ailib_anyio._core._errors import MalformedResponseError
from ailib_anyio._core._frames import Frame
from ailib_anyio._core._ndjson import NDJSONDecoder


def decode(chunks: Iterable[bytes], decoder: NDJSONDecoder | None = None) -> list[Frame]:
    """Feed every chunk, then flush, and return all frames."""
    decoder = NDJSONDecoder() if decoder is None else decoder
    frames: list[Frame] = []
    for chunk in chunks:
        frames += decoder.feed(chunk)
    frames += decoder.flush()
    return frames


def split_at(body: bytes, positions: Iterable[int]) -> list[bytes]:
    cuts = sorted({p % (len(body) + 1) for p in positions})
    return [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]


def decode_three_ways(body: bytes, positions: Iterable[int] = ()) -> list[Frame]:
    """Decode ``body`` whole, byte by byte and split at ``positions``; all must agree."""
    whole = decode([body])
    assert decode([body[i : i + 1] for i in range(len(body))]) == whole
    assert decode(split_at(body, positions)) == whole
    return whole


def test_one_frame_per_line() -> None:
    body = b'{"a": 1}\n{"b": 2}\n'
    assert decode_three_ways(body, [5, 11]) == [Frame(None, '{"a": 1}'), Frame(None, '{"b": 2}')]


def test_frames_are_real_frames() -> None:
    [frame] = NDJSONDecoder().feed(b"{}\n")
    assert type(frame) is Frame
    assert frame == Frame(None, "{}")


def test_feed_returns_only_completed_lines() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'{"a"') == []
    assert decoder.feed(b": 1}\n{") == [Frame(None, '{"a": 1}')]
    assert decoder.feed(b"") == []
    assert decoder.feed(b"}\n") == [Frame(None, "{}")]
    assert decoder.flush() == []


def test_crlf_and_blank_lines() -> None:
    body = b"\n{}\r\n\r\n  \t\n\r\n[1]\r\n \r\n"
    assert decode_three_ways(body) == [Frame(None, "{}"), Frame(None, "[1]")]


def test_crlf_split_across_feeds() -> None:
    assert decode([b"{}\r", b"\n[]\r", b"\n"]) == [Frame(None, "{}"), Frame(None, "[]")]


def test_lone_cr_is_not_a_line_end() -> None:
    # JSON allows CR as whitespace; only LF separates NDJSON records.
    assert decode_three_ways(b'{"a":\r1}\n') == [Frame(None, '{"a":\r1}')]


def test_flush_returns_last_line_without_newline() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'{"a": 1}\n{"done": true}') == [Frame(None, '{"a": 1}')]
    assert decoder.flush() == [Frame(None, '{"done": true}')]
    assert decoder.flush() == []


def test_flush_strips_trailing_cr_and_skips_blank() -> None:
    assert decode([b"{}\r"]) == [Frame(None, "{}")]
    assert decode([b"{}\n  "]) == [Frame(None, "{}")]
    assert NDJSONDecoder().flush() == []


def test_leading_bom_is_dropped() -> None:
    assert decode_three_ways(b"\xef\xbb\xbf{}\n\xef\xbb\xbf[]\n") == [
        Frame(None, "{}"),
        Frame(None, "\ufeff[]"),
    ]


@pytest.mark.parametrize("char", ["😊", "é"])
def test_utf8_character_split_across_feeds(char: str) -> None:
    body = json.dumps({"t": char}, ensure_ascii=False).encode() + b"\n"
    expected = [Frame(None, f'{{"t": "{char}"}}')]
    for cut in range(len(body) + 1):
        assert decode([body[:cut], body[cut:]]) == expected


def test_invalid_utf8_is_replaced() -> None:
    assert decode_three_ways(b'"\xff\xc3"\n') == [Frame(None, '"\ufffd\ufffd"')]


def test_max_buffer_line_without_end() -> None:
    decoder = NDJSONDecoder(max_buffer=100)
    decoder.feed(b"x" * 60)
    with pytest.raises(MalformedResponseError) as info:
        decoder.feed(b"x" * 60)
    assert info.value.message == (
        "NDJSON stream: 120 bytes received without a line end (max_buffer is 100)"
    )


def test_max_buffer_tail_of_a_single_feed() -> None:
    with pytest.raises(MalformedResponseError, match="max_buffer is 100"):
        NDJSONDecoder(max_buffer=100).feed(b"{}\n" + b"x" * 101)


def test_max_buffer_allows_many_small_lines() -> None:
    line = b'{"x": "' + b"y" * 80 + b'"}\n'
    assert len(decode([line * 50], NDJSONDecoder(max_buffer=100))) == 50


def test_max_buffer_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_buffer must be positive"):
        NDJSONDecoder(max_buffer=0)


def test_ollama_like_stream() -> None:
    records = [
        {"model": "llama3", "message": {"role": "assistant", "content": "Hé"}, "done": False},
        {"model": "llama3", "message": {"role": "assistant", "content": "llo 😊"}, "done": False},
        {"model": "llama3", "done": True, "eval_count": 12},
    ]
    body = b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)
    frames = decode_three_ways(body, [7, 70, 71, 150])
    assert [json.loads(f.data) for f in frames] == records


# Arbitrary text except LF, BOM (dropped at the start) and lone surrogates.
line_text = st.text(st.characters(codec="utf-8", exclude_characters="\n\ufeff"))
positions = st.lists(st.integers(min_value=0, max_value=100_000), max_size=12)


@given(
    lines=st.lists(line_text, max_size=10),
    crlf=st.booleans(),
    final_eol=st.booleans(),
    splits=positions,
)
def test_lines_round_trip_at_any_split(
    lines: list[str], crlf: bool, final_eol: bool, splits: list[int]
) -> None:
    eol = "\r\n" if crlf else "\n"
    text = eol.join(lines) + (eol if final_eol else "")
    body = text.encode()

    expected = []
    for i, line in enumerate(lines):
        # What the decoder sees between LFs: with CRLF, every ended line carries its CR.
        raw = line + "\r" if crlf and (final_eol or i < len(lines) - 1) else line
        # Blank means ASCII whitespace only: a line of U+3000 is kept (json.loads says no).
        if raw.encode() and not raw.encode().isspace():
            expected.append(Frame(None, raw[:-1] if raw.endswith("\r") else raw))
    assert decode([body]) == expected
    assert decode(split_at(body, splits)) == expected


@given(body=st.binary(max_size=300), splits=positions)
def test_arbitrary_bytes_split_anywhere_give_the_same_frames(
    body: bytes, splits: list[int]
) -> None:
    frames = decode([body])
    assert all(type(f) is Frame and f.event is None for f in frames)
    assert decode(split_at(body, splits)) == frames


@given(
    chunks=st.lists(st.binary(), max_size=20),
    max_buffer=st.sampled_from([1, 8, 64, 16 * 1024 * 1024]),
)
def test_arbitrary_chunks_raise_only_malformed_response(
    chunks: list[bytes], max_buffer: int
) -> None:
    decoder = NDJSONDecoder(max_buffer=max_buffer)
    try:
        for chunk in chunks:
            decoder.feed(chunk)
        decoder.flush()
    except MalformedResponseError:
        pass
