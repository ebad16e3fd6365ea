"""Tests for the event mapper, the response accumulator and the stream pipeline.

Everything runs through the REAL rules of the shipped manifests (``protocols/openai.yaml``
and ``protocols/openai-compatible.yaml``), on small hand-written SSE bodies shaped like
what the servers send; a hypothesis property checks that any split of the bytes gives the
same events as the whole body.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ailib_anyio._core._errors import MalformedResponseError
from ailib_anyio._core._frames import Frame
from ailib_anyio._core._mapping import (
    DecodeFailure,
    EventMapper,
    ResponseAccumulator,
    StreamFailure,
    StreamPipeline,
)
from ailib_anyio._core._types import (
    ChatResponse,
    ContentDelta,
    Finished,
    FinishReason,
    ReasoningDelta,
    RefusalDelta,
    ToolCall,
    ToolCallCompleted,
    ToolCallDelta,
    ToolCallStarted,
    Usage,
)
from ailib_anyio._protocol._models import ProviderManifest
from ailib_anyio._protocol._registry import ProtocolRegistry

BOTH = ["openai", "openai-compatible"]


@functools.cache
def manifest(provider: str) -> ProviderManifest:
    return ProtocolRegistry().get(provider)


def pipeline(provider: str) -> StreamPipeline:
    m = manifest(provider)
    assert m.streaming is not None
    return StreamPipeline(
        m.streaming.event_map,
        decoder_format=m.streaming.decoder.format,
        done_signal=m.streaming.decoder.done_signal,
        termination=m.termination_mapping,
    )


def response_mapper(provider: str) -> EventMapper:
    m = manifest(provider)
    assert m.response is not None
    return EventMapper(m.response.event_map, termination=m.termination_mapping)


def chunk(
    delta: dict[str, Any] | None = None, finish_reason: str | None = None, **extra: Any
) -> dict[str, Any]:
    """One ``chat.completion.chunk`` as OpenAI streams it."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {"index": 0, "delta": {} if delta is None else delta, "finish_reason": finish_reason}
        ],
        **extra,
    }


def tool_delta(
    index: int, *, id: str | None = None, name: str | None = None, args: str | None = None
) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index}
    function: dict[str, Any] = {}
    if id is not None:
        call["id"] = id
        call["type"] = "function"
    if name is not None:
        function["name"] = name
    if args is not None:
        function["arguments"] = args
    call["function"] = function
    return chunk({"tool_calls": [call]})


def sse(*payloads: Any, done: bool = True) -> bytes:
    """Payloads (dicts as compact UTF-8 JSON, strings verbatim) framed as SSE."""
    out = []
    for p in payloads:
        data = p if isinstance(p, str) else json.dumps(p, separators=(",", ":"), ensure_ascii=False)
        out.append(f"data: {data}\n\n".encode())
    if done:
        out.append(b"data: [DONE]\n\n")
    return b"".join(out)


def run(provider: str, body: bytes | Iterable[bytes]) -> list[Any]:
    pipe = pipeline(provider)
    return feed_all(pipe, [body] if isinstance(body, bytes) else body)


def feed_all(pipe: StreamPipeline, pieces: Iterable[bytes]) -> list[Any]:
    """The events of the pieces; the failure a cut-off body ends with is left out (the
    bodies here are often cut short on purpose; ``pipe.truncated`` still tells)."""
    events: list[Any] = []
    for piece in pieces:
        events.extend(pipe.feed(piece))
    events.extend(e for e in pipe.close() if not (type(e) is DecodeFailure and e.truncated))
    return events


def accumulate(events: Sequence[Any], mapper: EventMapper | None = None) -> ChatResponse:
    acc = ResponseAccumulator()
    for event in events:
        acc.add(event)
    return acc.build(mapper=mapper)


def finished(normalized: str, raw: str) -> Finished:
    return Finished(FinishReason(normalized, raw))  # type: ignore[arg-type]


ROLE = chunk({"role": "assistant", "content": "", "refusal": None})

# -- text ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", BOTH)
def test_content_deltas(provider: str) -> None:
    body = sse(
        ROLE,
        chunk({"content": "Hel"}, usage=None),
        chunk({"content": "lo, "}, usage=None),
        chunk({"content": "wörld ✓"}, usage=None),
        chunk({}, "stop", usage=None),
    )
    pipe = pipeline(provider)
    events = feed_all(pipe, [body])
    assert events == [
        ContentDelta("Hel"),
        ContentDelta("lo, "),
        ContentDelta("wörld ✓"),
        finished("stop", "stop"),
    ]
    assert pipe.mapper.model == "gpt-4o-2024-08-06"
    assert pipe.mapper.response_id == "chatcmpl-1"
    assert pipe.truncated is False
    response = accumulate(events, pipe.mapper)
    assert response.content == "Hello, wörld ✓"
    assert response.reasoning == ""
    assert response.refusal is None
    assert response.tool_calls == ()
    assert response.usage is None
    assert response.finish_reason == FinishReason("stop", "stop")
    assert response.model == "gpt-4o-2024-08-06"


@pytest.mark.parametrize("provider", BOTH)
def test_refusal_deltas(provider: str) -> None:
    body = sse(
        chunk({"role": "assistant", "content": None, "refusal": ""}),
        chunk({"refusal": "I'm sorry, "}),
        chunk({"refusal": "I can't help."}),
        chunk({}, "stop"),
    )
    events = run(provider, body)
    assert events == [
        RefusalDelta("I'm sorry, "),
        RefusalDelta("I can't help."),
        finished("stop", "stop"),
    ]
    response = accumulate(events)
    assert response.refusal == "I'm sorry, I can't help."
    assert response.content == ""
    # An OpenAI refusal keeps finish_reason stop (conformance rule).
    assert response.finish_reason == FinishReason("stop", "stop")


@pytest.mark.parametrize("provider", BOTH)
@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_deltas(provider: str, field: str) -> None:
    body = sse(
        chunk({"role": "assistant", "content": None, field: ""}),
        chunk({"content": None, field: "Let me "}),
        chunk({"content": None, field: "think."}),
        chunk({"content": "4", field: None}),
        chunk({}, "stop"),
    )
    events = run(provider, body)
    assert events == [
        ReasoningDelta("Let me "),
        ReasoningDelta("think."),
        ContentDelta("4"),
        finished("stop", "stop"),
    ]
    response = accumulate(events)
    assert response.reasoning == "Let me think."
    assert response.content == "4"


@pytest.mark.parametrize("provider", BOTH)
def test_reasoning_sent_under_both_names_is_read_once(provider: str) -> None:
    # Some servers (vLLM, OpenRouter) send the same text as reasoning_content and reasoning.
    events = run(provider, sse(chunk({"reasoning_content": "hmm", "reasoning": "hmm"})))
    assert events == [ReasoningDelta("hmm")]


def test_mistral_content_parts() -> None:
    def thinking(text: str) -> dict[str, Any]:
        return chunk(
            {"content": [{"type": "thinking", "thinking": [{"type": "text", "text": text}]}]}
        )

    body = sse(
        chunk({"role": "assistant", "content": ""}),
        thinking("Okay"),
        thinking(", the user"),
        chunk({"content": [{"type": "text", "text": "To cross"}]}),
        chunk({"content": " the street"}),
        chunk(
            {
                "content": [
                    {"type": "text", "text": ", look"},
                    {"type": "text", "text": " both ways."},
                ]
            }
        ),
        chunk({}, "stop", usage={"prompt_tokens": 10, "completion_tokens": 20}),
    )
    pipe = pipeline("openai-compatible")
    events = feed_all(pipe, [body])
    assert events == [
        ReasoningDelta("Okay"),
        ReasoningDelta(", the user"),
        ContentDelta("To cross"),
        ContentDelta(" the street"),
        ContentDelta(", look both ways."),
        Usage(10, 20),
        finished("stop", "stop"),
    ]
    response = accumulate(events)
    assert response.reasoning == "Okay, the user"
    assert response.content == "To cross the street, look both ways."


def test_mistral_thinking_part_with_several_texts() -> None:
    body = sse(
        chunk(
            {
                "content": [
                    {
                        "type": "thinking",
                        "thinking": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                    }
                ]
            }
        ),
        done=False,
    )
    assert run("openai-compatible", body) == [ReasoningDelta("ab")]


# -- tool calls -------------------------------------------------------------------------------


def parallel_tool_call_body() -> bytes:
    return sse(
        chunk({"role": "assistant", "content": None}),
        tool_delta(0, id="call_a", name="get_weather", args=""),
        tool_delta(0, args='{"ci'),
        tool_delta(0, args='ty": "Par'),
        tool_delta(1, id="call_b", name="get_time", args=""),
        tool_delta(0, args='is"}'),
        tool_delta(1, args='{"tz": '),
        tool_delta(1, args='"CET"}'),
        chunk({}, "tool_calls"),
        {
            "id": "chatcmpl-1",
            "choices": [],
            "usage": {"prompt_tokens": 80, "completion_tokens": 40},
        },
    )


@pytest.mark.parametrize("provider", BOTH)
def test_parallel_tool_calls(provider: str) -> None:
    events = run(provider, parallel_tool_call_body())
    weather = ToolCall("call_a", "get_weather", {"city": "Paris"}, '{"city": "Paris"}', None)
    time = ToolCall("call_b", "get_time", {"tz": "CET"}, '{"tz": "CET"}', None)
    assert events == [
        ToolCallStarted(0, "call_a", "get_weather"),
        ToolCallDelta(0, '{"ci'),
        ToolCallDelta(0, 'ty": "Par'),
        ToolCallStarted(1, "call_b", "get_time"),
        ToolCallDelta(0, 'is"}'),
        ToolCallDelta(1, '{"tz": '),
        ToolCallDelta(1, '"CET"}'),
        ToolCallCompleted(0, weather),
        ToolCallCompleted(1, time),
        Usage(80, 40),
        finished("tool_calls", "tool_calls"),
    ]
    response = accumulate(events)
    assert response.tool_calls == (weather, time)
    assert dict(response.tool_calls[0].arguments) == {"city": "Paris"}
    assert response.content == ""
    assert response.usage == Usage(80, 40)


@pytest.mark.parametrize("provider", BOTH)
def test_tool_call_sent_whole_in_one_chunk(provider: str) -> None:
    # Groq, Ollama and others send a tool call in one piece, arguments included.
    body = sse(
        tool_delta(0, id="call_1", name="search", args='{"q": "x"}'), chunk({}, "tool_calls")
    )
    assert run(provider, body) == [
        ToolCallStarted(0, "call_1", "search"),
        ToolCallDelta(0, '{"q": "x"}'),
        ToolCallCompleted(0, ToolCall("call_1", "search", {"q": "x"}, '{"q": "x"}', None)),
        finished("tool_calls", "tool_calls"),
    ]


@pytest.mark.parametrize("provider", BOTH)
@pytest.mark.parametrize("args", [None, ""])
def test_empty_arguments_parse_to_empty_object(provider: str, args: str | None) -> None:
    body = sse(tool_delta(0, id="call_1", name="now", args=args), chunk({}, "tool_calls"))
    events = run(provider, body)
    assert events == [
        ToolCallStarted(0, "call_1", "now"),
        ToolCallCompleted(0, ToolCall("call_1", "now", {}, "", None)),
        finished("tool_calls", "tool_calls"),
    ]


@pytest.mark.parametrize("provider", BOTH)
def test_invalid_json_arguments_are_kept_raw(provider: str) -> None:
    body = sse(
        tool_delta(0, id="call_1", name="f", args='{"a": '),
        tool_delta(0, args="1,,}"),
        chunk({}, "tool_calls"),
    )
    events = run(provider, body)
    completed = [e for e in events if isinstance(e, ToolCallCompleted)]
    assert len(completed) == 1
    call = completed[0].tool_call
    assert call.id == "call_1"
    assert call.name == "f"
    assert dict(call.arguments) == {}
    assert call.raw_arguments == '{"a": 1,,}'
    assert call.parse_error is not None
    assert call.parse_error.startswith("arguments are not valid JSON: ")
    assert events[-1] == finished("tool_calls", "tool_calls")


@pytest.mark.parametrize("provider", BOTH)
def test_non_object_arguments_are_a_parse_error(provider: str) -> None:
    body = sse(tool_delta(0, id="call_1", name="f", args="[1, 2]"), chunk({}, "tool_calls"))
    [call] = [e.tool_call for e in run(provider, body) if isinstance(e, ToolCallCompleted)]
    assert dict(call.arguments) == {}
    assert call.raw_arguments == "[1, 2]"
    assert call.parse_error == "arguments are JSON list, not an object"


@pytest.mark.parametrize("provider", BOTH)
def test_stop_with_tool_calls_is_tool_calls(provider: str) -> None:
    body = sse(tool_delta(0, id="call_1", name="f", args="{}"), chunk({}, "stop"))
    events = run(provider, body)
    assert events[-1] == finished("tool_calls", "stop")
    assert accumulate(events).finish_reason == FinishReason("tool_calls", "stop")


def test_partial_response_keeps_unfinished_tool_calls() -> None:
    # A stream that breaks mid tool call: stream.response must still show what arrived.
    pipe = pipeline("openai")
    events = pipe.feed(
        sse(
            chunk({"content": "Calling."}),
            tool_delta(0, id="call_1", name="f", args='{"a": 1'),
            done=False,
        )
    )
    assert events == [
        ContentDelta("Calling."),
        ToolCallStarted(0, "call_1", "f"),
        ToolCallDelta(0, '{"a": 1'),
    ]
    assert pipe.truncated is True
    response = accumulate(events, pipe.mapper)
    assert response.content == "Calling."
    [call] = response.tool_calls
    assert call.id == "call_1"
    assert call.raw_arguments == '{"a": 1'
    assert dict(call.arguments) == {}
    assert call.parse_error is not None
    assert response.finish_reason is None


# -- usage ------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", BOTH)
def test_usage_in_final_chunk_without_choices(provider: str) -> None:
    usage = {
        "prompt_tokens": 19,
        "completion_tokens": 10,
        "total_tokens": 29,
        "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 6},
    }
    body = sse(
        chunk({"role": "assistant", "content": ""}, usage=None),
        chunk({"content": "Hi"}, usage=None),
        chunk({}, "stop", usage=None),
        {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [], "usage": usage},
        # a trailing chunk with no usage (OpenAI's moderation trailer) changes nothing
        {"id": "chatcmpl-1", "choices": [], "usage": None, "moderation": {"flagged": False}},
    )
    events = run(provider, body)
    assert events == [
        ContentDelta("Hi"),
        Usage(input_tokens=19, output_tokens=10, cached_input_tokens=4, reasoning_tokens=6),
        finished("stop", "stop"),
    ]


@pytest.mark.parametrize("provider", BOTH)
def test_usage_is_emitted_once_at_the_end_with_the_last_values(provider: str) -> None:
    body = sse(
        chunk({"content": "a"}, usage={"prompt_tokens": 5, "completion_tokens": 1}),
        chunk({"content": "b"}, usage={"prompt_tokens": 5, "completion_tokens": 2}),
        chunk({}, "length", usage={"prompt_tokens": 5, "completion_tokens": 3}),
    )
    events = run(provider, body)
    assert events == [
        ContentDelta("a"),
        ContentDelta("b"),
        Usage(5, 3),
        finished("length", "length"),
    ]
    assert [type(e) for e in events].count(Usage) == 1


def test_usage_from_x_groq() -> None:
    body = sse(
        chunk({"role": "assistant", "content": ""}, x_groq={"id": "req_1"}),
        chunk({"reasoning": "Thinking"}),
        chunk({"content": "Done"}),
        chunk(
            {},
            "stop",
            x_groq={
                "id": "req_1",
                "usage": {
                    "prompt_tokens": 100,
                    "completion_tokens": 30,
                    "completion_tokens_details": {"reasoning_tokens": 12},
                },
            },
        ),
    )
    events = run("openai-compatible", body)
    assert events == [
        ReasoningDelta("Thinking"),
        ContentDelta("Done"),
        Usage(input_tokens=100, output_tokens=30, reasoning_tokens=12),
        finished("stop", "stop"),
    ]


# -- finish reasons -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool_calls"),
        ("function_call", "tool_calls"),
        ("content_filter", "content_filter"),
        ("model_length", "length"),
        ("eos_token", "other"),
        ("error", "other"),
    ],
)
def test_finish_reason_normalization(raw: str, normalized: str) -> None:
    events = run("openai-compatible", sse(chunk({"content": "x"}), chunk({}, raw)))
    assert events == [ContentDelta("x"), finished(normalized, raw)]
    reason = accumulate(events).finish_reason
    assert reason is not None
    assert reason.normalized == normalized
    assert reason.raw == raw
    assert reason == normalized
    assert str(reason) == normalized


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool_calls"),
        ("content_filter", "content_filter"),
        ("something_new", "other"),
    ],
)
def test_finish_reason_normalization_openai(raw: str, normalized: str) -> None:
    assert run("openai", sse(chunk({}, raw)))[-1] == finished(normalized, raw)


@pytest.mark.parametrize("provider", BOTH)
def test_no_finish_reason_no_finished_event(provider: str) -> None:
    assert run(provider, sse(chunk({"content": "x"}))) == [ContentDelta("x")]


# -- errors and framing -----------------------------------------------------------------------


@pytest.mark.parametrize("provider", BOTH)
def test_error_frame_is_a_stream_failure(provider: str) -> None:
    error = {
        "error": {
            "message": "tool call validation failed",
            "type": "invalid_request_error",
            "code": "tool_use_failed",
            "status_code": 400,
        }
    }
    body = sse(chunk({"reasoning": "Hmm"}), done=False) + (
        b"event: error\ndata: " + json.dumps(error).encode() + b"\n\n"
    )
    pipe = pipeline(provider)
    events = feed_all(pipe, [body])
    assert events == [ReasoningDelta("Hmm"), StreamFailure(error)]
    assert events[1].body is not None
    assert events[1].body["error"]["code"] == "tool_use_failed"


@pytest.mark.parametrize("provider", BOTH)
def test_error_frame_emits_nothing_else(provider: str) -> None:
    # An error frame that also looks like a chunk: only the failure comes out of it.
    frame = {**chunk({"content": "ignored"}, "stop"), "error": {"message": "boom"}}
    assert run(provider, sse(frame, done=False)) == [StreamFailure(frame)]


@pytest.mark.parametrize("provider", BOTH)
def test_non_json_frame_raises_malformed_response(provider: str) -> None:
    m = manifest(provider)
    assert m.streaming is not None
    mapper = EventMapper(m.streaming.event_map, done_signal="[DONE]")
    assert mapper.feed_frame(Frame(None, '{"choices":[{"delta":{"content":"ok"}}]}')) == [
        ContentDelta("ok")
    ]
    with pytest.raises(MalformedResponseError) as info:
        mapper.feed_frame(Frame(None, "{not json}"))
    err = info.value
    assert not isinstance(err, ValueError)  # so never a JSONDecodeError
    assert isinstance(err.__cause__, json.JSONDecodeError)
    assert str(err).startswith("stream frame is not valid JSON (")
    assert str(err).endswith("): '{not json}'")
    assert err.kind == "malformed_response"


@pytest.mark.parametrize("provider", BOTH)
def test_pipeline_delivers_good_events_then_the_decode_failure(provider: str) -> None:
    pipe = pipeline(provider)
    events = pipe.feed(
        sse(chunk({"content": "a"}), "not json", chunk({"content": "b"}), done=False)
    )
    assert events[0] == ContentDelta("a")
    assert len(events) == 2
    failure = events[1]
    assert isinstance(failure, DecodeFailure)
    assert isinstance(failure.error, MalformedResponseError)
    assert str(failure.error) == (
        "stream frame is not valid JSON (Expecting value: line 1 column 1 (char 0)): 'not json'"
    )


def test_a_decode_failure_builds_its_error_with_where_it_happened() -> None:
    bad, cut = pipeline("openai").feed(sse("not json", done=False))[0], pipeline("openai")
    cut.feed(sse(chunk({"content": "a"}), done=False))
    truncated = cut.close()[-1]
    partial = ChatResponse(content="so far")
    context = {
        "provider": "openai",
        "model": "gpt-4o",
        "status_code": 200,
        "request_id": "req-1",
        "response": partial,
    }
    for failure in (bad, truncated):
        assert isinstance(failure, DecodeFailure)
        original = failure.error
        error = failure.error_with(**context)
        assert error is not original and type(error) is type(original)
        assert (error.provider, error.model, error.status_code) == ("openai", "gpt-4o", 200)
        assert (error.request_id, error.response) == ("req-1", partial)
        assert (error.message, error.retryable, error.code) == (
            original.message,
            original.retryable,
            original.code,
        )
        assert error.__cause__ is original.__cause__
        assert error.__traceback__ is original.__traceback__
        # the failure's own error is left as the pipeline made it
        assert (original.provider, original.status_code, original.response) == (None, None, None)
    assert isinstance(bad.error_with().__cause__, json.JSONDecodeError)
    assert truncated.error_with().retryable is True


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_events_up_to_a_decode_failure_do_not_depend_on_splits(data: st.DataObject) -> None:
    body = sse(chunk({"content": "a"}), chunk({"content": "b"}), "{oops", chunk({"content": "c"}))
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=8))

    def until_failure(events: list[Any]) -> list[Any]:
        for i, event in enumerate(events):
            if isinstance(event, DecodeFailure):
                return [*events[:i], ("failure", str(event.error))]
        return events

    whole = until_failure(run("openai", [body]))
    assert whole == [
        ContentDelta("a"),
        ContentDelta("b"),
        (
            "failure",
            "stream frame is not valid JSON (Expecting property name enclosed in double quotes:"
            " line 1 column 2 (char 1)): '{oops'",
        ),
    ]
    assert until_failure(run("openai", split_at(body, cuts))) == whole


@pytest.mark.parametrize("provider", BOTH)
def test_done_ends_the_stream_and_later_frames_are_ignored(provider: str) -> None:
    body = sse(
        chunk({"content": "a"}),
        tool_delta(0, id="call_1", name="f", args='{"x": 1}'),
        chunk({}, "tool_calls"),
    ) + sse(chunk({"content": "late"}), "not even json", chunk({}, "length"), done=False)
    pipe = pipeline(provider)
    events = pipe.feed(body)
    assert events == [
        ContentDelta("a"),
        ToolCallStarted(0, "call_1", "f"),
        ToolCallDelta(0, '{"x": 1}'),
        ToolCallCompleted(0, ToolCall("call_1", "f", {"x": 1}, '{"x": 1}', None)),
        finished("tool_calls", "tool_calls"),
    ]
    assert pipe.mapper.done is True
    assert pipe.close() == []
    assert pipe.truncated is False


@pytest.mark.parametrize("provider", BOTH)
def test_keepalives_and_blank_data_are_ignored(provider: str) -> None:
    body = b": keep-alive\n\ndata: \n\n" + sse(chunk({"content": "x"}), done=False)
    assert run(provider, body) == [ContentDelta("x")]


@pytest.mark.parametrize(
    ("body", "truncated"),
    [
        (sse(chunk({"content": "x"}), chunk({}, "stop")), False),
        (sse(chunk({"content": "x"}), chunk({}, "stop"), done=False), False),
        (sse(chunk({"content": "x"}), done=True), False),
        (sse(chunk({"content": "x"}), done=False), True),
        (b"", True),
        (b'data: {"choices":[{"delta":{"content":"x"}}]}', True),
    ],
    ids=["done+finish", "finish-only", "done-only", "cut", "empty", "cut-mid-frame"],
)
def test_truncated(body: bytes, truncated: bool) -> None:
    pipe = pipeline("openai")
    feed_all(pipe, [body])
    assert pipe.truncated is truncated


def test_without_a_done_signal_a_finish_reason_marks_the_end() -> None:
    # Anthropic and Gemini streams have no done signal: a complete one always carries a
    # finish reason, so a body without one was cut short.
    m = manifest("openai")
    assert m.streaming is not None
    cut = StreamPipeline(m.streaming.event_map, termination=m.termination_mapping)
    feed_all(cut, [sse(chunk({"content": "x"}), done=False)])
    assert cut.truncated is True
    whole = StreamPipeline(m.streaming.event_map, termination=m.termination_mapping)
    feed_all(whole, [sse(chunk({"content": "x"}, finish_reason="stop"), done=False)])
    assert whole.truncated is False


def test_flush_dispatches_a_final_frame_without_blank_line() -> None:
    pipe = pipeline("openai")
    assert pipe.feed(b'data: {"choices":[{"delta":{"content":"x"}}]}') == []
    content, cut = pipe.close()  # no [DONE], no finish reason: the body was cut short
    assert content == ContentDelta("x")
    assert isinstance(cut, DecodeFailure) and cut.truncated


# -- non-streaming responses -------------------------------------------------------------------

CHAT_COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-abc",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Checking both.",
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": ""},
                    },
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 70,
        "completion_tokens": 50,
        "total_tokens": 120,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
}


@pytest.mark.parametrize("provider", BOTH)
def test_response_rules_on_a_chat_completion(provider: str) -> None:
    mapper = response_mapper(provider)
    events = [*mapper.map_object(CHAT_COMPLETION), *mapper.finish()]
    weather = ToolCall("call_a", "get_weather", {"city": "Paris"}, '{"city":"Paris"}', None)
    time = ToolCall("call_b", "get_time", {}, "", None)
    assert events == [
        ContentDelta("Checking both."),
        ToolCallStarted(0, "call_a", "get_weather"),
        ToolCallDelta(0, '{"city":"Paris"}'),
        ToolCallStarted(1, "call_b", "get_time"),
        ToolCallCompleted(0, weather),
        ToolCallCompleted(1, time),
        Usage(70, 50, 0, 0),
        finished("tool_calls", "tool_calls"),
    ]
    assert mapper.finish() == []
    response = accumulate(events, mapper)
    assert response == ChatResponse(
        content="Checking both.",
        reasoning="",
        refusal=None,
        tool_calls=(weather, time),
        finish_reason=FinishReason("tool_calls", "tool_calls"),
        usage=Usage(70, 50, 0, 0),
        model="gpt-4o-2024-08-06",
    )
    assert mapper.response_id == "chatcmpl-abc"


@pytest.mark.parametrize("provider", BOTH)
def test_response_rules_refusal_and_reasoning(provider: str) -> None:
    body = {
        "id": "x",
        "model": "m",
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": None,
                    "reasoning_content": "Policy check.",
                    "refusal": "I can't do that.",
                },
                "finish_reason": "stop",
            }
        ],
    }
    mapper = response_mapper(provider)
    response = accumulate([*mapper.map_object(body), *mapper.finish()], mapper)
    assert response.content == ""
    assert response.reasoning == "Policy check."
    assert response.refusal == "I can't do that."
    assert response.finish_reason == FinishReason("stop", "stop")
    assert response.usage is None


def test_response_rules_tool_arguments_as_an_object() -> None:
    # Some servers put the arguments object itself in the body instead of a JSON string.
    body = {
        "choices": [
            {
                "message": {
                    "content": "",
                    "reasoning": "Need the weather.",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "function": {"name": "get_weather", "arguments": {"city": "Oslo"}},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ]
    }
    mapper = response_mapper("openai-compatible")
    response = accumulate([*mapper.map_object(body), *mapper.finish()], mapper)
    assert response.reasoning == "Need the weather."
    assert response.tool_calls == (
        ToolCall("c1", "get_weather", {"city": "Oslo"}, '{"city":"Oslo"}', None),
    )


def test_response_rules_mistral_content_parts() -> None:
    body = {
        "choices": [
            {
                "message": {
                    "content": [
                        {"type": "thinking", "thinking": [{"type": "text", "text": "Plan."}]},
                        {"type": "text", "text": "Answer."},
                    ]
                },
                "finish_reason": "model_length",
            }
        ]
    }
    mapper = response_mapper("openai-compatible")
    response = accumulate([*mapper.map_object(body), *mapper.finish()], mapper)
    assert response.content == "Answer."
    assert response.reasoning == "Plan."
    assert response.finish_reason == FinishReason("length", "model_length")


@pytest.mark.parametrize("provider", BOTH)
@pytest.mark.parametrize("body", [None, [], "text", 3, {}, {"choices": "x"}, {"choices": [None]}])
def test_response_rules_on_odd_bodies_never_raise(provider: str, body: Any) -> None:
    mapper = response_mapper(provider)
    assert [*mapper.map_object(body), *mapper.finish()] == []


# -- split invariance -------------------------------------------------------------------------


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@st.composite
def openai_streams(draw: st.DrawFn) -> tuple[bytes, list[Any]]:
    """The SSE bytes an OpenAI server would send, and the events they must give."""
    contents = draw(st.lists(st.text(max_size=8), max_size=6))
    tools = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["get_weather", "search", "f"]),
                st.dictionaries(
                    st.text(max_size=4),
                    st.integers() | st.text(max_size=6) | st.booleans(),
                    max_size=3,
                ),
            ),
            max_size=3,
        )
    )
    usage = draw(st.none() | st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)))

    chunks: list[Any] = [chunk({"role": "assistant", "content": ""})]
    expected: list[Any] = []
    for text in contents:
        chunks.append(chunk({"content": text}))
        if text:
            expected.append(ContentDelta(text))
    completed = []
    for i, (name, args) in enumerate(tools):
        raw = json.dumps(args, ensure_ascii=False)
        cuts = draw(st.lists(st.integers(0, len(raw)), max_size=4))
        pieces = _split_str(raw, cuts)
        chunks.append(tool_delta(i, id=f"call_{i}", name=name, args=""))
        expected.append(ToolCallStarted(i, f"call_{i}", name))
        for piece in pieces:
            chunks.append(tool_delta(i, args=piece))
            if piece:
                expected.append(ToolCallDelta(i, piece))
        completed.append(ToolCallCompleted(i, ToolCall(f"call_{i}", name, args, raw, None)))
    finish = "tool_calls" if tools else draw(st.sampled_from(["stop", "length"]))
    chunks.append(chunk({}, finish))
    expected.extend(completed)
    if usage is not None:
        chunks.append(
            {
                "id": "chatcmpl-1",
                "choices": [],
                "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]},
            }
        )
        expected.append(Usage(*usage))
    expected.append(finished(finish, finish))
    return sse(*chunks), expected


def _split_str(text: str, cuts: Iterable[int]) -> list[str]:
    points = sorted(set(cuts))
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


@settings(max_examples=60, deadline=None)
@given(stream=openai_streams(), data=st.data())
def test_any_split_gives_the_same_events(
    stream: tuple[bytes, list[Any]], data: st.DataObject
) -> None:
    body, expected = stream
    provider = data.draw(st.sampled_from(BOTH))
    whole = run(provider, [body])
    assert whole == expected
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=12))
    assert run(provider, split_at(body, cuts)) == whole
    assert run(provider, [body[i : i + 1] for i in range(len(body))]) == whole


# -- untrusted frames -------------------------------------------------------------------------

KEYS = [
    "choices",
    "delta",
    "message",
    "content",
    "tool_calls",
    "index",
    "id",
    "function",
    "name",
    "arguments",
    "finish_reason",
    "usage",
    "prompt_tokens",
    "completion_tokens",
    "prompt_tokens_details",
    "cached_tokens",
    "reasoning",
    "reasoning_content",
    "refusal",
    "type",
    "text",
    "thinking",
    "x_groq",
    "model",
]
EVENT_TYPES = (
    ContentDelta,
    ReasoningDelta,
    RefusalDelta,
    ToolCallStarted,
    ToolCallDelta,
    ToolCallCompleted,
    Usage,
    Finished,
)
frames = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-2, 3)
    | st.integers()
    | st.floats()
    | st.text(max_size=4)
    | st.sampled_from(["stop", "tool_calls", "text", "thinking", "{", '{"a":1}', ""]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(frames, max_size=4), provider=st.sampled_from(BOTH))
def test_arbitrary_json_frames_never_raise(values: list[Any], provider: str) -> None:
    m = manifest(provider)
    assert m.streaming is not None
    assert m.response is not None
    for rules in (m.streaming.event_map, m.response.event_map):
        mapper = EventMapper(rules, termination=m.termination_mapping)
        events: list[Any] = []
        for value in values:
            events.extend(mapper.map_object(value))
        events.extend(mapper.finish())
        for event in events:
            assert isinstance(event, (*EVENT_TYPES, StreamFailure))
        good = [e for e in events if not isinstance(e, StreamFailure)]
        response = accumulate(good, mapper)
        assert isinstance(response.content, str)
        for call in response.tool_calls:
            assert isinstance(call.name, str)
            assert isinstance(dict(call.arguments), dict)
