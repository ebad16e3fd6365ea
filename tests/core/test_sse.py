"""Tests for the sans-IO server-sent events decoder.

Every payload is checked fed whole, byte by byte and split at chosen points: the three
must give the same frames.
"""

from __future__ import annotations

import ast
import json
import random
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ailib_anyio._core import _frames, _ndjson, _sse
from ailib_anyio._core._errors import MalformedResponseError
from ailib_anyio._core._frames import Frame
from ailib_anyio._core._sse import SSEDecoder

CONFORMANCE = Path(__file__).resolve().parents[3] / "shared" / "conformance"


def decode(chunks: Iterable[bytes], decoder: SSEDecoder | None = None) -> list[Frame]:
    """Feed every chunk, then flush, and return all frames."""
    decoder = SSEDecoder() if decoder is None else decoder
    frames: list[Frame] = []
    for chunk in chunks:
        frames += decoder.feed(chunk)
    frames += decoder.flush()
    return frames


def bytewise(body: bytes) -> list[bytes]:
    return [body[i : i + 1] for i in range(len(body))]


def split_at(body: bytes, positions: Iterable[int]) -> list[bytes]:
    cuts = sorted({p % (len(body) + 1) for p in positions})
    return [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]


def decode_three_ways(body: bytes, positions: Iterable[int] = ()) -> list[Frame]:
    """Decode ``body`` whole, byte by byte and split at ``positions``; all must agree."""
    whole = decode([body])
    assert decode(bytewise(body)) == whole
    assert decode(split_at(body, positions)) == whole
    return whole


# -- basics ------------------------------------------------------------------------------


def test_single_event() -> None:
    assert decode_three_ways(b'data: {"a": 1}\n\n') == [Frame(None, '{"a": 1}')]


def test_frames_are_real_frames() -> None:
    # The decoder builds frames with tuple.__new__ for speed: they must still be Frames.
    [frame] = SSEDecoder().feed(b"event: e\ndata: x\n\n")
    assert type(frame) is Frame
    assert frame.event == "e"
    assert frame.data == "x"
    assert frame == Frame("e", "x")


def test_feed_returns_only_completed_events() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: one\n\ndata: tw") == [Frame(None, "one")]
    assert decoder.feed(b"o\n") == []
    assert decoder.feed(b"\n") == [Frame(None, "two")]
    assert decoder.feed(b"") == []
    assert decoder.flush() == []


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_line_endings(eol: bytes) -> None:
    body = b"event: a" + eol + b"data: 1" + eol + b"data: 2" + eol + eol + b"data: 3" + eol + eol
    assert decode_three_ways(body, [3, 9, 17]) == [Frame("a", "1\n2"), Frame(None, "3")]


def test_mixed_line_endings() -> None:
    body = b"data: a\r\ndata: b\rdata: c\n\r\n\rdata: d\r\r"
    assert decode_three_ways(body) == [Frame(None, "a\nb\nc"), Frame(None, "d")]


def test_comments_are_ignored() -> None:
    body = b": keep-alive\n\n:\ndata: x\n: in the middle\ndata: y\n\n: OPENROUTER PROCESSING\n\n"
    assert decode_three_ways(body) == [Frame(None, "x\ny")]


def test_multi_line_data_is_joined_with_lf() -> None:
    body = b"data: first\ndata:\ndata:  indented\ndata:last\n\n"
    assert decode_three_ways(body) == [Frame(None, "first\n\n indented\nlast")]


def test_only_one_space_after_colon_is_removed() -> None:
    assert decode([b"data:x\n\ndata: x\n\ndata:  x\n\n"]) == [
        Frame(None, "x"),
        Frame(None, "x"),
        Frame(None, " x"),
    ]


def test_event_and_id_fields() -> None:
    decoder = SSEDecoder()
    assert decoder.last_event_id is None
    body = b"event: message_start\nid: 7\ndata: {}\n\ndata: plain\n\n"
    frames = decode([body], decoder)
    assert frames == [Frame("message_start", "{}"), Frame(None, "plain")]
    assert decoder.last_event_id == "7"


def test_event_name_resets_after_every_blank_line() -> None:
    # Even when the blank line dispatched nothing (the event had no data).
    body = b"event: lonely\n\ndata: x\n\nevent: e\ndata: y\n\ndata: z\n\n"
    assert decode_three_ways(body) == [Frame(None, "x"), Frame("e", "y"), Frame(None, "z")]


def test_event_without_data_is_not_dispatched() -> None:
    assert decode_three_ways(b"event: ping\n\nevent: ping\nid: 1\n\n") == []


def test_empty_event_name_means_no_name() -> None:
    assert decode_three_ways(b"event:\ndata: x\n\n") == [Frame(None, "x")]


def test_id_with_nul_is_ignored() -> None:
    decoder = SSEDecoder()
    decode([b"id: good\ndata: 1\n\nid: b\x00d\ndata: 2\n\n"], decoder)
    assert decoder.last_event_id == "good"


def test_empty_id_resets_last_event_id() -> None:
    decoder = SSEDecoder()
    decode([b"id: 1\ndata: a\n\nid\ndata: b\n\n"], decoder)
    assert decoder.last_event_id == ""


def test_retry_and_unknown_fields_are_ignored() -> None:
    body = b"retry: 1000\nfoo: bar\nDATA: shouted\ndata : spaced\nnocolon\ndata: x\n\n"
    assert decode_three_ways(body) == [Frame(None, "x")]


def test_field_without_colon_has_empty_value() -> None:
    assert decode_three_ways(b"data\n\nevent\ndata\ndata\n\n") == [
        Frame(None, ""),
        Frame(None, "\n"),
    ]


def test_empty_data_field_dispatches_empty_string() -> None:
    assert decode_three_ways(b"data:\n\n") == [Frame(None, "")]


def test_done_is_not_special() -> None:
    assert decode_three_ways(b"data: [DONE]\n\n") == [Frame(None, "[DONE]")]


# -- BOM ---------------------------------------------------------------------------------


def test_leading_bom_is_dropped() -> None:
    assert decode_three_ways(b"\xef\xbb\xbfdata: x\n\n") == [Frame(None, "x")]


def test_leading_bom_split_across_feeds() -> None:
    assert decode([b"\xef", b"\xbb", b"\xbfdata: x\n\n"]) == [Frame(None, "x")]
    assert decode([b"\xef\xbb\xbf", b"data: x\n\n"]) == [Frame(None, "x")]


def test_only_the_first_bom_is_dropped() -> None:
    # A second BOM is part of the field name, which is then unknown.
    body = b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\ndata: y\n\n"
    assert decode_three_ways(body) == [Frame(None, "y")]


def test_bom_later_in_the_stream_is_kept() -> None:
    body = b"data: x\n\n\xef\xbb\xbfdata: y\n\ndata: \xef\xbb\xbfz\n\n"
    assert decode_three_ways(body) == [Frame(None, "x"), Frame(None, "\ufeffz")]


# -- end of stream -------------------------------------------------------------------------


def test_flush_after_complete_stream_returns_nothing() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\n\n") == [Frame(None, "x")]
    assert decoder.flush() == []


@pytest.mark.parametrize(
    "body",
    [b"data: x", b"data: x\n", b"data: x\r\n", b"data: x\r", b"event: e\ndata: x\n"],
    ids=["no-eol", "LF", "CRLF", "CR", "event"],
)
def test_flush_dispatches_event_missing_its_blank_line(body: bytes) -> None:
    decoder = SSEDecoder()
    assert decoder.feed(body) == []
    expected = Frame("e" if body.startswith(b"event") else None, "x")
    assert decoder.flush() == [expected]


def test_flush_drops_event_without_data() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"event: e\nid: 3")
    assert decoder.flush() == []
    assert decoder.last_event_id == "3"


def test_flush_of_empty_stream() -> None:
    assert SSEDecoder().flush() == []


# -- chunk boundaries --------------------------------------------------------------------


@pytest.mark.parametrize("char", ["😊", "é", "€"])
def test_utf8_character_split_across_feeds(char: str) -> None:
    body = f"data: a{char}b\n\n".encode()
    expected = [Frame(None, f"a{char}b")]
    start = len(b"data: a")
    for cut in range(start + 1, start + len(char.encode())):
        assert decode([body[:cut], body[cut:]]) == expected
    assert decode_three_ways(body) == expected


def test_crlf_split_across_feeds_is_one_line_end() -> None:
    # Were the split CRLF two line ends, the empty line between would dispatch "a" alone.
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r") == []
    assert decoder.feed(b"\n\r") == [Frame(None, "a\nb")]
    assert decoder.feed(b"\n") == []
    assert decoder.flush() == []


def test_cr_then_lf_in_later_feed_after_empty_feed() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\ndata: b\n\n") == [Frame(None, "a\nb")]


def test_cr_cr_is_two_line_ends() -> None:
    assert decode([b"data: a\r", b"\r", b"data: b\r\r"]) == [Frame(None, "a"), Frame(None, "b")]


def test_invalid_utf8_is_replaced() -> None:
    body = b"event: \xff\ndata: a\xc3\ndata: \xe2\x82\n\n"
    assert decode_three_ways(body) == [Frame("\ufffd", "a\ufffd\n\ufffd")]


# -- max_buffer ----------------------------------------------------------------------------


def test_max_buffer_line_without_end() -> None:
    decoder = SSEDecoder(max_buffer=100)
    decoder.feed(b"data: " + b"x" * 90)
    with pytest.raises(MalformedResponseError) as info:
        decoder.feed(b"x" * 10)
    assert info.value.message == (
        "server-sent event stream: 106 bytes received without completing an event"
        " (max_buffer is 100); the server is not sending SSE line ends"
    )


def test_max_buffer_in_a_single_feed() -> None:
    with pytest.raises(MalformedResponseError, match="max_buffer is 100"):
        SSEDecoder(max_buffer=100).feed(b"data: ok\n\ndata: " + b"x" * 200)


def feed_repeatedly(decoder: SSEDecoder, chunk: bytes, times: int) -> None:
    for _ in range(times):
        decoder.feed(chunk)


def test_max_buffer_data_lines_without_blank_line() -> None:
    decoder = SSEDecoder(max_buffer=1000)
    feed_repeatedly(decoder, b"data: 0123456789\n", 58)  # 58 * 17 = 986 bytes
    with pytest.raises(MalformedResponseError) as info:
        decoder.feed(b"data: 0123456789\n")
    assert info.value.message.startswith(
        "server-sent event stream: 1003 bytes received without completing an event"
    )


def test_max_buffer_counts_empty_data_lines() -> None:
    # `data:` lines add nothing but still grow the event: they must count too.
    decoder = SSEDecoder(max_buffer=1000)
    with pytest.raises(MalformedResponseError):
        feed_repeatedly(decoder, b"data:\n", 2000)


def test_max_buffer_allows_many_small_events() -> None:
    decoder = SSEDecoder(max_buffer=100)
    event = b"data: " + b"x" * 80 + b"\n\n"
    frames = decode([event * 50, *bytewise(event * 3)], decoder)
    assert len(frames) == 53


def test_max_buffer_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_buffer must be positive"):
        SSEDecoder(max_buffer=0)


# -- properties ----------------------------------------------------------------------------

# Arbitrary text except line ends (and what UTF-8 cannot encode: lone surrogates).
line_text = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"))
events = st.lists(
    st.tuples(st.one_of(st.none(), line_text), st.lists(line_text, min_size=1, max_size=4)),
    max_size=8,
)
positions = st.lists(st.integers(min_value=0, max_value=100_000), max_size=12)


def encode_events(evts: list[tuple[str | None, list[str]]], eol: str, noise: bool) -> bytes:
    out: list[str] = []
    for i, (name, lines) in enumerate(evts):
        if noise:
            out.append(f": comment {i}{eol}")
            out.append(f"id: {i}{eol}")
        if name is not None:
            out.append(f"event: {name}{eol}")
        out.extend(f"data: {line}{eol}" for line in lines)
        out.append(eol)
    return "".join(out).encode()


@given(
    evts=events,
    eol=st.sampled_from(["\n", "\r\n", "\r"]),
    noise=st.booleans(),
    bom=st.booleans(),
    cut_last_blank=st.booleans(),
    splits=positions,
)
def test_encoded_events_round_trip_at_any_split(
    evts: list[tuple[str | None, list[str]]],
    eol: str,
    noise: bool,
    bom: bool,
    cut_last_blank: bool,
    splits: list[int],
) -> None:
    body = (b"\xef\xbb\xbf" if bom else b"") + encode_events(evts, eol, noise)
    if cut_last_blank and body.endswith(eol.encode() * 2):
        body = body[: -len(eol)]  # flush must still dispatch the last event
    expected = [Frame(name or None, "\n".join(lines)) for name, lines in evts]
    assert decode([body]) == expected
    assert decode(split_at(body, splits)) == expected


@given(body=st.binary(max_size=300), splits=positions)
def test_arbitrary_bytes_split_anywhere_give_the_same_frames(
    body: bytes, splits: list[int]
) -> None:
    frames = decode([body])
    assert all(type(f) is Frame and isinstance(f.data, str) for f in frames)
    assert decode(split_at(body, splits)) == frames


def reference_decode(body: bytes) -> list[Frame]:
    """A slow, literal reading of the WHATWG event-stream rules, to check the fast one."""
    text = body.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    # The end of the stream ends the last line and the event (what flush() promises).
    lines = [*re.split(r"\r\n|\r|\n", text), ""]
    frames: list[Frame] = []
    data: list[str] = []
    event = ""
    for line in lines:
        if line == "":
            if data:
                frames.append(Frame(event or None, "\n".join(data)))
            data, event = [], ""
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    return frames


# Bytes drawn from the pieces that matter to the grammar, to reach odd corners quickly.
sse_tokens = st.sampled_from(
    [
        *(b"data", b"event", b"id", b":", b" ", b"\r", b"\n", b"\r\n", b"x", b"\x00"),
        *(b"\xef\xbb\xbf", b"\xc3", b"\xa9", "😊".encode(), b"\xff"),
    ]
)


@given(pieces=st.lists(sse_tokens, max_size=60), splits=positions)
def test_matches_reference_decoder(pieces: list[bytes], splits: list[int]) -> None:
    body = b"".join(pieces)
    expected = reference_decode(body)
    assert decode([body]) == expected
    assert decode(split_at(body, splits)) == expected


@given(body=st.binary(max_size=300))
def test_arbitrary_bytes_match_reference_decoder(body: bytes) -> None:
    assert decode([body]) == reference_decode(body)


@given(
    chunks=st.lists(st.binary(), max_size=20),
    max_buffer=st.sampled_from([1, 8, 64, 16 * 1024 * 1024]),
)
def test_arbitrary_chunks_raise_only_malformed_response(
    chunks: list[bytes], max_buffer: int
) -> None:
    decoder = SSEDecoder(max_buffer=max_buffer)
    try:
        for chunk in chunks:
            decoder.feed(chunk)
        decoder.flush()
    except MalformedResponseError:
        pass


# -- real provider streams -----------------------------------------------------------------


def load_case(case_id: str) -> dict[str, Any]:
    path = CONFORMANCE / "cases" / f"{case_id}.yaml"
    if not path.is_file():
        pytest.skip(f"conformance corpus not found at {CONFORMANCE}")
    yaml = pytest.importorskip("yaml")
    case: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return case


def stream_body(case_id: str) -> bytes:
    body = load_case(case_id)["response"]["body"]
    assert isinstance(body, str)
    return body.encode()


def random_splits(body: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return split_at(body, [rng.randrange(len(body)) for _ in range(rng.randint(1, 40))])


def test_openai_stream() -> None:
    body = stream_body("openai/chat_stream_text_usage")
    frames = decode_three_ways(body)
    assert len(frames) == 14
    assert all(f.event is None for f in frames)
    assert frames[-1] == Frame(None, "[DONE]")
    chunks = [json.loads(f.data) for f in frames[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1]) == (
        "4200 + 42 equals 4242."
    )
    for seed in range(20):
        assert decode(random_splits(body, seed)) == frames


def test_gemini_crlf_stream() -> None:
    body = stream_body("gemini/stream_text_sse")
    assert b"\r\n\r\n" in body
    frames = decode_three_ways(body)
    assert len(frames) == 2
    texts = [json.loads(f.data)["candidates"][0]["content"]["parts"][0]["text"] for f in frames]
    assert "".join(texts).endswith("So, 4200 + 42 = **4242**.")
    for seed in range(20):
        assert decode(random_splits(body, seed)) == frames


@given(splits=positions)
def test_openai_stream_at_any_split(splits: list[int]) -> None:
    body = stream_body("openai/chat_stream_text_usage")
    assert decode(split_at(body, splits)) == decode([body])


def stream_case_ids() -> list[str]:
    if not CONFORMANCE.is_dir():
        return []
    return sorted(
        f"{p.parent.name}/{p.stem}"
        for p in (CONFORMANCE / "cases").glob("*/*.yaml")
        if "\nstream: true" in p.read_text(encoding="utf-8")
    )


@pytest.mark.parametrize("case_id", stream_case_ids())
def test_every_conformance_stream(case_id: str) -> None:
    body = stream_body(case_id)
    frames = decode_three_ways(body)
    assert frames
    for seed in range(5):
        assert decode(random_splits(body, seed)) == frames
    # Every recorded frame is one JSON document (or OpenAI's end marker).
    for frame in frames:
        if frame.data != "[DONE]":
            json.loads(frame.data)


# -- sans-IO guard ---------------------------------------------------------------------------


@pytest.mark.parametrize("module", [_sse, _ndjson, _frames], ids=lambda m: m.__name__)
def test_decoders_are_sans_io(module: Any) -> None:
    """The decoders import only the standard library and the errors module, and never await."""
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        assert not isinstance(node, (ast.AsyncFunctionDef, ast.Await, ast.AsyncFor, ast.AsyncWith))
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    allowed = {"__future__", "collections.abc", "typing", "._errors", "._frames"}
    assert imported <= allowed
